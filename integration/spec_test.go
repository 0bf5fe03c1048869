package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// runtimeSpecSchema compiles config-schema.json from the runtime-spec module
// sbxrun is built with, loading its sibling schema files by file URL.
func runtimeSpecSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join(harness.runtimeSpecDir, "schema", "config-schema.json")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("runtime-spec schema: %v (run go mod download github.com/opencontainers/runtime-spec)", err)
	}
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft4
	// defs.json of runtime-spec v1.3.0 holds one reference without the
	// leading "/" of a JSON pointer ("#definitions/uint32"), which
	// gojsonschema tolerates and this validator does not: fix it on load.
	c.LoadURL = func(u string) (io.ReadCloser, error) {
		p, ok := strings.CutPrefix(u, "file://")
		if !ok {
			return nil, fmt.Errorf("schema %q: only file URLs are loaded", u)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		b = bytes.ReplaceAll(b, []byte(`"#definitions/`), []byte(`"#/definitions/`))
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	s, err := c.Compile("file://" + filepath.ToSlash(path))
	if err != nil {
		t.Fatalf("compiling %q: %v", path, err)
	}
	return s
}

// TestSpec validates the config.json "sbxrun spec" prints against the
// runtime-spec JSON schema and checks that flags land where they should.
func TestSpec(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	schema := runtimeSpecSchema(t)
	src := t.TempDir()

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, s *specs.Spec, cwd string)
	}{
		{"base", []string{"base", "--", "echo", "hi"}, func(t *testing.T, s *specs.Spec, cwd string) {
			if s.Process == nil {
				t.Fatal("no process")
			}
			if !slices.Equal(s.Process.Args, []string{"echo", "hi"}) {
				t.Errorf("args %q, want [echo hi]", s.Process.Args)
			}
			if s.Process.Cwd != "/workspace" {
				t.Errorf("cwd %q, want /workspace", s.Process.Cwd)
			}
			if !slices.Contains(s.Process.Env, "PYTHONPATH=/workspace") || !slices.Contains(s.Process.Env, "SBXRUN_TEST_IMAGE=yes") {
				t.Errorf("env %q lacks the profile's PYTHONPATH or the image's variables", s.Process.Env)
			}
			if !s.Process.NoNewPrivileges {
				t.Error("noNewPrivileges is false, want true by default")
			}
			if s.Process.Capabilities == nil || len(s.Process.Capabilities.Effective) != 13 || slices.Contains(s.Process.Capabilities.Effective, "CAP_NET_RAW") {
				t.Errorf("capabilities %+v, want containerd's 14 defaults less NET_RAW (the host's network)", s.Process.Capabilities)
			}
			if s.Linux == nil || s.Linux.Seccomp == nil {
				t.Error("no seccomp profile")
			}
			if m := findMount(s, "/workspace"); m == nil || m.Source != cwd || m.Type != "bind" && !slices.Contains(m.Options, "rbind") {
				t.Errorf("/workspace mount %+v, want a bind of %q", m, cwd)
			}
			for _, p := range []string{"/proc/kcore", "/proc/keys"} {
				if !slices.Contains(s.Linux.MaskedPaths, p) {
					t.Errorf("maskedPaths %q lacks %s", s.Linux.MaskedPaths, p)
				}
			}
			if !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
				t.Errorf("readonlyPaths %q lacks /proc/sys", s.Linux.ReadonlyPaths)
			}
		}},
		{"flags", []string{"base", "--memory", "64m", "--cpus", "1.5", "--pids-limit", "50", "--shm-size", "128m",
			"--hostname", "h1", "--read-only", "-e", "A=B", "-v", src + ":/data:ro", "-w", "/tmp",
			"--net", "none", "--label", "team=dev", "--", "true"},
			func(t *testing.T, s *specs.Spec, _ string) {
				r := s.Linux.Resources
				if r == nil || r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 64<<20 {
					t.Errorf("memory %+v, want limit 67108864", r)
				} else if r.Memory.Swap == nil || *r.Memory.Swap != 128<<20 {
					t.Errorf("memory swap %v, want 134217728 (twice the limit, as Docker)", r.Memory.Swap)
				}
				if r == nil || r.CPU == nil || r.CPU.Quota == nil || r.CPU.Period == nil || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 {
					t.Errorf("cpu %+v, want quota 150000 per 100000", r.CPU)
				}
				if r == nil || r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 50 {
					t.Errorf("pids %+v, want 50", r.Pids)
				}
				if s.Hostname != "h1" {
					t.Errorf("hostname %q, want h1", s.Hostname)
				}
				if s.Root == nil || !s.Root.Readonly {
					t.Errorf("root %+v, want read-only", s.Root)
				}
				if !slices.Contains(s.Process.Env, "A=B") {
					t.Errorf("env %q lacks A=B", s.Process.Env)
				}
				if m := findMount(s, "/data"); m == nil || m.Source != src || !slices.Contains(m.Options, "ro") {
					t.Errorf("/data mount %+v, want a read-only bind of %q", m, src)
				}
				if m := findMount(s, "/dev/shm"); m == nil || !slices.Contains(m.Options, "size=134217728") && !slices.Contains(m.Options, "size=131072k") {
					t.Errorf("/dev/shm mount %+v, want size 128m", m)
				}
				if s.Process.Cwd != "/tmp" {
					t.Errorf("cwd %q, want /tmp", s.Process.Cwd)
				}
				if !hasNamespace(s, specs.NetworkNamespace) {
					t.Errorf("--net none: namespaces %+v lack a network namespace", s.Linux.Namespaces)
				}
			}},
		{"user", []string{"base", "-u", "1000:1000", "--", "true"}, func(t *testing.T, s *specs.Spec, _ string) {
			if s.Process.User.UID != 1000 || s.Process.User.GID != 1000 {
				t.Errorf("user %+v, want 1000:1000", s.Process.User)
			}
		}},
		{"net-host", []string{"base", "--net", "host", "--", "true"}, func(t *testing.T, s *specs.Spec, _ string) {
			if hasNamespace(s, specs.NetworkNamespace) {
				t.Errorf("--net host: namespaces %+v hold a network namespace", s.Linux.Namespaces)
			}
		}},
		{"privileged", []string{"base", "--privileged", "--", "true"}, func(t *testing.T, s *specs.Spec, _ string) {
			if s.Linux.Seccomp != nil {
				t.Error("--privileged keeps a seccomp profile")
			}
			if len(s.Process.Capabilities.Effective) <= 14 {
				t.Errorf("--privileged: %d effective capabilities, want all", len(s.Process.Capabilities.Effective))
			}
		}},
		{"run-flags-first", []string{"--memory", "8g", "base", "--", "true"}, func(t *testing.T, s *specs.Spec, _ string) {
			if r := s.Linux.Resources; r == nil || r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 8<<30 {
				t.Errorf("memory %+v, want 8g", s.Linux.Resources)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cwd := t.TempDir()
			stdout, stderr, code := runWith(t, opts{dir: cwd}, append([]string{"spec"}, tt.args...)...)
			expect(t, "sbxrun spec "+strings.Join(tt.args, " "), code, 0, stdout, stderr)
			if code != 0 {
				return
			}
			var doc any
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("sbxrun spec printed no JSON: %v\n%s", err, stdout)
			}
			if err := schema.Validate(doc); err != nil {
				t.Errorf("config.json does not validate against the runtime-spec schema:\n%#v", err)
			}
			var s specs.Spec
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatalf("decoding the spec: %v", err)
			}
			if s.Linux == nil || s.Process == nil {
				t.Fatalf("spec without linux or process section:\n%s", stdout)
			}
			tt.check(t, &s, cwd)
		})
	}

	t.Run("missing-image", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := run(t, "spec", "--pull", "never", "localhost/sbxrun-test/no-such-image:1")
		expect(t, "sbxrun spec of a missing image with --pull never", code, 125, stdout, stderr)
	})
}

func findMount(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func hasNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return true
		}
	}
	return false
}
