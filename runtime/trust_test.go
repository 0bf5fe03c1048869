package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// trustFixture is a project directory with a sbxrun.yaml, a home and a
// trust store of its own.
type trustFixture struct {
	dir, home, project, store, none string
}

func newTrustFixture(t *testing.T, yaml string) trustFixture {
	t.Helper()
	root := t.TempDir()
	f := trustFixture{
		dir:   filepath.Join(root, "project"),
		home:  filepath.Join(root, "home"),
		store: filepath.Join(root, "state", "trust.json"),
		none:  filepath.Join(root, "none.yaml"),
	}
	f.project = filepath.Join(f.dir, "sbxrun.yaml")
	for _, d := range []string{f.dir, filepath.Join(f.dir, "data"), filepath.Join(f.home, ".ssh"), filepath.Join(f.home, ".config", "sbxrun")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(f.dir, "etc-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(f.dir, "up")); err != nil {
		t.Fatal(err)
	}
	f.write(t, yaml)
	return f
}

func (f trustFixture) write(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(f.project, []byte("profiles:\n  base:\n    "+yaml+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// validate runs the whole validation of `sbxrun base` in the project, as a
// run does before anything is created.
func (f trustFixture) validate(config string) error {
	o := &RunOptions{
		Target: "base",
		Load:   profiles.LoadOptions{SystemFile: f.none, UserFile: f.none, ProjectFile: f.project, ConfigFile: config, TrustFile: f.store},
		Host:   profiles.HostEnv{Home: f.home, Cwd: f.dir},
		Stderr: &strings.Builder{},
	}
	_, err := o.validate()
	return err
}

// TestProjectFileTrust is the allowlist as a table: what an untrusted
// project file may not ask for is one line naming the file, line and key
// and the fix (`sbxrun trust DIR`), with nothing created; the same file,
// once trusted with this content (or given with --config), is the user's
// choice; a changed file is untrusted again.
func TestProjectFileTrust(t *testing.T) {
	shm := filepath.Join("/dev/shm", "sbxrun-trust-"+strings.ReplaceAll(t.Name(), "/", "-"))
	t.Cleanup(func() { os.RemoveAll(shm) })
	tests := []struct {
		name, yaml string
		// refused is a part of the refusal; "" means the untrusted file
		// is accepted.
		refused string
		// created must not exist after a refusal.
		created string
	}{
		{name: "privileged", yaml: "privileged: true", refused: "privileged: true"},
		{name: "cap_add with a leading space", yaml: `cap_add: [" SYS_ADMIN"]`, refused: "cap_add: SYS_ADMIN"},
		{name: "cap_add any spelling", yaml: "cap_add: [cap_sys_admin]", refused: "cap_add: cap_sys_admin"},
		{name: "cap_add outside the old deny list", yaml: "cap_add: [SYSLOG]", refused: "cap_add: SYSLOG"},
		{name: "cap_add harmless-looking", yaml: "cap_add: [NET_BIND_SERVICE]", refused: "cap_add: NET_BIND_SERVICE"},
		{name: "seccomp file", yaml: "security_opt: [seccomp=./allow.json]", refused: "security_opt: seccomp=./allow.json"},
		{name: "seccomp unconfined", yaml: "security_opt: [seccomp=unconfined]", refused: "security_opt: seccomp=unconfined"},
		{name: "apparmor unconfined", yaml: "security_opt: [apparmor=unconfined]", refused: "apparmor=unconfined"},
		{name: "no-new-privileges off", yaml: "security_opt: [no-new-privileges=false]", refused: "no-new-privileges=false"},
		{name: "devices", yaml: "devices: [vendor.example.com/x=y]", refused: "devices: vendor.example.com/x=y"},
		{name: "host network", yaml: "network: host", refused: "network: host"},
		{name: "another sandbox's network", yaml: "network: container:db", refused: "network: container:db"},
		{name: "bridge network", yaml: "network: bridge"},
		{name: "home", yaml: `mounts: ["~:/h"]`, refused: "outside the project directory"},
		{name: "ssh keys", yaml: `mounts: ["~/.ssh:/s"]`, refused: "outside the project directory"},
		{name: "the user's own config", yaml: `mounts: ["~/.config/sbxrun:/c"]`, refused: "outside the project directory"},
		{name: "cron", yaml: `mounts: ["/etc/cron.d:/c"]`, refused: "outside the project directory"},
		{name: "usr local bin", yaml: `mounts: ["/usr/local/bin:/b"]`, refused: "outside the project directory"},
		{name: "state dir", yaml: `mounts: ["/var/lib/sbxrun:/s"]`, refused: "outside the project directory"},
		{name: "dotdot", yaml: `mounts: ["../home:/h"]`, refused: "outside the project directory"},
		{name: "symlink in the repository", yaml: `mounts: ["./etc-link:/e"]`, refused: `"/etc" (outside the project directory`},
		{name: "create outside", yaml: "mounts: [{source: " + shm + ", target: /x, create: true}]", refused: "outside the project directory", created: shm},
		{name: "create through a symlink", yaml: "mounts: [{source: ./up/escaped, target: /x, create: true}]", refused: "outside the project directory", created: "escaped"},
		{name: "propagation", yaml: "mounts: [{source: ./data, target: /d, options: [rshared]}]", refused: `mount option "rshared"`},
		{name: "suid", yaml: "mounts: [{source: ./data, target: /d, options: [suid]}]", refused: `mount option "suid"`},
		{name: "project data", yaml: `mounts: ["./data:/data", "./data/:/data2:ro"]`},
		{name: "project dir itself", yaml: `mounts: [".:/src"]`},
		{name: "create inside", yaml: "mounts: [{source: ./cache/pip, target: /pip, create: true}]"},
		{name: "built-in cache", yaml: "mounts: [{source: ~/.cache/torch, target: /t, create: true}]"},
		{name: "tmpfs", yaml: "mounts: [{type: tmpfs, target: /scratch, options: [size=64m]}]"},
		{name: "narrowing settings", yaml: "memory: 1g\n    cap_drop: [NET_RAW]\n    security_opt: [no-new-privileges]\n    network: none\n    read_only: true\n    privileged: false"},
		{name: "extra hosts and dns", yaml: "add_hosts: [\"db.internal:10.1.2.3\", \"gw:host-gateway\"]\n    dns: [192.0.2.53]\n    dns_search: [example.test]\n    dns_options: [\"ndots:2\"]"},
		{name: "image, env, user", yaml: "image: localhost/x:1\n    env: {A: b}\n    user: \"0\"\n    workdir: /src"},
	}
	// A named network is a namespace of the sandbox's own too: whatever
	// else stops the run (the network does not exist here), trust does not.
	t.Run("named network", func(t *testing.T) {
		f := newTrustFixture(t, "network: projnet")
		if err := f.validate(""); err != nil && strings.Contains(err.Error(), "untrusted") {
			t.Fatalf("untrusted named network refused: %v", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTrustFixture(t, tt.yaml)
			created := tt.created
			if created != "" && !filepath.IsAbs(created) {
				created = filepath.Join(filepath.Dir(f.dir), created)
			}
			err := f.validate("")
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("untrusted: %v", err)
			case tt.refused != "":
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("untrusted: err = %v, want a refusal containing %q", err, tt.refused)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, f.project+":") || !strings.Contains(msg, "untrusted project file") ||
					!strings.Contains(msg, "sbxrun trust "+f.dir) || strings.Contains(msg, "\n") {
					t.Errorf("refusal %q does not name the file and line and the fix on one line", msg)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("refusal is not bad input (exit 125): %v", err)
				}
			}
			if created != "" {
				if _, err := os.Lstat(created); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused run created %q", created)
				}
			}
			if tt.refused == "" {
				return
			}

			// Trusted with this content, the same file is the user's
			// choice: no refusal about trust (other checks still apply,
			// such as a missing seccomp file).
			if _, err := profiles.Trust(profiles.TrustOptions{Dir: f.dir, File: f.store}); err != nil {
				t.Fatal(err)
			}
			if err := f.validate(""); err != nil && strings.Contains(err.Error(), "untrusted") {
				t.Errorf("trusted: %v", err)
			}
			// A changed file is untrusted again.
			f.write(t, tt.yaml+"\n    env: {CHANGED: \"1\"}")
			if err := f.validate(""); err == nil || !strings.Contains(err.Error(), "untrusted project file") {
				t.Errorf("changed after trust: err = %v, want the refusal again", err)
			}
			// --config naming the file is the user's explicit choice.
			if err := f.validate(f.project); err != nil && strings.Contains(err.Error(), "untrusted") {
				t.Errorf("from --config: %v", err)
			}
		})
	}
}

// TestTrustStore: trust, list (with a changed and a missing file) and
// revoke, in a store readable by its owner only.
func TestTrustStore(t *testing.T) {
	f := newTrustFixture(t, "memory: 1g")
	o := profiles.TrustOptions{Dir: f.dir, File: f.store}
	got, err := profiles.Trust(o)
	if err != nil || len(got) != 1 || got[0].File != f.project || len(got[0].SHA256) != 64 {
		t.Fatalf("Trust = %+v, %v", got, err)
	}
	if fi, err := os.Stat(f.store); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("trust file: %v, %v; want mode 0600", fi, err)
	}
	if fi, err := os.Stat(filepath.Dir(f.store)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("trust dir: %v, %v; want mode 0700", fi, err)
	}
	list := func() string {
		l, err := profiles.ListTrusted(o)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range l {
			s = append(s, e.File+"="+e.State)
		}
		return strings.Join(s, " ")
	}
	if got := list(); got != f.project+"=trusted" {
		t.Errorf("list = %q", got)
	}
	f.write(t, "memory: 2g")
	if got := list(); got != f.project+"=changed" {
		t.Errorf("list after a change = %q", got)
	}
	// Trusting again replaces the entry.
	if _, err := profiles.Trust(o); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != f.project+"=trusted" {
		t.Errorf("list after trusting again = %q", got)
	}
	removed, err := profiles.Revoke(o)
	if err != nil || len(removed) != 1 {
		t.Fatalf("Revoke = %+v, %v", removed, err)
	}
	if got := list(); got != "" {
		t.Errorf("list after revoke = %q", got)
	}
	if _, err := profiles.Trust(profiles.TrustOptions{Dir: t.TempDir(), File: f.store}); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("trusting a directory without a project file: %v, want bad input", err)
	}
}
