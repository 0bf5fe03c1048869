package gpu

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// TestSetupIfStaleRefreshesSpecsWhereTheyAre is what a GPU unit's
// ExecStartPre (`gpu setup --if-stale`) does on a host set up with
// `--output` and `--driver-root`: it finds that spec, leaves it alone while
// it is fresh, and after a driver upgrade regenerates it in place with the
// driver root it was made with, never writing a second spec that would
// shadow it.
func TestSetupIfStaleRefreshesSpecsWhereTheyAre(t *testing.T) {
	const newVersion = "580.159.04"
	root := fakeDriverRoot(t, mockVersion)
	etc, run := t.TempDir(), t.TempDir()
	ours := filepath.Join(etc, "gpus.yaml")
	raw, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSpec(ours, raw); err != nil {
		t.Fatal(err)
	}
	// Neither a spec sbxrun did not write nor one others can change is
	// sbxrun's to refresh.
	foreign, _ := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
	delete(foreign.Annotations, AnnotationGenerator)
	if err := writeSpec(filepath.Join(etc, "vendor.yaml"), foreign); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(run, "writable.yaml")
	if err := writeSpec(writable, raw); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o666); err != nil {
		t.Fatal(err)
	}
	dirs := []string{etc, run}
	if got := GeneratedSpecs(dirs); !slices.Equal(got, []string{ours}) {
		t.Fatalf("GeneratedSpecs = %q, want only %q", got, ours)
	}

	fakeProcVersion(t, procLine(mockVersion))
	before, _ := os.ReadFile(ours)
	res, err := SetupIfStale(IfStaleOptions{SpecDirs: dirs, Generate: Options{NVML: dgx(mockVersion), HookPath: hookBinary(t)}})
	if err != nil || len(res) != 1 || res[0].Path != ours || len(res[0].Reasons) != 0 || res[0].Setup != nil {
		t.Fatalf("fresh spec: %+v, %v; want %s found fresh and left alone", res, err, ours)
	}
	if after, _ := os.ReadFile(ours); string(after) != string(before) {
		t.Error("a fresh spec was rewritten")
	}

	upgrade(t, root, mockVersion, newVersion)
	fakeProcVersion(t, procLine(newVersion))
	res, err = SetupIfStale(IfStaleOptions{SpecDirs: dirs, Generate: Options{NVML: dgx(newVersion), HookPath: hookBinary(t)}})
	if err != nil || len(res) != 1 || res[0].Path != ours || len(res[0].Reasons) == 0 || res[0].Setup == nil {
		t.Fatalf("after a driver upgrade: %+v, %v; want %s regenerated", res, err, ours)
	}
	s, err := cdi.ReadSpec(ours, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v, r := s.Annotations[AnnotationDriverVersion], s.Annotations[AnnotationDriverRoot]; v != newVersion || r != root {
		t.Errorf("regenerated spec: driver %q, root %q; want %q under %q", v, r, newVersion, root)
	}
	if reasons := CheckSpecFile(ours); len(reasons) > 0 {
		t.Errorf("regenerated spec is still stale: %q", reasons)
	}
	for _, dir := range dirs {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if p := filepath.Join(dir, e.Name()); p != ours && p != writable && e.Name() != "vendor.yaml" {
				t.Errorf("SetupIfStale wrote %s besides the spec it refreshed", p)
			}
		}
	}
	if len(GeneratedSpecs([]string{filepath.Join(etc, "missing")})) != 0 {
		t.Error("a missing directory lists specs")
	}
}

// TestSetupIfStaleTrustsDirectoriesAsRunsDo: a spec in a directory others
// can write is not sbxrun's to refresh, and its recorded driver root (which
// decides the NVML library root loads) is ignored.
func TestSetupIfStaleTrustsDirectoriesAsRunsDo(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	dir := t.TempDir()
	raw, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "nvidia.yaml")
	if err := writeSpec(p, raw); err != nil {
		t.Fatal(err)
	}
	if got := recordedDriverRoot(p); got != root {
		t.Fatalf("recordedDriverRoot in a trusted directory = %q, want %q", got, root)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if got := GeneratedSpecs([]string{dir}); len(got) != 0 {
		t.Errorf("GeneratedSpecs lists %q from a world-writable directory", got)
	}
	if got := recordedDriverRoot(p); got != "" {
		t.Errorf("recordedDriverRoot from a world-writable directory = %q, want none", got)
	}
}
