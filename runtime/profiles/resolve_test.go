package profiles

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/oci"
)

// sandboxOf expands r and creates its missing cache directories, as a run
// does once everything else was checked.
func sandboxOf(r *Resolved, h HostEnv) (*oci.Sandbox, error) {
	sb, create, err := r.Expand(h)
	if err != nil {
		return nil, err
	}
	if err := CreateDirs(sb, create); err != nil {
		return nil, err
	}
	return sb, nil
}

// builtins loads the built-in profiles and nothing else.
func builtins(t *testing.T) *Set {
	t.Helper()
	p, err := Load(profileFiles(t, "", "", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuiltinProfiles(t *testing.T) {
	home, cwd := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	h := HostEnv{Home: home, Cwd: cwd}
	workspace := oci.Mount{Type: "bind", Source: cwd, Destination: "/workspace"}
	// No user and no HOME in the built-ins: the image's home, resolved at
	// run time (applyImageHome).
	ssh := oci.Mount{Type: "bind", Source: filepath.Join(home, ".ssh"), Destination: HomeMarker + "/.ssh", ReadOnly: true}
	cache := func(p string) oci.Mount {
		return oci.Mount{Type: "bind", Source: filepath.Join(home, p), Destination: HomeMarker + "/" + p}
	}
	baseEnv := []string{"NODE_ENV=development", "PYTHONPATH=/workspace"}
	tests := []struct {
		name    string
		image   string
		workdir string
		env     []string
		mounts  []oci.Mount // ~/.gitconfig is absent, so skipped
		shm     int64
	}{
		{"base", ImageBase, "/workspace", baseEnv, []oci.Mount{workspace, ssh}, 0},
		{"model-dev", ImageModelDev, "/workspace/models", baseEnv,
			[]oci.Mount{workspace, ssh, cache(".cache/huggingface"), cache(".cache/torch"), cache(".ollama")}, 2 << 30},
		{"test", ImageTest, "/workspace/tests",
			[]string{"DISPLAY=:99", "NODE_ENV=development", "PYTEST_ADDOPTS=--color=yes", "PYTHONPATH=/workspace"},
			[]oci.Mount{workspace, ssh}, 1 << 30},
	}
	p := builtins(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := p.Resolve(tt.name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if *r.Profile.Image != tt.image || *r.Profile.Pull != "missing" || *r.Profile.Network != "bridge" {
				t.Errorf("image, pull, network = %q, %q, %q; want %q, missing, host", *r.Profile.Image, *r.Profile.Pull, *r.Profile.Network, tt.image)
			}
			if p.Description(tt.name) == "" {
				t.Errorf("built-in %q has no description", tt.name)
			}
			sb, err := sandboxOf(r, h)
			if err != nil {
				t.Fatal(err)
			}
			if sb.Workdir != tt.workdir || sb.ShmSize != tt.shm || sb.Network != "bridge" || !sb.NoNewPrivileges {
				t.Errorf("workdir, shm, network, nnp = %q, %d, %q, %v; want %q, %d, host, true", sb.Workdir, sb.ShmSize, sb.Network, sb.NoNewPrivileges, tt.workdir, tt.shm)
			}
			if !slices.Equal(sb.Env, tt.env) {
				t.Errorf("env = %q, want %q", sb.Env, tt.env)
			}
			if !reflect.DeepEqual(sb.Mounts, tt.mounts) {
				t.Errorf("mounts =\n%+v\nwant\n%+v", sb.Mounts, tt.mounts)
			}
		})
	}
	for _, c := range []string{".cache/huggingface", ".cache/torch", ".ollama"} {
		if fi, err := os.Stat(filepath.Join(home, c)); err != nil || !fi.IsDir() {
			t.Errorf("model-dev cache %s not created: %v", c, err)
		}
	}
}

func TestSandboxExpansion(t *testing.T) {
	h := HostEnv{Home: "/h", Cwd: "/c"}
	tests := []struct {
		name    string
		profile Profile
		want    []oci.Mount
		wantErr string
	}{
		{"sources", Profile{Mounts: []MountSpec{
			{Source: "~", Target: "/a"},
			{Source: "~/x", Target: "/b"},
			{Source: ".", Target: "/c"},
			{Source: "rel/x", Target: "/d"},
			{Source: "/abs/../y", Target: "/e/", ReadOnly: true, Options: []string{"rshared"}},
		}}, []oci.Mount{
			{Type: "bind", Source: "/h", Destination: "/a"},
			{Type: "bind", Source: "/h/x", Destination: "/b"},
			{Type: "bind", Source: "/c", Destination: "/c"},
			{Type: "bind", Source: "/c/rel/x", Destination: "/d"},
			{Type: "bind", Source: "/y", Destination: "/e", ReadOnly: true, Options: []string{"rshared"}},
		}, ""},
		{"root home", Profile{User: pointerTo("0:0"), Mounts: []MountSpec{{Source: "/s", Target: "~/t"}, {Source: "/s", Target: "~"}}},
			[]oci.Mount{{Type: "bind", Source: "/s", Destination: "/root/t"}, {Type: "bind", Source: "/s", Destination: "/root"}}, ""},
		{"named user home", Profile{User: pointerTo("alice:staff"), Mounts: []MountSpec{{Source: "/s", Target: "~/t"}}},
			[]oci.Mount{{Type: "bind", Source: "/s", Destination: "/home/alice/t"}}, ""},
		{"HOME in env", Profile{User: pointerTo("1000"), Env: map[string]string{"HOME": "/opt/me"}, Mounts: []MountSpec{{Source: "/s", Target: "~/t"}}},
			[]oci.Mount{{Type: "bind", Source: "/s", Destination: "/opt/me/t"}}, ""},
		{"tmpfs size in bytes", Profile{Mounts: []MountSpec{{Type: "tmpfs", Target: "/tmp", Options: []string{"size=64m", "noexec"}}}},
			[]oci.Mount{{Type: "tmpfs", Destination: "/tmp", Options: []string{"size=67108864", "noexec"}}}, ""},
		{"expanded targets that meet: the later wins", Profile{User: pointerTo("root"), Mounts: []MountSpec{{Source: "/a", Target: "~/.ssh"}, {Source: "/b", Target: "/x"}, {Source: "/c", Target: "/root/.ssh/"}}},
			[]oci.Mount{{Type: "bind", Source: "/c", Destination: "/root/.ssh"}, {Type: "bind", Source: "/b", Destination: "/x"}}, ""},
		{"optional ~ target of a numeric user is skipped", Profile{User: pointerTo("1000"), Mounts: []MountSpec{{Source: "/s", Target: "~/t", Optional: true}, {Source: "/s", Target: "/t"}}},
			[]oci.Mount{{Type: "bind", Source: "/s", Destination: "/t"}}, ""},
		{"numeric user without HOME", Profile{User: pointerTo("1000"), Mounts: []MountSpec{{Source: "/s", Target: "~/t"}}},
			nil, `cannot tell the home of user "1000"`},
		{"~user source", Profile{Mounts: []MountSpec{{Source: "~bob/x", Target: "/t"}}},
			nil, `~user paths are not supported`},
		{"relative HOME", Profile{Env: map[string]string{"HOME": "me"}, Mounts: []MountSpec{{Source: "/s", Target: "~/t"}}},
			nil, `env HOME "me" is not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolved{Profile: tt.profile, Sources: map[string]string{}}
			sb, err := sandboxOf(r, h)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sb.Mounts, tt.want) {
				t.Errorf("mounts =\n%+v\nwant\n%+v", sb.Mounts, tt.want)
			}
		})
	}
	t.Run("unknown home", func(t *testing.T) {
		r := &Resolved{Profile: Profile{Mounts: []MountSpec{{Source: "~/x", Target: "/x"}}}}
		if _, err := sandboxOf(r, HostEnv{Cwd: "/c"}); err == nil || !strings.Contains(err.Error(), "home directory is unknown") {
			t.Errorf("err = %v, want the unknown home named", err)
		}
	})
	t.Run("workdir under the sandbox home", func(t *testing.T) {
		r := &Resolved{Profile: Profile{User: pointerTo("alice"), Workdir: pointerTo("~/src")}}
		sb, err := sandboxOf(r, h)
		if err != nil {
			t.Fatal(err)
		}
		if sb.Workdir != "/home/alice/src" {
			t.Errorf("workdir = %q, want /home/alice/src", sb.Workdir)
		}
	})
}

func TestSandboxCreateAndOptional(t *testing.T) {
	home := t.TempDir()
	present := filepath.Join(home, "present")
	if err := os.Mkdir(present, 0o755); err != nil {
		t.Fatal(err)
	}
	h := HostEnv{Home: home, Cwd: home}
	tests := []struct {
		name       string
		mount      MountSpec
		wantMount  bool
		wantExists bool
	}{
		{"create missing", MountSpec{Source: "~/cache/a", Target: "/a", Create: true}, true, true},
		{"create present", MountSpec{Source: "~/present", Target: "/a", Create: true}, true, true},
		{"optional missing", MountSpec{Source: "~/nope", Target: "/a", Optional: true}, false, false},
		{"optional present", MountSpec{Source: "~/present", Target: "/a", Optional: true}, true, true},
		{"plain missing is left to oci.Validate", MountSpec{Source: "~/gone", Target: "/a"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolved{Profile: Profile{Mounts: []MountSpec{tt.mount}}}
			sb, err := sandboxOf(r, h)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(sb.Mounts) == 1; got != tt.wantMount {
				t.Errorf("mounted = %v, want %v (%+v)", got, tt.wantMount, sb.Mounts)
			}
			src, _ := expandSource(tt.mount.Source, h)
			if _, err := os.Stat(src); (err == nil) != tt.wantExists {
				t.Errorf("source %q exists = %v, want %v", src, err == nil, tt.wantExists)
			}
		})
	}
	t.Run("nothing created when another mount is bad", func(t *testing.T) {
		r := &Resolved{Profile: Profile{User: pointerTo("1000"), Mounts: []MountSpec{
			{Source: "~/cache/b", Target: "/b", Create: true},
			{Source: "/s", Target: "~/t"},
		}}}
		if _, err := sandboxOf(r, h); err == nil {
			t.Fatal("Sandbox succeeded, want an error for the ~ target of uid 1000")
		}
		if _, err := os.Stat(filepath.Join(home, "cache/b")); !os.IsNotExist(err) {
			t.Errorf("cache created although Sandbox failed: %v", err)
		}
	})
}

func TestSandboxSecurityOpt(t *testing.T) {
	h := HostEnv{Home: "/h", Cwd: "/c"}
	tests := []struct {
		opts     []string
		nnp      bool
		seccomp  string
		apparmor string
		wantErr  string
	}{
		{nil, true, "", "", ""},
		{[]string{"no-new-privileges=false"}, false, "", "", ""},
		{[]string{"no-new-privileges:false", "no-new-privileges"}, true, "", "", ""},
		{[]string{"no-new-privileges=true"}, true, "", "", ""},
		{[]string{"seccomp=unconfined"}, true, "unconfined", "", ""},
		{[]string{"seccomp=~/p.json"}, true, "/h/p.json", "", ""},
		{[]string{"seccomp=rel.json"}, true, "/c/rel.json", "", ""},
		{[]string{"seccomp=unconfined", "seccomp=builtin"}, true, "", "", ""},
		{[]string{"apparmor=unconfined"}, true, "", "unconfined", ""},
		{[]string{"apparmor:my-profile"}, true, "", "my-profile", ""},
		{[]string{"label=disable"}, false, "", "", `"label=disable" is not supported`},
		{[]string{"no-new-privileges=maybe"}, false, "", "", `invalid security-opt "no-new-privileges=maybe"`},
		{[]string{"no-new-privileges="}, false, "", "", `invalid security-opt "no-new-privileges="`},
		{[]string{"seccomp="}, false, "", "", `invalid security-opt "seccomp="`},
		{[]string{"foo=bar"}, false, "", "", `unknown security-opt "foo=bar"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.opts, ","), func(t *testing.T) {
			r := &Resolved{Profile: Profile{SecurityOpt: tt.opts}}
			sb, err := sandboxOf(r, h)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sb.NoNewPrivileges != tt.nnp || sb.Seccomp != tt.seccomp || sb.AppArmor != tt.apparmor {
				t.Errorf("nnp, seccomp, apparmor = %v, %q, %q; want %v, %q, %q", sb.NoNewPrivileges, sb.Seccomp, sb.AppArmor, tt.nnp, tt.seccomp, tt.apparmor)
			}
		})
	}
}

func TestSandboxFields(t *testing.T) {
	r := &Resolved{Profile: Profile{
		Entrypoint:  []string{},
		Command:     []string{"python3", "x.py"},
		Env:         map[string]string{"B": "2", "A": "1"},
		Memory:      pointerTo("512m"),
		MemorySwap:  pointerTo("-1"),
		ShmSize:     pointerTo("2g"),
		CPUs:        pointerTo(1.5),
		PidsLimit:   pointerTo(int64(-1)),
		Privileged:  pointerTo(true),
		ReadOnly:    pointerTo(true),
		CapAdd:      []string{"SYS_PTRACE"},
		CapDrop:     []string{"ALL"},
		Network:     pointerTo("none"),
		Hostname:    pointerTo("box"),
		User:        pointerTo("1000:1000"),
		Workdir:     pointerTo("/w/"),
		Labels:      map[string]string{"x": "y"},
		Image:       pointerTo("img"),
		StopSignal:  pointerTo("SIGINT"),
		StopTimeout: pointerTo(3),
	}}
	got, err := sandboxOf(r, HostEnv{Home: "/h", Cwd: "/c"})
	if err != nil {
		t.Fatal(err)
	}
	want := &oci.Sandbox{
		Entrypoint:      []string{},
		EntrypointSet:   true,
		Args:            []string{"python3", "x.py"},
		Env:             []string{"A=1", "B=2"},
		Workdir:         "/w",
		User:            "1000:1000",
		Hostname:        "box",
		Memory:          512 << 20,
		MemorySwap:      -1,
		CPUs:            1.5,
		ShmSize:         2 << 30,
		Network:         "none",
		ReadOnly:        true,
		CapAdd:          []string{"CAP_SYS_PTRACE"},
		CapDrop:         []string{"ALL"},
		Privileged:      true,
		NoNewPrivileges: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sandbox() =\n%+v\nwant\n%+v", got, want)
	}

	none, err := sandboxOf((&Resolved{}), HostEnv{})
	if err != nil {
		t.Fatal(err)
	}
	if none.EntrypointSet || none.Entrypoint != nil || none.Args != nil {
		t.Errorf("unset entrypoint and command gave %+v, want the image's kept", none)
	}
}

func TestResolveFlagsAndImages(t *testing.T) {
	p := builtins(t)
	t.Run("unknown profile", func(t *testing.T) {
		_, err := p.Resolve("nope", nil)
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `profile "nope" not found`) {
			t.Errorf("err = %v, want not found naming the profile", err)
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		tests := []struct {
			flags Profile
			want  string
		}{
			{Profile{Memory: pointerTo("8x")}, `--memory: invalid size "8x"`},
			{Profile{Network: pointerTo("-bridge")}, `--net: unknown network "-bridge"`},
			{Profile{Pull: pointerTo("sometimes")}, `--pull: unknown pull policy`},
			{Profile{Mounts: []MountSpec{{Source: "/a", Target: "rel"}}}, `-v/--mount rel: mount target "rel" is not an absolute path`},
			{Profile{SecurityOpt: []string{"label=x"}}, `--security-opt: security-opt "label=x" is not supported`},
			{Profile{AddHosts: []string{"db"}}, `--add-host: "db" has no IP address: use HOST:IP`},
			{Profile{AddHosts: []string{"db:1.2.3"}}, `--add-host: "db:1.2.3": "1.2.3" is not an IP address`},
			{Profile{DNS: []string{"x"}}, `--dns: "x" is not an IP address`},
			{Profile{DNSSearch: []string{"a b"}}, `--dns-search: "a b" is not one domain`},
			{Profile{DNSOptions: []string{"a b"}}, `--dns-option: "a b" is not one option`},
		}
		for _, tt := range tests {
			_, err := p.Resolve("base", &tt.flags)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("err = %v, want an invalid-argument error containing %q", err, tt.want)
			}
		}
	})
	t.Run("image ref", func(t *testing.T) {
		r, err := p.Resolve("base", nil)
		if err != nil {
			t.Fatal(err)
		}
		if ref, err := r.ImageRef(); ref != ImageBase || err != nil {
			t.Errorf("ImageRef() = %q, %v; want %q", ref, err, ImageBase)
		}
		q, _, err := loadConfig(t, "profiles:\n  bare: {memory: 1g}\n")
		if err != nil {
			t.Fatal(err)
		}
		r, err = q.Resolve("bare", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ImageRef(); err == nil || !strings.Contains(err.Error(), `profile "bare" names no image`) {
			t.Errorf("ImageRef() err = %v, want the missing image named", err)
		}
	})
	t.Run("flags do not change extends", func(t *testing.T) {
		r, err := p.Resolve("test", &Profile{Extends: "model-dev", Description: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Profile.ShmSize == nil || *r.Profile.ShmSize != "1g" || r.Profile.Description != p.Description("test") {
			t.Errorf("flags' extends or description were applied: %+v", r.Profile)
		}
	})
	t.Run("image", func(t *testing.T) {
		r, err := p.ResolveImage("docker.io/library/alpine:3", &Profile{Image: pointerTo("other"), Env: map[string]string{"A": "1"}, Memory: pointerTo("1g")})
		if err != nil {
			t.Fatal(err)
		}
		if r.Name != "" || r.Chain != nil || *r.Profile.Image != "docker.io/library/alpine:3" || r.Sources["image"] != "argument" {
			t.Errorf("name %q, chain %v, image %q from %q; want a plain image run of the argument", r.Name, r.Chain, *r.Profile.Image, r.Sources["image"])
		}
		if len(r.Profile.Mounts) != 0 || !reflect.DeepEqual(r.Profile.Env, map[string]string{"A": "1"}) || *r.Profile.Memory != "1g" {
			t.Errorf("profile = %+v, want only the flags' env and memory", r.Profile)
		}
		if *r.Profile.Pull != "missing" || r.Sources["pull"] != "built-in" {
			t.Errorf("pull = %q from %q, want missing from built-in", *r.Profile.Pull, r.Sources["pull"])
		}
		if _, err := p.ResolveImage(" ", nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ResolveImage(\" \") err = %v, want invalid argument", err)
		}
	})
}

func TestDescribe(t *testing.T) {
	const config = `profiles:
  mine:
    extends: model-dev
    entrypoint: []
    command: [sh, -c, "echo a #b"]
    env:
      ODD: ":99"
      TILDE: "~"
      YES: "yes"
      NUM: "1.10"
      EMPTY: ""
    mounts:
      - ~/data:/data:ro
    labels: {team: ml}
    cap_add: [SYS_PTRACE]
    security_opt: [seccomp=unconfined]
    user: "1000"
    cpus: 1.5
    pids_limit: 100
    privileged: false
`
	p, file, err := loadConfig(t, config)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Resolve("mine", &Profile{Memory: pointerTo("8g"), CapAdd: []string{"NET_ADMIN"}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.Describe(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`(?m)^# profile mine \(extends model-dev -> base\)$`,
		`(?m)^memory: 8g +# flag$`,
		`(?m)^shm_size: 2g +# built-in$`,
		`(?m)^user: "1000" +# ` + regexp.QuoteMeta(file) + `:17$`,
		`(?m)^cap_add: \[SYS_PTRACE, NET_ADMIN\] +# ` + regexp.QuoteMeta(file) + `:15, flag$`,
		`(?m)^env:$`,
		`(?m)^  PYTHONPATH: /workspace +# built-in$`,
		`(?m)^  - \{source: ~/data, target: /data, readonly: true\} +# ` + regexp.QuoteMeta(file) + `:13$`,
		`(?m)^entrypoint: \[\] +# `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("Describe output does not match %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "extends:") {
		t.Errorf("Describe output shows extends, which Resolve flattened:\n%s", out)
	}

	// The output is YAML that reads back as the same profile.
	var back Profile
	if err := strictYAML([]byte(out), &back); err != nil {
		t.Fatalf("Describe output is not a strict profile: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, r.Profile) {
		t.Errorf("Describe output reads back as\n%+v\nwant\n%+v\noutput:\n%s", back, r.Profile, out)
	}

	var img strings.Builder
	ri, err := p.ResolveImage("alpine:3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ri.Describe(&img); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.String(), "# image alpine:3, no profile\n") || !regexp.MustCompile(`(?m)^image: "?alpine:3"? +# argument$`).MatchString(img.String()) {
		t.Errorf("image Describe output:\n%s", img.String())
	}
}

// TestHostsDNSKeys: add_hosts and the dns keys of a file and of the flags
// are appended, reach the sandbox, and are named in a file's errors by key.
func TestHostsDNSKeys(t *testing.T) {
	q, _, err := loadConfig(t, "profiles:\n  mine:\n    extends: base\n    add_hosts: [\"db:10.1.2.3\"]\n    dns: [192.0.2.53]\n    dns_search: [example.test]\n    dns_options: [\"ndots:2\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	r, err := q.Resolve("mine", &Profile{AddHosts: []string{"gw:host-gateway"}, DNS: []string{"192.0.2.54"}})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sandboxOf(r, HostEnv{Home: t.TempDir(), Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sb.ExtraHosts, []string{"db:10.1.2.3", "gw:host-gateway"}) || !slices.Equal(sb.DNSServers, []string{"192.0.2.53", "192.0.2.54"}) ||
		!slices.Equal(sb.DNSSearch, []string{"example.test"}) || !slices.Equal(sb.DNSOptions, []string{"ndots:2"}) {
		t.Errorf("sandbox has hosts %q, dns %q, search %q, options %q", sb.ExtraHosts, sb.DNSServers, sb.DNSSearch, sb.DNSOptions)
	}
	var b strings.Builder
	if err := r.Describe(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "add_hosts: ['db:10.1.2.3', 'gw:host-gateway']") || !strings.Contains(b.String(), "dns_options: ['ndots:2']") {
		t.Errorf("profiles show lacks the keys:\n%s", b.String())
	}
	bad, _, err := loadConfig(t, "profiles:\n  bad:\n    extends: base\n    add_hosts: [db]\n")
	if err == nil {
		_, err = bad.Resolve("bad", nil)
	}
	if err == nil || !strings.Contains(err.Error(), "add_hosts") || !strings.Contains(err.Error(), `"db" has no IP address`) {
		t.Errorf("a bad add_hosts in a file: err = %v, want the key and the value named", err)
	}
}
