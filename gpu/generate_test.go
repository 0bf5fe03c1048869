package gpu

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	mocknvml "github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	mockserver "github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/hooks"
	"github.com/sbxrun/sbxrun/oci"
)

// mockVersion is the driver version of go-nvml's DGX A100 mock.
const mockVersion = "550.54.15"

// dgx returns go-nvml's DGX A100 mock (8 A100 GPUs) reporting driver
// version, with the methods nvcdi needs that the mock leaves out.
func dgx(version string) *mockserver.Server {
	s := dgxa100.New()
	s.SystemGetDriverVersionFunc = func() (string, nvml.Return) { return version, nvml.SUCCESS }
	for _, d := range s.Devices {
		d.(*mockserver.Device).GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
	}
	return s
}

// uuids are the mock's GPU UUIDs in index order.
func uuids(s *mockserver.Server) []string {
	var out []string
	for _, d := range s.Devices {
		out = append(out, d.(*mockserver.Device).UUID)
	}
	return out
}

// fakeDriverRoot makes a driver root with the files nvcdi looks for: the
// driver's libraries of version and nvidia-smi.
func fakeDriverRoot(t *testing.T, version string) string {
	t.Helper()
	root := t.TempDir()
	lib := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	for _, d := range []string{lib, filepath.Join(root, "usr/bin"), filepath.Join(root, "dev")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		if err := os.WriteFile(filepath.Join(lib, l+"."+version), []byte("fake "+l), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l+"."+version, filepath.Join(lib, l+".1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/nvidia-smi"), []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// hookBinary is an absolute path to stand in for the sbxrun binary.
func hookBinary(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func names(raw *cdispecs.Spec) []string {
	var out []string
	for _, d := range raw.Devices {
		out = append(out, d.Name)
	}
	return out
}

func TestGenerateDGXA100(t *testing.T) {
	server := dgx(mockVersion)
	root := fakeDriverRoot(t, mockVersion)
	hook := hookBinary(t)
	raw, err := Generate(Options{NVML: server, DriverRoot: root, HookPath: hook})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}

	if raw.Kind != Kind {
		t.Errorf("kind = %q, want %q", raw.Kind, Kind)
	}
	want := []string{"all", "0", "1", "2", "3", "4", "5", "6", "7"}
	want = append(want, uuids(server)...)
	got := names(raw)
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("device %q missing; devices are %q", n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d devices %q, want %d", len(got), got, len(want))
	}
	if sorted := deviceNames(raw); sorted[0] != "all" || sorted[1] != "0" || sorted[8] != "7" {
		t.Errorf("deviceNames order = %q, want all, 0..7, then UUIDs", sorted)
	}

	if v := raw.Annotations[AnnotationDriverVersion]; v != mockVersion {
		t.Errorf("driver version annotation = %q, want %q", v, mockVersion)
	}
	if r := raw.Annotations[AnnotationDriverRoot]; r != root {
		t.Errorf("driver root annotation = %q, want %q", r, root)
	}
	if SpecDriverVersion(raw) != mockVersion {
		t.Errorf("SpecDriverVersion = %q", SpecDriverVersion(raw))
	}

	// The driver's files are mounted at their place under the root.
	var mounts []string
	for _, m := range raw.ContainerEdits.Mounts {
		mounts = append(mounts, m.ContainerPath)
		if !strings.HasPrefix(m.HostPath, root) && m.HostPath != "/dev/null" {
			t.Errorf("mount %q -> %q is not under the driver root", m.HostPath, m.ContainerPath)
		}
	}
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libcuda.so." + mockVersion, "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so." + mockVersion, "/usr/bin/nvidia-smi"} {
		if !slices.Contains(mounts, p) {
			t.Errorf("no mount at %q; mounts %q", p, mounts)
		}
	}

	// Every hook runs the sbxrun binary as nvidia-cdi-hook.
	var hookNames []string
	for _, e := range allEdits(raw) {
		for _, h := range e.Hooks {
			if h.Path != hook || len(h.Args) < 2 || h.Args[0] != hooks.Name {
				t.Errorf("hook %q %q: want %q run as %q", h.Path, h.Args, hook, hooks.Name)
				continue
			}
			hookNames = append(hookNames, h.Args[1])
		}
	}
	for _, h := range []string{"create-symlinks", "update-ldcache", "enable-cuda-compat"} {
		if !slices.Contains(hookNames, h) {
			t.Errorf("no %s hook; hooks %q", h, hookNames)
		}
	}

	// The spec is a valid CDI spec, as the CDI library reads it.
	out := filepath.Join(t.TempDir(), "cdi", "nvidia.yaml")
	if err := writeSpec(out, raw); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("spec file %v mode %v, want 0644", err, fi)
	}
	if _, err := cdi.ReadSpec(out, 0); err != nil {
		t.Fatalf("the CDI library refuses the spec: %v", err)
	}
	reg, err := oci.LoadCDI([]string{filepath.Dir(out)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := reg.Refused(); len(r) > 0 {
		t.Fatalf("refused: %v", r[0].Err)
	}
	if got := reg.Devices(Kind); len(got) != len(want) {
		t.Errorf("registry devices %q, want %d", got, len(want))
	}
}

func TestSetupWritesSpec(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	out := filepath.Join(t.TempDir(), "run", "cdi", "nvidia.yaml")
	res, err := Setup(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t), Output: out})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if res.Path != out || res.DriverVersion != mockVersion || len(res.Devices) != 17 || res.Devices[0] != "all" {
		t.Errorf("Setup = %+v", res)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("the spec directory holds %d files, want only the spec (no temporary file left)", len(entries))
	}
	s, err := cdi.ReadSpec(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Annotations[AnnotationGenerator] != "sbxrun" {
		t.Errorf("annotations %v", s.Annotations)
	}
}

func TestGenerateFailures(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	tests := []struct {
		name string
		nvml func() nvml.Interface
		want string
	}{
		{"no driver library", func() nvml.Interface {
			return &mocknvml.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
		}, "no NVIDIA driver under"},
		{"driver not loaded", func() nvml.Interface {
			return &mocknvml.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }}
		}, "kernel module is loaded"},
		{"driver upgraded, not rebooted", func() nvml.Interface {
			return &mocknvml.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIB_RM_VERSION_MISMATCH }}
		}, "does not match the installed driver libraries"},
		{"no GPU", func() nvml.Interface {
			s := dgx(mockVersion)
			s.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
			return s
		}, "no NVIDIA GPU found"},
		{"a library that panics is an error, not a crash", func() nvml.Interface {
			s := dgx(mockVersion)
			for _, d := range s.Devices {
				d.(*mockserver.Device).GetMaxMigDeviceCountFunc = nil
			}
			return s
		}, "failed unexpectedly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(Options{NVML: tt.nvml(), DriverRoot: root, HookPath: hookBinary(t)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Generate error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	if _, err := Generate(Options{NVML: dgx(mockVersion), DriverRoot: "relative", HookPath: hookBinary(t)}); err == nil || !strings.Contains(err.Error(), "--driver-root") {
		t.Errorf("relative driver root: %v", err)
	}
}

// TestGenerateMIG generates the spec of a DGX A100 whose GPU 0 is split
// into two MIG devices. nvcdi reads the MIG capability minors from
// /proc/driver/nvidia-caps and needs character device nodes, so the test
// runs as root in a mount namespace of its own (see inMountNamespace).
func TestGenerateMIG(t *testing.T) {
	requireRoot(t)
	server := dgx(mockVersion)
	gpu0 := server.Devices[0].(*mockserver.Device)
	migUUIDs := migPartition(t, gpu0, server)
	root := fakeDriverRoot(t, mockVersion)
	// Device nodes: the GPUs, the control devices and the MIG capability
	// devices of GPU instances 0 and 1 (minors as in mig-minors below).
	nodes := []string{"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"}
	for i := range 8 {
		nodes = append(nodes, "nvidia"+string(rune('0'+i)))
	}
	nodes = append(nodes, "nvidia-caps/nvidia-cap21", "nvidia-caps/nvidia-cap22", "nvidia-caps/nvidia-cap30", "nvidia-caps/nvidia-cap31")
	for _, n := range nodes {
		mknod(t, filepath.Join(root, "dev", n))
	}
	minors := "config 1\nmonitor 2\ngpu0/gi0/access 21\ngpu0/gi0/ci0/access 22\ngpu0/gi1/access 30\ngpu0/gi1/ci0/access 31\n"

	var raw *cdispecs.Spec
	var err error
	inMountNamespace(t, map[string]string{"nvidia-caps/mig-minors": minors}, func() {
		raw, err = Generate(Options{NVML: server, DriverRoot: root, DevRoot: root, HookPath: hookBinary(t)})
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	got := names(raw)
	for _, n := range append([]string{"all", "0:0", "0:1", "1", "7"}, migUUIDs...) {
		if !slices.Contains(got, n) {
			t.Errorf("device %q missing; devices are %q", n, got)
		}
	}
	if slices.Contains(got, "0") || slices.Contains(got, gpu0.UUID) {
		t.Errorf("GPU 0 is split into MIG devices but is offered whole too: %q", got)
	}
	for _, d := range raw.Devices {
		if d.Name != "0:1" {
			continue
		}
		var paths []string
		for _, n := range d.ContainerEdits.DeviceNodes {
			paths = append(paths, n.Path)
		}
		for _, p := range []string{"/dev/nvidia0", "/dev/nvidia-caps/nvidia-cap30", "/dev/nvidia-caps/nvidia-cap31"} {
			if !slices.Contains(paths, p) {
				t.Errorf("MIG device 0:1 lacks device node %q; has %q", p, paths)
			}
		}
	}
	var all cdispecs.Device
	for _, d := range raw.Devices {
		if d.Name == "all" {
			all = d
		}
	}
	if len(all.ContainerEdits.DeviceNodes) == 0 {
		t.Errorf("device all has no device nodes")
	}
	var common []string
	for _, n := range raw.ContainerEdits.DeviceNodes {
		common = append(common, n.Path)
	}
	if !slices.Contains(common, "/dev/nvidiactl") {
		t.Errorf("common device nodes %q lack /dev/nvidiactl", common)
	}
}

// migPartition splits gpu0 into two 3-slice MIG devices, as nvidia-smi mig
// -cgi 3g.20gb,3g.20gb -C would, through the mock's own GPU and compute
// instances, and gives the mock the MIG device handles nvcdi asks for
// (which go-nvml's mock leaves out). It returns the MIG devices' UUIDs.
func migPartition(t *testing.T, gpu0 *mockserver.Device, server *mockserver.Server) []string {
	t.Helper()
	if ret, _ := gpu0.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("enabling MIG on the mock: %v", ret)
	}
	giProfile, ret := gpu0.GetGpuInstanceProfileInfo(nvml.GPU_INSTANCE_PROFILE_3_SLICE)
	if ret != nvml.SUCCESS {
		t.Fatalf("mock GPU instance profile: %v", ret)
	}
	var (
		uuids []string
		migs  []nvml.Device
		gis   = map[int]nvml.GpuInstance{}
	)
	for i := range 2 {
		gi, ret := gpu0.CreateGpuInstance(&giProfile)
		if ret != nvml.SUCCESS {
			t.Fatalf("creating a mock GPU instance: %v", ret)
		}
		ciProfile, ret := gi.GetComputeInstanceProfileInfo(nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			t.Fatalf("mock compute instance profile: %v", ret)
		}
		ci, ret := gi.CreateComputeInstance(&ciProfile)
		if ret != nvml.SUCCESS {
			t.Fatalf("creating a mock compute instance: %v", ret)
		}
		giInfo, _ := gi.GetInfo()
		ciInfo, _ := ci.GetInfo()
		gis[int(giInfo.Id)] = gi
		gi.(*mockserver.GpuInstance).GetComputeInstanceByIdFunc = func(id int) (nvml.ComputeInstance, nvml.Return) {
			if id == int(ciInfo.Id) {
				return ci, nvml.SUCCESS
			}
			return nil, nvml.ERROR_NOT_FOUND
		}
		u := fmt.Sprintf("MIG-00000000-0000-0000-0000-00000000000%d", i)
		uuids = append(uuids, u)
		migs = append(migs, &mocknvml.Device{
			IsMigDeviceHandleFunc:                  func() (bool, nvml.Return) { return true, nvml.SUCCESS },
			GetDeviceHandleFromMigDeviceHandleFunc: func() (nvml.Device, nvml.Return) { return gpu0, nvml.SUCCESS },
			GetUUIDFunc:                            func() (string, nvml.Return) { return u, nvml.SUCCESS },
			GetIndexFunc:                           func() (int, nvml.Return) { return i, nvml.SUCCESS },
			GetGpuInstanceIdFunc:                   func() (int, nvml.Return) { return int(giInfo.Id), nvml.SUCCESS },
			GetComputeInstanceIdFunc:               func() (int, nvml.Return) { return int(ciInfo.Id), nvml.SUCCESS },
			GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
				return nvml.DeviceAttributes{MultiprocessorCount: 42, GpuInstanceSliceCount: 3, ComputeInstanceSliceCount: 3, MemorySizeMB: 20096}, nvml.SUCCESS
			},
		})
	}
	gpu0.GetGpuInstanceByIdFunc = func(id int) (nvml.GpuInstance, nvml.Return) {
		if gi, ok := gis[id]; ok {
			return gi, nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	gpu0.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	gpu0.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < 0 || i >= len(migs) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return migs[i], nvml.SUCCESS
	}
	byUUID := server.DeviceGetHandleByUUIDFunc
	server.DeviceGetHandleByUUIDFunc = func(u string) (nvml.Device, nvml.Return) {
		if i := slices.Index(uuids, u); i >= 0 {
			return migs[i], nvml.SUCCESS
		}
		return byUUID(u)
	}
	return uuids
}
