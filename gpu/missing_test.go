package gpu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sbxrun/sbxrun/oci"
)

// TestGenerateMissing: GPUs asked for on a host whose driver is loaded but
// that has no spec (after a reboot emptied /var/run/cdi) get one generated;
// a host with a spec, with a refused NVIDIA spec, or without a driver is
// left as it is.
func TestGenerateMissing(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	gen := Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)}
	withSpec := func(t *testing.T, mode os.FileMode) string {
		dir := t.TempDir()
		raw, err := Generate(gen)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "nvidia.yaml")
		if err := writeSpec(p, raw); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name     string
		dir      func(t *testing.T) string
		driver   bool
		rewrite  bool
		inMemory bool
	}{
		{"no spec, a user: in memory", func(t *testing.T) string { return t.TempDir() }, true, false, true},
		{"no spec, root with other spec dirs: in memory, nothing written", func(t *testing.T) string { return t.TempDir() }, true, true, true},
		{"a spec exists: nothing to do", func(t *testing.T) string { return withSpec(t, 0o644) }, true, true, false},
		{"a refused NVIDIA spec: its refusal is the message", func(t *testing.T) string { return withSpec(t, 0o666) }, true, true, false},
		{"two specs defining the same devices: not missing (the conflict is the message)", func(t *testing.T) string {
			dir := withSpec(t, 0o644)
			b, err := os.ReadFile(filepath.Join(dir, "nvidia.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "copy.yaml"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, true, true, false},
		{"no driver loaded: nothing to generate", func(t *testing.T) string { return t.TempDir() }, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir(t)
			if tt.driver {
				fakeProcVersion(t, procLine(mockVersion))
			} else {
				fakeProcVersion(t, "")
			}
			reg, err := oci.LoadCDI([]string{dir}, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := len(reg.Devices(Kind))
			got, note, err := GenerateMissing(reg, RefreshOptions{Rewrite: tt.rewrite, Generate: gen})
			if err != nil {
				t.Fatalf("GenerateMissing: %v", err)
			}
			s := got.SpecFor(Kind + "=all")
			if !tt.inMemory {
				if note != "" || len(got.Devices(Kind)) != before {
					t.Errorf("note %q, %d devices (had %d): want nothing done", note, len(got.Devices(Kind)), before)
				}
				return
			}
			if s == nil || !s.InMemory || s.Path != DefaultSpecPath {
				t.Fatalf("spec of %s=all: %+v; want one generated in memory named %s", Kind, s, DefaultSpecPath)
			}
			if err := got.Resolve([]string{Kind + "=all", Kind + "=0"}); err != nil {
				t.Errorf("Resolve: %v", err)
			}
			if !strings.Contains(note, "generated in memory") || !strings.Contains(note, "sudo sbxrun gpu setup") {
				t.Errorf("note %q: want it to say the spec is in memory and what writes it", note)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("%s holds %d files: nothing may be written there", dir, len(entries))
			}
		})
	}
	// A driver that does not answer is an error naming the cause.
	fakeProcVersion(t, procLine(mockVersion))
	reg, _ := oci.LoadCDI([]string{t.TempDir()}, nil)
	broken := gen
	broken.NVML = nil
	broken.DriverRoot = t.TempDir()
	if _, _, err := GenerateMissing(reg, RefreshOptions{Generate: broken}); err == nil || !strings.Contains(err.Error(), "generating one failed") {
		t.Errorf("a driver that cannot be asked: %v", err)
	}
}
