package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"go.yaml.in/yaml/v3"
)

// profileFiles writes the given layers (system, user, project, config; ""
// leaves a file out) into a temporary directory and returns options that
// read exactly those files.
func profileFiles(t *testing.T, system, user, project, config string) LoadOptions {
	t.Helper()
	dir := t.TempDir()
	opts := LoadOptions{
		SystemFile:  filepath.Join(dir, "system.yaml"),
		UserFile:    filepath.Join(dir, "user.yaml"),
		ProjectFile: filepath.Join(dir, "project.yaml"),
	}
	for path, text := range map[string]string{opts.SystemFile: system, opts.UserFile: user, opts.ProjectFile: project} {
		if text == "" {
			continue
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if config != "" {
		opts.ConfigFile = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(opts.ConfigFile, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

// loadConfig loads the built-ins plus one --config file holding text.
func loadConfig(t *testing.T, text string) (*Set, string, error) {
	t.Helper()
	opts := profileFiles(t, "", "", "", text)
	p, err := Load(opts)
	return p, opts.ConfigFile, err
}

func TestLoadProfilesLayering(t *testing.T) {
	const system = `profiles:
  base:
    memory: 1g
    env:
      A: system
      B: system
    cap_add: [SYS_PTRACE]
`
	const user = `profiles:
  base:
    memory: 2g
    env:
      B: user
    mounts:
      - /u:/data
`
	const project = `profiles:
  base:
    env: {C: project}
    cap_add: [NET_ADMIN]
    mounts:
      - {source: /p, target: /data/, readonly: true}
`
	const config = `profiles:
  base:
    workdir: /cfg
`
	opts := profileFiles(t, system, user, project, config)
	p, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	flags := &Profile{Memory: pointerTo("8g"), Env: map[string]string{"A": "flag"}, CapAdd: []string{"SYS_ADMIN"}}
	r, err := p.Resolve("base", flags)
	if err != nil {
		t.Fatal(err)
	}

	at := func(file string, line int) string { return fmt.Sprintf("%s:%d", file, line) }
	wantEnv := map[string]string{"A": "flag", "B": "user", "C": "project", "PYTHONPATH": "/workspace", "NODE_ENV": "development"}
	if !reflect.DeepEqual(r.Profile.Env, wantEnv) {
		t.Errorf("env = %v, want %v", r.Profile.Env, wantEnv)
	}
	if got := *r.Profile.Memory; got != "8g" {
		t.Errorf("memory = %q, want 8g (flag)", got)
	}
	if got := *r.Profile.Workdir; got != "/cfg" {
		t.Errorf("workdir = %q, want /cfg", got)
	}
	if want := []string{"SYS_PTRACE", "NET_ADMIN", "SYS_ADMIN"}; !slices.Equal(r.Profile.CapAdd, want) {
		t.Errorf("cap_add = %v, want %v", r.Profile.CapAdd, want)
	}
	wantMounts := []MountSpec{
		{Source: ".", Target: "/workspace"},
		{Source: "~/.gitconfig", Target: "~/.gitconfig", ReadOnly: true, Optional: true},
		{Source: "~/.ssh", Target: "~/.ssh", ReadOnly: true, Optional: true},
		{Source: "/p", Target: "/data/", ReadOnly: true}, // the project's mount replaced the user's
	}
	if !reflect.DeepEqual(r.Profile.Mounts, wantMounts) {
		t.Errorf("mounts = %+v, want %+v", r.Profile.Mounts, wantMounts)
	}

	wantSources := map[string]string{
		"description":         "built-in",
		"image":               "built-in",
		"pull":                "built-in",
		"network":             "built-in",
		"stop_signal":         "built-in",
		"stop_timeout":        "built-in",
		"userns":              "built-in",
		"memory":              "flag",
		"workdir":             at(opts.ConfigFile, 3),
		"env.A":               "flag",
		"env.B":               at(opts.UserFile, 5),
		"env.C":               at(opts.ProjectFile, 3),
		"env.PYTHONPATH":      "built-in",
		"env.NODE_ENV":        "built-in",
		"cap_add":             at(opts.SystemFile, 7) + ", " + at(opts.ProjectFile, 4) + ", flag",
		"mounts./workspace":   "built-in",
		"mounts.~/.gitconfig": "built-in",
		"mounts.~/.ssh":       "built-in",
		"mounts./data":        at(opts.ProjectFile, 6),
	}
	if !reflect.DeepEqual(r.Sources, wantSources) {
		for k, v := range r.Sources {
			if wantSources[k] != v {
				t.Errorf("Sources[%q] = %q, want %q", k, v, wantSources[k])
			}
		}
		for k, v := range wantSources {
			if _, ok := r.Sources[k]; !ok {
				t.Errorf("Sources[%q] missing, want %q", k, v)
			}
		}
	}
}

func TestLoadProfilesExtends(t *testing.T) {
	const user = `profiles:
  base:
    env: {FROM_USER: "1"}
    workdir: /user
  b:
    extends: model-dev
    memory: 3g
  a:
    extends: b
    description: mine
    hostname: a
`
	const project = `profiles:
  b:
    memory: 4g
`
	p, err := Load(profileFiles(t, "", user, project, ""))
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Resolve("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "model-dev", "base"}; !slices.Equal(r.Chain, want) {
		t.Errorf("chain = %v, want %v", r.Chain, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"env from the user's base", r.Profile.Env["FROM_USER"], "1"},
		{"model-dev's workdir over the user's base", *r.Profile.Workdir, "/workspace/models"},
		{"project's b over user's b", *r.Profile.Memory, "4g"},
		{"model-dev's shm", *r.Profile.ShmSize, "2g"},
		{"own hostname", *r.Profile.Hostname, "a"},
		{"image from model-dev", *r.Profile.Image, ImageModelDev},
		{"extends cleared", r.Profile.Extends, ""},
		{"own description", r.Profile.Description, "mine"},
		{"description only by name", p.Description("b"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if want := []string{"a", "b", "base", "model-dev", "test"}; !slices.Equal(p.Names(), want) {
		t.Errorf("Names() = %v, want %v", p.Names(), want)
	}
	if !p.Has("b") || p.Has("alpine") {
		t.Errorf("Has(b) = %v, Has(alpine) = %v; want true, false", p.Has("b"), p.Has("alpine"))
	}
}

func TestLoadProfilesErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"unknown key", "profiles:\n  base:\n    memroy: 4g\n", 3, `unknown key "memroy" in profile "base": did you mean "memory"?`},
		{"unknown key far from any", "profiles:\n  base:\n    tolerations: all\n", 3, `unknown key "tolerations" in profile "base": use one of`},
		{"devices is a list", "profiles:\n  base:\n    devices: nvidia.com/gpu=0\n", 3, `"devices" in profile "base" must be a list of strings`},
		{"bad gpus", "profiles:\n  base:\n    gpus: some\n", 3, `invalid GPU request "some"`},
		{"bad gpu", "profiles:\n  base:\n    gpu: maybe\n", 3, `unknown gpu "maybe": use required or optional`},
		{"bad CDI device", "profiles:\n  base:\n    devices: [gpu0]\n", 3, `invalid CDI device "gpu0"`},
		{"compose key", "profiles:\n  base:\n    volumes: [/a:/b]\n", 3, `unknown key "volumes" in profile "base": sbxrun calls it "mounts"`},
		{"wrong type list for string", "profiles:\n  base:\n    memory: [1]\n", 3, `"memory" in profile "base" must be a string, not a list`},
		{"wrong type string for bool", "profiles:\n  base:\n    privileged: \"yes\"\n", 3, `must be true or false, not a string`},
		{"float for int", "profiles:\n  base:\n    pids_limit: 1.5\n", 3, `"pids_limit" in profile "base" must be an integer`},
		{"string for number", "profiles:\n  base:\n    cpus: two\n", 3, `must be a number`},
		{"float for string", "profiles:\n  x:\n    image: 1.10\n", 3, `write it in quotes, as "1.10"`},
		{"float env value", "profiles:\n  x:\n    env:\n      V: 3.10\n", 4, `env.V must be a string, not a number: write it in quotes`},
		{"null env value", "profiles:\n  x:\n    env:\n      V:\n", 4, `env.V has no value`},
		{"string for list", "profiles:\n  x:\n    cap_add: SYS_ADMIN\n", 3, `must be a list of strings`},
		{"bad size", "profiles:\n  x:\n\n    memory: 4x\n", 4, `memory in profile "x": invalid size "4x"`},
		{"bad shm size", "profiles:\n  x:\n    shm_size: big\n", 3, `shm_size in profile "x": invalid size "big"`},
		{"bad swap", "profiles:\n  x:\n    memory_swap: -2\n", 3, `invalid memory-swap "-2"`},
		{"bad mount string", "profiles:\n  x:\n    mounts:\n      - /only-one-part\n", 4, `invalid volume "/only-one-part"`},
		{"bad mount option", "profiles:\n  x:\n    mounts:\n      - ~/a:~/b:bogus\n", 4, `invalid volume "~/a:~/b:bogus": unknown option "bogus"`},
		{"relative mount target", "profiles:\n  x:\n    mounts:\n      - {source: /a, target: rel}\n", 4, `mount target "rel" is not an absolute path`},
		{"mount without source", "profiles:\n  x:\n    mounts:\n      - {target: /t}\n", 4, `mount "/t" has no source`},
		{"unknown mount key", "profiles:\n  x:\n    mounts:\n      - {source: /a, target: /b, readony: true}\n", 4, `unknown mount key "readony": did you mean "readonly"?`},
		{"tmpfs with source", "profiles:\n  x:\n    mounts:\n      - {type: tmpfs, source: /a, target: /b}\n", 4, `tmpfs mount "/b" takes no source`},
		{"mount not a mapping", "profiles:\n  x:\n    mounts:\n      - [a, b]\n", 4, `a mount must be SRC:DST[:ro]`},
		{"bad pull", "profiles:\n  x:\n    pull: sometimes\n", 3, `unknown pull policy "sometimes"`},
		{"bad network", "profiles:\n  x:\n    network: \"bad name!\"\n", 3, `unknown network "bad name!": use host, none, bridge or a network name`},
		{"bad stop signal", "profiles:\n  x:\n    stop_signal: SIGNOPE\n", 3, `unknown signal "SIGNOPE"`},
		{"selinux label", "profiles:\n  x:\n    security_opt: [\"label=disable\"]\n", 3, `"label=disable" is not supported`},
		{"unknown security opt", "profiles:\n  x:\n    security_opt: [systempaths=unconfined]\n", 3, `unknown security-opt "systempaths=unconfined"`},
		{"relative workdir", "profiles:\n  x:\n    workdir: src\n", 3, `workdir "src" is not an absolute path`},
		{"negative stop timeout", "profiles:\n  x:\n    stop_timeout: -3\n", 3, `invalid stop timeout -3`},
		{"unknown extends", "profiles:\n  x:\n    image: a\n    extends: nope\n", 4, `profile "x" extends unknown profile "nope"`},
		{"extends cycle", "profiles:\n  x:\n    extends: y\n  y:\n    extends: x\n", 3, `extends itself through x -> y -> x`},
		{"unknown top-level key", "profile:\n  x: {}\n", 1, `unknown top-level key "profile"`},
		{"profiles not a mapping", "profiles: [a]\n", 1, `"profiles" must be a mapping`},
		{"profile not a mapping", "profiles:\n  x: 3\n", 2, `profile "x" must be a mapping`},
		{"file not a mapping", "- a\n", 1, `must be a mapping with a "profiles:" key`},
		{"image-like profile name", "profiles:\n  docker.io/alpine:\n    memory: 1g\n", 2, `invalid profile name "docker.io/alpine"`},
		{"duplicate key", "profiles:\n  x:\n    memory: 1g\n    memory: 2g\n", 4, `"memory" already defined`},
		{"two documents", "profiles: {}\n---\nprofiles: {}\n", 2, `more than one YAML document`},
		{"syntax error", "profiles:\n  x: [\n", 2, ``},
		{"alias wrong type", "x-a: &a [1]\nprofiles:\n  x:\n    memory: *a\n", 1, `wrong type: a list where a string is expected`},
		{"unknown key through a merge key", "x-a: &a {memroy: 1g}\nprofiles:\n  x:\n    <<: *a\n", 1, `unknown field "memroy"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, file, err := loadConfig(t, tt.yaml)
			if err == nil {
				t.Fatalf("Load succeeded, want an error containing %q", tt.want)
			}
			if prefix := fmt.Sprintf("%s:%d: ", file, tt.line); !strings.HasPrefix(err.Error(), prefix) && tt.want != "" {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name the file %q", err, file)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q is not errdefs.ErrInvalidArgument", err)
			}
		})
	}
}

func TestLoadProfilesFiles(t *testing.T) {
	t.Run("missing defaults are fine", func(t *testing.T) {
		p, err := Load(profileFiles(t, "", "", "", ""))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"base", "model-dev", "test"}; !slices.Equal(p.Names(), want) {
			t.Errorf("Names() = %v, want %v", p.Names(), want)
		}
	})
	t.Run("missing config file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.yaml")
		opts := profileFiles(t, "", "", "", "")
		opts.ConfigFile = missing
		_, err := Load(opts)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", missing)) || !strings.Contains(err.Error(), "--config") {
			t.Errorf("err = %v, want an error naming %q and --config", err, missing)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		opts := profileFiles(t, "", "", "", "")
		opts.SystemFile = t.TempDir() // a directory cannot be read as a file
		_, err := Load(opts)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", opts.SystemFile)) {
			t.Errorf("err = %v, want an error naming %q", err, opts.SystemFile)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		dir := t.TempDir()
		files := map[string]string{
			"etc/sbxrun.yaml":           "profiles:\n  s: {memory: 1g}\n",
			"xdg/sbxrun/sbxrun.yaml":    "profiles:\n  u: {memory: 1g}\n",
			"project/sbxrun.yaml":       "profiles:\n  p: {memory: 1g}\n",
			"home/.config/sbxrun/x.yml": "not read",
		}
		for name, text := range files {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("SBXRUN_SYSTEM_CONFIG", filepath.Join(dir, "etc/sbxrun.yaml"))
		t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
		t.Chdir(filepath.Join(dir, "project"))
		p, err := Load(LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"s", "u", "p"} {
			if !p.Has(name) {
				t.Errorf("profile %q from its default file not loaded; have %v", name, p.Names())
			}
		}
		r, err := p.Resolve("p", nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "project/sbxrun.yaml") + ":2"; r.Sources["memory"] != want {
			t.Errorf("Sources[memory] = %q, want the absolute project file %q", r.Sources["memory"], want)
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		text := "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
		for prev, c := 'a', 'b'; c <= 'i'; prev, c = c, c+1 {
			text += fmt.Sprintf("x-%c: &%c [%s]\n", c, c, strings.Repeat("*"+string(prev)+", ", 9)+"*"+string(prev))
		}
		text += "profiles:\n  x:\n    command: *i\n"
		_, file, err := loadConfig(t, text)
		if err == nil || !strings.HasPrefix(err.Error(), file+": more than 100000 values") {
			t.Errorf("err = %v, want the alias expansion refused", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, file, err := loadConfig(t, "profiles: {}\n"+strings.Repeat("# padding\n", maxProfileFile/10+1))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", file)) || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("err = %v, want the file refused as too large", err)
		}
	})
	t.Run("same file twice is read once", func(t *testing.T) {
		opts := profileFiles(t, "", "", "profiles:\n  base:\n    cap_add: [NET_ADMIN]\n", "")
		opts.ConfigFile = opts.ProjectFile
		p, err := Load(opts)
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Resolve("base", nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"NET_ADMIN"}; !slices.Equal(r.Profile.CapAdd, want) {
			t.Errorf("cap_add = %v, want %v", r.Profile.CapAdd, want)
		}
	})
}

func TestMountForms(t *testing.T) {
	const text = `profiles:
  x:
    mounts:
      - ~/data:/data:ro
      - ./src:/src:rprivate
      - ~/x:~/x
      - {source: ~/.cache/x, target: ~/.cache/x, create: true}
      - {source: ~/.ssh, target: ~/.ssh, readonly: true, optional: true}
      - {type: tmpfs, target: /scratch, options: [size=64m, noexec]}
      - source: /opt
        target: /opt
        options: [rslave]
`
	p, file, err := loadConfig(t, text)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Resolve("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []MountSpec{
		{Source: "~/data", Target: "/data", ReadOnly: true},
		{Source: "./src", Target: "/src", Options: []string{"rprivate"}},
		{Source: "~/x", Target: "~/x"},
		{Source: "~/.cache/x", Target: "~/.cache/x", Create: true},
		{Source: "~/.ssh", Target: "~/.ssh", ReadOnly: true, Optional: true},
		{Type: "tmpfs", Target: "/scratch", Options: []string{"size=64m", "noexec"}},
		{Source: "/opt", Target: "/opt", Options: []string{"rslave"}},
	}
	if !reflect.DeepEqual(r.Profile.Mounts, want) {
		t.Errorf("mounts =\n%+v\nwant\n%+v", r.Profile.Mounts, want)
	}
	for key, line := range map[string]int{"mounts./data": 4, "mounts.~/x": 6, "mounts./scratch": 9, "mounts./opt": 10} {
		if want := fmt.Sprintf("%s:%d", file, line); r.Sources[key] != want {
			t.Errorf("Sources[%q] = %q, want %q", key, r.Sources[key], want)
		}
	}
}

func TestParseMountSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    MountSpec
		wantErr string
	}{
		{"/a:/b", MountSpec{Source: "/a", Target: "/b"}, ""},
		{"~/a:/b:ro", MountSpec{Source: "~/a", Target: "/b", ReadOnly: true}, ""},
		{"~/a:~", MountSpec{Source: "~/a", Target: "~"}, ""},
		{"~/a:~/b:ro,rshared", MountSpec{Source: "~/a", Target: "~/b", ReadOnly: true, Options: []string{"rshared"}}, ""},
		{"~/a:~/b:bogus", MountSpec{}, `invalid volume "~/a:~/b:bogus"`},
		{"/a:rel", MountSpec{}, `destination "rel" is not an absolute path`},
		{"/a", MountSpec{}, `invalid volume "/a"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMountSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "sbxrun-home") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("err = %v, want errdefs.ErrInvalidArgument kept through the wrapping", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// strictYAML decodes data into v as a strict caller of yaml/v3 would
// (unknown fields are errors).
func strictYAML(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// TestMountSpecUnmarshal checks the unmarshaler on its own, as a caller
// decoding mounts with yaml/v3 directly would use it.
func TestMountSpecUnmarshal(t *testing.T) {
	var got []MountSpec
	err := strictYAML([]byte("- /a:/b:ro\n- {source: /c, target: /d, create: true}\n"), &got)
	if err != nil {
		t.Fatal(err)
	}
	want := []MountSpec{{Source: "/a", Target: "/b", ReadOnly: true}, {Source: "/c", Target: "/d", Create: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	err = strictYAML([]byte("- {source: /c, target: /d, bogus: 1}\n"), &got)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("err = %v, want an unknown field error naming bogus", err)
	}
}

// TestProfileKeysCoverProfile keeps the key table in step with the struct:
// every field decodes, under its yaml key.
func TestProfileKeysCoverProfile(t *testing.T) {
	if got, want := len(profileKeys), reflect.TypeFor[Profile]().NumField(); got != want {
		t.Fatalf("profileKeys has %d keys, Profile has %d fields", got, want)
	}
	for key, kind := range profileKeys {
		if kind == kindMounts && key != "mounts" || kind == kindStringMap && key != "env" && key != "labels" {
			t.Errorf("key %q has kind %d", key, kind)
		}
	}
}

// profileSeeds are inputs for FuzzLoadProfiles.
var profileSeeds = []string{
	"",
	"profiles:\n  base:\n    memory: 4g\n",
	"profiles:\n  mine:\n    extends: model-dev\n    image: registry.example.com/mine:1\n    env: {FOO: bar}\n    mounts:\n      - ~/data:/data:ro\n      - {source: ~/.cache/x, target: ~/.cache/x, create: true}\n",
	"a: &a {memory: 1g}\nprofiles:\n  x:\n    <<: *a\n",
	"profiles:\n  x: &x\n    env: {A: 1}\n  y: *x\n",
	"profiles:\n  x:\n    extends: y\n  y:\n    extends: x\n",
	"profiles:\n  x:\n    security_opt: [no-new-privileges=false, seccomp=unconfined]\n    entrypoint: []\n    command: [sh, -c, 'echo hi']\n",
	"profiles: {x: {mounts: [{type: tmpfs, target: /t, options: [size=1m]}]}}",
	"profiles:\n  x:\n    env: !!map {A: !!str 1.0}\n",
	"---\n...\n",
	"x-a: &a [a, b]\nx-b: &b [*a, *a]\nprofiles:\n  x:\n    command: *a\n    cap_add: *b\n",
	"x-a: &a [*a]\nprofiles: {}\n",
}

func FuzzLoadProfiles(f *testing.F) {
	for _, s := range profileSeeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		none := filepath.Join(dir, "missing.yaml")
		p, err := Load(LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none, ConfigFile: file})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, name := range p.Names() {
			r, err := p.Resolve(name, nil)
			if err != nil {
				t.Fatalf("profile %q loaded but does not resolve: %v", name, err)
			}
			var b strings.Builder
			if err := r.Describe(&b); err != nil {
				t.Fatalf("Describe(%q): %v", name, err)
			}
			var back Profile
			if err := strictYAML([]byte(b.String()), &back); err != nil {
				t.Fatalf("Describe(%q) output does not read back: %v\n%s", name, err, b.String())
			}
			if !reflect.DeepEqual(back, r.Profile) {
				t.Fatalf("Describe(%q) output reads back as\n%+v\nwant\n%+v", name, back, r.Profile)
			}
		}
	})
}

// TestErrorsAreOneLine guards the file:line prefix against multi-line
// parser messages.
func TestErrorsAreOneLine(t *testing.T) {
	_, _, err := loadConfig(t, "profiles:\n  x:\n    memory: 1g\n    memory: 2g\n")
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %q, want one line", err)
	}
	var ce configError
	if !errors.As(err, &ce) {
		t.Errorf("err = %v, want a configError", err)
	}
}
