package gpu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/oci"
)

// fakeProcVersion points LoadedDriverVersion at a file with content ("" for
// none) for the test.
func fakeProcVersion(t *testing.T, content string) {
	t.Helper()
	old := procVersion
	t.Cleanup(func() { procVersion = old })
	procVersion = filepath.Join(t.TempDir(), "version")
	if content != "" {
		if err := os.WriteFile(procVersion, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// procLine is /proc/driver/nvidia/version of a driver version.
func procLine(v string) string {
	return "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  " + v + "  Release Build  (dvs-builder@U22-I3-AE18-23-3)  Wed Jul 30 05:49:29 UTC 2025\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
}

func TestLoadedDriverVersion(t *testing.T) {
	tests := []struct {
		content, want, err string
	}{
		{procLine("580.159.04"), "580.159.04", ""},
		{"NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54  Tue Jan 1 2024\n", "550.54", ""},
		{"", "", "no NVIDIA driver is loaded"},
		{"garbage\n", "", "no driver version"},
	}
	for _, tt := range tests {
		fakeProcVersion(t, tt.content)
		got, err := LoadedDriverVersion()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.content, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q, %v; want %q", tt.content, got, err, tt.want)
		}
	}
}

func TestSpecDriverVersionFromLibraries(t *testing.T) {
	raw := &cdispecs.Spec{ContainerEdits: cdispecs.ContainerEdits{Mounts: []*cdispecs.Mount{
		{HostPath: "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.570.86.15", ContainerPath: "/x"},
		{HostPath: "/usr/lib/x86_64-linux-gnu/libcuda.so.570.86.15", ContainerPath: "/y"},
	}}}
	if v := SpecDriverVersion(raw); v != "570.86.15" {
		t.Errorf("SpecDriverVersion = %q, want 570.86.15 (from libcuda's name, as in nvidia-ctk's specs)", v)
	}
	if v := SpecDriverVersion(&cdispecs.Spec{}); v != "" {
		t.Errorf("SpecDriverVersion of an empty spec = %q", v)
	}
}

func TestStale(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	raw, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	if r := Stale(raw, mockVersion); len(r) > 0 {
		t.Errorf("a spec just generated is stale: %q", r)
	}
	if r := Stale(raw, ""); len(r) > 0 {
		t.Errorf("with the loaded version unknown: %q", r)
	}
	r := Stale(raw, "580.159.04")
	if len(r) != 1 || !strings.Contains(r[0], "generated for driver 550.54.15, the loaded driver is 580.159.04") {
		t.Errorf("after an upgrade: %q", r)
	}
	upgrade(t, root, mockVersion, "580.159.04")
	r = Stale(raw, "580.159.04")
	if len(r) != 2 || !strings.Contains(r[1], "libcuda.so.550.54.15") {
		t.Errorf("with the old libraries gone: %q", r)
	}
}

// upgrade replaces the driver libraries of version from with version to
// under root, as a driver upgrade does.
func upgrade(t *testing.T, root, from, to string) {
	t.Helper()
	lib := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	for _, l := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		if err := os.Remove(filepath.Join(lib, l+"."+from)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, l+"."+to), []byte("fake"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(lib, l+".1")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l+"."+to, filepath.Join(lib, l+".1")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefreshAfterDriverUpgrade generates a spec, upgrades the (fake)
// driver, and checks that a run regenerates the spec: in place when it may
// rewrite the file, in memory otherwise, and never in place for a spec
// sbxrun did not write.
func TestRefreshAfterDriverUpgrade(t *testing.T) {
	const newVersion = "580.159.04"
	tests := []struct {
		name     string
		rewrite  bool
		foreign  bool
		inMemory bool
		note     string
	}{
		{"root rewrites its own spec", true, false, false, "regenerated the CDI spec"},
		{"a user gets a spec in memory", false, false, true, "using one generated in memory"},
		{"a spec sbxrun did not write is never rewritten", true, true, true, "using one generated in memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeDriverRoot(t, mockVersion)
			dir := t.TempDir()
			out := filepath.Join(dir, "nvidia.yaml")
			raw, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
			if err != nil {
				t.Fatal(err)
			}
			if tt.foreign {
				delete(raw.Annotations, AnnotationGenerator)
			}
			if err := writeSpec(out, raw); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(out)

			upgrade(t, root, mockVersion, newVersion)
			fakeProcVersion(t, procLine(newVersion))
			reg, err := oci.LoadCDI([]string{dir}, nil)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"nvidia.com/gpu=all"}
			reg, notes, err := Refresh(reg, names, RefreshOptions{Rewrite: tt.rewrite,
				Generate: Options{NVML: dgx(newVersion), DriverRoot: root, HookPath: hookBinary(t)}})
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if len(notes) != 1 || !strings.Contains(notes[0], tt.note) || !strings.Contains(notes[0], "loaded driver is "+newVersion) {
				t.Errorf("notes %q, want one saying %q and why", notes, tt.note)
			}
			s := reg.SpecFor("nvidia.com/gpu=all")
			if s == nil || s.InMemory != tt.inMemory || SpecDriverVersion(s.Spec.Spec) != newVersion {
				t.Fatalf("spec after refresh: %+v", s)
			}
			if r := Stale(s.Spec.Spec, newVersion); len(r) > 0 {
				t.Errorf("refreshed spec is still stale: %q", r)
			}
			if err := reg.Resolve(names); err != nil {
				t.Errorf("Resolve after refresh: %v", err)
			}
			after, _ := os.ReadFile(out)
			if rewritten := string(after) != string(before); rewritten == tt.inMemory {
				t.Errorf("file rewritten = %v, want %v", rewritten, !tt.inMemory)
			}
			// A second run finds nothing to do.
			if _, notes, err := Refresh(reg, names, RefreshOptions{Rewrite: tt.rewrite}); err != nil || len(notes) > 0 {
				t.Errorf("second Refresh: %q, %v", notes, err)
			}
		})
	}
}

func TestRefreshFailureNamesTheFix(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	dir := t.TempDir()
	raw, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSpec(filepath.Join(dir, "nvidia.yaml"), raw); err != nil {
		t.Fatal(err)
	}
	reg, err := oci.LoadCDI([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"nvidia.com/gpu=0"}

	fakeProcVersion(t, "")
	if _, _, err := Refresh(reg, names, RefreshOptions{}); err == nil || !strings.Contains(err.Error(), "no NVIDIA driver is loaded") || !strings.Contains(err.Error(), "modprobe nvidia") {
		t.Errorf("no driver loaded: %v", err)
	}

	fakeProcVersion(t, procLine("580.159.04"))
	broken := dgx("580.159.04")
	broken.DeviceGetCountFunc = nil // generating panics inside the library
	_, _, err = Refresh(reg, names, RefreshOptions{Generate: Options{NVML: broken, HookPath: hookBinary(t)}})
	want := "sudo sbxrun gpu setup --driver-root " + root + " --output " + filepath.Join(dir, "nvidia.yaml")
	if err == nil || !strings.Contains(err.Error(), "is stale") || !strings.Contains(err.Error(), want) {
		t.Errorf("regeneration failing: %v; want the command %q", err, want)
	}
}

// TestRefreshReadOnlySpecFallsBackToMemory: root whose spec file lies on a
// read-only file system (a read-only /etc, a mounted config) cannot rewrite
// it; the run gets a fresh spec in memory instead of failing.
func TestRefreshReadOnlySpecFallsBackToMemory(t *testing.T) {
	requireRoot(t)
	const newVersion = "580.159.04"
	root := fakeDriverRoot(t, mockVersion)
	dir := t.TempDir()
	out := filepath.Join(dir, "nvidia.yaml")
	raw, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSpec(out, raw); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("making %s read-only: %v", dir, err)
	}
	upgrade(t, root, mockVersion, newVersion)
	fakeProcVersion(t, procLine(newVersion))
	reg, err := oci.LoadCDI([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"nvidia.com/gpu=0"}
	reg, notes, err := Refresh(reg, names, RefreshOptions{Rewrite: true,
		Generate: Options{NVML: dgx(newVersion), DriverRoot: root, HookPath: hookBinary(t)}})
	if err != nil {
		t.Fatalf("Refresh on a read-only file system: %v", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "generated in memory") {
		t.Errorf("notes %q, want one saying the spec is generated in memory", notes)
	}
	if s := reg.SpecFor(names[0]); s == nil || !s.InMemory || SpecDriverVersion(s.Spec.Spec) != newVersion {
		t.Errorf("spec after refresh: %+v, want an in-memory one for %s", s, newVersion)
	}
}
