package oci

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Ids the tests give files: another local user, and the user a rootless
// namespace maps to its root.
const (
	otherUID     = 4242
	namespaceUID = 65533
)

// requireRootT fails t loudly unless the test runs as root.
func requireRootT(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test gives files to other users and needs root: run it as root (sudo go test ./oci/; CI does)")
	}
}

// sharedDir is a fresh directory that every user may read and search
// (t.TempDir's are root's alone), removed at the end of the test.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbxrun-trust-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func chown(t *testing.T, uid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// trustSpec is a spec of kind sbxrun.test/trust whose device d runs hook.
func trustSpec(hook string) string {
	return `cdiVersion: "0.6.0"
kind: sbxrun.test/trust
devices:
  - name: d
    containerEdits:
      env: ["TRUST=yes"]
      hooks:
        - {hookName: createContainer, path: ` + hook + `, args: [nvidia-cdi-hook, noop]}
`
}

func TestCheckHookPath(t *testing.T) {
	requireRootT(t)
	spec := "/etc/cdi/x.yaml"
	tests := []struct {
		name string
		// setup makes the hook under dir (0755, root's) and returns its
		// path and the path CheckHookPath should return.
		setup func(t *testing.T, dir string) (path, resolved string)
		want  []string // in the error; nil: accepted
	}{
		{"root's binary", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			return p, p
		}, nil},
		{"relative path", func(t *testing.T, dir string) (string, string) {
			return "bin/hook", ""
		}, []string{`hook "bin/hook" of CDI spec "/etc/cdi/x.yaml" is not an absolute path`}},
		{"missing", func(t *testing.T, dir string) (string, string) {
			return filepath.Join(dir, "gone"), ""
		}, []string{"of CDI spec \"/etc/cdi/x.yaml\": no such file or directory: regenerate the spec"}},
		{"not executable", func(t *testing.T, dir string) (string, string) {
			return writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o644), ""
		}, []string{"is not an executable file"}},
		{"another user's binary", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			chown(t, otherUID, p)
			return p, ""
		}, []string{"of CDI spec \"/etc/cdi/x.yaml\" is owned by uid 4242, not root: refusing it (chown root"}},
		{"writable by others", func(t *testing.T, dir string) (string, string) {
			return writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o757), ""
		}, []string{"of CDI spec \"/etc/cdi/x.yaml\" is writable by group or others: refusing it (chmod go-w"}},
		{"in a world-writable directory", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			if err := os.Chmod(filepath.Dir(p), 0o777); err != nil {
				t.Fatal(err)
			}
			return p, ""
		}, []string{"which others can change: install sbxrun in a root-owned directory"}},
		{"in another user's directory", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			chown(t, otherUID, filepath.Dir(p))
			return p, ""
		}, []string{"which others can change"}},
		{"in a sticky world-writable directory", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			if err := os.Chmod(filepath.Dir(p), 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			return p, p
		}, nil},
		{"another user's link to root's binary", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(p, link); err != nil {
				t.Fatal(err)
			}
			chown(t, otherUID, link)
			return link, p // what runc gets: the link can be repointed
		}, nil},
		{"link to another user's binary", func(t *testing.T, dir string) (string, string) {
			p := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
			chown(t, otherUID, p)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(p, link); err != nil {
				t.Fatal(err)
			}
			return link, ""
		}, []string{"(-> \"", "/bin/hook\") of CDI spec \"/etc/cdi/x.yaml\" is owned by uid 4242"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := sharedDir(t)
			path, want := tt.setup(t, dir)
			got, err := CheckHookPath(path, spec, []uint32{0})
			if tt.want == nil {
				if err != nil || got != want {
					t.Fatalf("CheckHookPath(%q) = %q, %v; want %q", path, got, err, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckHookPath(%q) accepted it, want an error with %q", path, tt.want)
			}
			for _, w := range append(tt.want, fmt.Sprintf("hook %q", path)) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestBuildRunsTheCheckedHook: the spec runc gets names the symlink-free
// hook that was checked, not a link its owner could repoint.
func TestBuildRunsTheCheckedHook(t *testing.T) {
	requireRootT(t)
	dir := sharedDir(t)
	hook := writeFile(t, dir, "bin/hook", "#!/bin/sh\n", 0o755)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(hook, link); err != nil {
		t.Fatal(err)
	}
	chown(t, otherUID, link)
	specs := t.TempDir()
	writeFile(t, specs, "trust.yaml", trustSpec(link), 0o644)
	opts, err := Build(&Sandbox{ID: "t1", CDIDevices: []string{"sbxrun.test/trust=d"}, CDISpecDirs: []string{specs}}, ocispec.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := generateErr(opts)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Hooks == nil || len(spec.Hooks.CreateContainer) != 1 || spec.Hooks.CreateContainer[0].Path != hook {
		t.Fatalf("hooks = %+v, want one createContainer hook running %q", spec.Hooks, hook)
	}
}

// TestRootlessOwnership runs LoadCDI and Resolve in a user namespace that
// maps only namespaceUID (its root), as RootlessKit's does: there root's
// files and another user's both show as the overflow uid. With the record
// the host side made (HostOwners), root's are trusted and the other user's
// are refused by their real uid; without it, neither is.
func TestRootlessOwnership(t *testing.T) {
	requireRootT(t)
	base := sharedDir(t)
	hook := writeFile(t, base, "bin/hook", "#!/bin/sh\n", 0o755)
	theirHook := writeFile(t, base, "bin/their-hook", "#!/bin/sh\n", 0o755)
	chown(t, otherUID, theirHook)
	dirs := map[string]string{} // name -> spec directory
	spec := func(name, hookPath string) string {
		d := filepath.Join(base, name)
		writeFile(t, d, "trust.yaml", trustSpec(hookPath), 0o644)
		dirs[name] = d
		return d
	}
	spec("root", hook)
	chown(t, otherUID, filepath.Join(spec("their spec", hook), "trust.yaml"))
	d := spec("their directory", hook)
	chown(t, otherUID, d)
	spec("their hook", theirHook)
	d = spec("the user's", hook)
	chown(t, namespaceUID, d, filepath.Join(d, "trust.yaml"))
	d = spec("changed after the record", hook)
	changed := filepath.Join(d, "trust.yaml")

	var all []string
	for _, d := range dirs {
		all = append(all, d)
	}
	record := hostOwnersOf(namespaceUID, all, nil)
	helper := userNamespaceHelper(t)
	// A file replaced after the record (even on the same inode) is one the
	// record does not vouch for.
	time.Sleep(10 * time.Millisecond)
	if err := os.Remove(changed); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(changed), "trust.yaml", trustSpec(hook), 0o644)

	notChecked := "which in this user namespace stands for root or any other user outside it, and sbxrun did not check which before entering it"
	tests := []struct {
		dir    string
		record bool
		want   []string // in Resolve's error; nil: resolved
	}{
		{"root", true, nil},
		{"root", false, []string{"CDI spec directory", notChecked, "run sbxrun outside the user namespace"}},
		{"their spec", true, []string{`trust.yaml" is owned by uid 4242, neither root nor you: refusing it (chown root`}},
		{"their spec", false, []string{notChecked}},
		{"their directory", true, []string{`CDI spec directory "` + dirs["their directory"] + `" is owned by uid 4242, neither root nor you: chown root`}},
		{"their hook", true, []string{`hook "` + theirHook + `" of CDI spec "` + filepath.Join(dirs["their hook"], "trust.yaml") + `" is owned by uid 4242, neither root nor you`}},
		{"the user's", true, nil},
		{"the user's", false, []string{`hook "` + hook + `" of CDI spec "` + filepath.Join(dirs["the user's"], "trust.yaml") + `" is owned by uid 65534, ` + notChecked}},
		{"changed after the record", true, []string{`trust.yaml" is owned by uid 65534, ` + notChecked}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s, record %v", tt.dir, tt.record), func(t *testing.T) {
			rec := ""
			if tt.record {
				rec = record
			}
			out := inUserNamespace(t, helper, dirs[tt.dir], rec)
			if tt.want == nil {
				if out != "resolved" {
					t.Fatalf("in the namespace: %s; want it resolved", out)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("in the namespace: %s\nwant %q in it", out, w)
				}
			}
		})
	}
}

// userNamespaceEnv marks the test binary's run as TestUserNamespaceHelper.
const userNamespaceEnv = "SBXRUN_TEST_USERNS_SPEC_DIR"

// TestUserNamespaceHelper is what inUserNamespace runs inside the
// namespace; as a normal test it does nothing.
func TestUserNamespaceHelper(t *testing.T) {
	dir := os.Getenv(userNamespaceEnv)
	if dir == "" {
		return
	}
	UseHostOwners(os.Getenv(HostOwnersEnv))
	reg, err := LoadCDI([]string{dir}, nil)
	if err == nil {
		err = reg.Resolve([]string{"sbxrun.test/trust=d"})
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("resolved")
}

// userNamespaceHelper copies the test binary, which lies in a directory
// only root may enter, where the namespace's user can run it.
func userNamespaceHelper(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(sharedDir(t), "oci.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// inUserNamespace runs TestUserNamespaceHelper of the test binary helper
// for the spec directory dir in a new user namespace that maps
// namespaceUID to its root, with record as HostOwnersEnv, and returns what
// it printed.
func inUserNamespace(t *testing.T, helper, dir, record string) string {
	t.Helper()
	cmd := exec.Command(helper, "-test.run=^TestUserNamespaceHelper$", "-test.count=1")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", userNamespaceEnv + "=" + dir, HostOwnersEnv + "=" + record}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: namespaceUID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: namespaceUID, Size: 1}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the helper in a user namespace: %v\n%s", err, out)
	}
	// The test binary adds PASS when the helper test ends.
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(out)), "PASS"))
}
