package oci

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sbxrun/sbxrun/hooks"
)

// writeFile writes content to dir/name with mode and returns the path.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// foreign makes path belong to someone the returned trust list does not
// trust: nobody (65534) when the test runs as root, else the test's user,
// with only root trusted.
func foreign(t *testing.T, path string) []uint32 {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return []uint32{0}
}

// fakeVendorSpec is a CDI spec of the vendor sbxrun.test with one device,
// whose files live under host.
func fakeVendorSpec(host string) string {
	return `cdiVersion: "0.6.0"
kind: sbxrun.test/fake
devices:
  - name: dev0
    containerEdits:
      env: ["FAKE_DEVICE=dev0", "SHARED=from-cdi"]
      deviceNodes:
        - {path: /dev/fake0, hostPath: /dev/null}
containerEdits:
  env: ["FAKE_VENDOR=yes"]
  mounts:
    - {hostPath: ` + host + `/libfake.so.1, containerPath: /usr/lib/fake/libfake.so.1, options: [ro, nosuid, nodev, bind]}
    - {hostPath: ` + host + `/fake-smi, containerPath: /opt/fake/bin/fake-smi, options: [ro, nosuid, nodev, bind]}
  hooks:
    - hookName: createContainer
      path: /bin/true
      args: [true, create-symlinks]
      env: ["LD_PRELOAD=/evil.so", "LD_LIBRARY_PATH=/evil", "NVIDIA_CTK_DEBUG=false"]
`
}

// fakeHost makes the host files fakeVendorSpec mounts.
func fakeHost(t *testing.T) string {
	t.Helper()
	host := t.TempDir()
	writeFile(t, host, "libfake.so.1", "fake library", 0o644)
	writeFile(t, host, "fake-smi", "#!/bin/sh\n", 0o755)
	return host
}

func TestLoadCDIRefusesUntrustedAndInvalidSpecs(t *testing.T) {
	host := fakeHost(t)
	good := fakeVendorSpec(host)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) (trusted []uint32)
		want  []string // in the error, besides the file's path
	}{
		{"trusted", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", good, 0o644)
			return nil
		}, nil},
		{"world-writable", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", good, 0o666)
			return nil
		}, []string{"writable by group or others", "chmod go-w"}},
		{"group-writable", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", good, 0o664)
			return nil
		}, []string{"writable by group or others"}},
		{"wrong owner", func(t *testing.T, dir string) []uint32 {
			return foreign(t, writeFile(t, dir, "fake.yaml", good, 0o644))
		}, []string{"is owned by uid", "chown root"}},
		{"unknown field (strict decoding)", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", strings.Replace(good, "kind:", "colour: red\nkind:", 1), 0o644)
			return nil
		}, []string{"invalid CDI spec", "colour"}},
		{"invalid kind", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", strings.Replace(good, "sbxrun.test/fake", "sbxrun.test/fa ke", 1), 0o644)
			return nil
		}, []string{"invalid CDI spec"}},
		{"unsupported version", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", strings.Replace(good, `"0.6.0"`, `"9.9.9"`, 1), 0o644)
			return nil
		}, []string{"invalid CDI spec"}},
		{"relative hook path", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", strings.Replace(good, "path: /bin/true", "path: bin/true", 1), 0o644)
			return nil
		}, []string{"hook path \"bin/true\" is not absolute"}},
		{"not YAML", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", "{{{", 0o644)
			return nil
		}, []string{"invalid CDI spec"}},
		{"directory writable by others", func(t *testing.T, dir string) []uint32 {
			writeFile(t, dir, "fake.yaml", good, 0o644)
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return nil
		}, []string{"directory", "writable by group or others"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			trusted := tt.setup(t, dir)
			path := filepath.Join(dir, "fake.yaml")
			reg, err := LoadCDI([]string{dir}, trusted)
			if err != nil {
				t.Fatalf("LoadCDI: %v", err)
			}
			err = reg.Resolve([]string{"sbxrun.test/fake=dev0"})
			if tt.want == nil {
				if err != nil || len(reg.Refused()) > 0 {
					t.Fatalf("a trusted, valid spec: %v, refused %v", err, reg.Refused())
				}
				return
			}
			if len(reg.Specs()) != 0 || len(reg.Refused()) != 1 || reg.Refused()[0].Path != path {
				t.Fatalf("specs %d, refused %+v: want %s refused", len(reg.Specs()), reg.Refused(), path)
			}
			if err == nil {
				t.Fatal("a device of a refused spec resolved")
			}
			for _, w := range append([]string{path}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "/proc/self/fd") {
				t.Errorf("error names the descriptor, not the file: %v", err)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "unmarshal errors") {
				t.Errorf("error is not one plain line: %q", err)
			}
		})
	}
}

func TestCDIRegistryResolution(t *testing.T) {
	host := fakeHost(t)
	low, high, other := t.TempDir(), t.TempDir(), t.TempDir()
	spec := fakeVendorSpec(host)
	writeFile(t, low, "fake.yaml", spec, 0o644)
	writeFile(t, high, "fake.json", `{"cdiVersion":"0.6.0","kind":"sbxrun.test/fake","devices":[{"name":"dev0","containerEdits":{"env":["FROM=high"]}},{"name":"dev1","containerEdits":{"env":["FROM=high"]}}]}`, 0o644)
	writeFile(t, high, "notes.txt", "not a spec", 0o666)
	writeFile(t, other, "a.yaml", spec, 0o644)
	writeFile(t, other, "b.yaml", spec, 0o644)

	reg, err := LoadCDI([]string{low, high, filepath.Join(low, "missing")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Devices("sbxrun.test/fake"); !slices.Equal(got, []string{"dev0", "dev1"}) {
		t.Errorf("Devices = %q", got)
	}
	if s := reg.SpecFor("sbxrun.test/fake=dev0"); s == nil || s.Path != filepath.Join(high, "fake.json") {
		t.Errorf("the later directory should win: %+v", s)
	}
	tests := []struct {
		device, want string
	}{
		{"sbxrun.test/fake=dev2", "not found: the sbxrun.test/fake devices are dev0, dev1"},
		{"nvidia.com/gpu=all", "no CDI spec for nvidia.com/gpu devices in " + low},
		{"nvidia.com/gpu", "invalid CDI device"},
	}
	for _, tt := range tests {
		if err := reg.Resolve([]string{tt.device}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%q) = %v, want %q", tt.device, err, tt.want)
		}
	}

	reg, err = LoadCDI([]string{other}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Resolve([]string{"sbxrun.test/fake=dev0"}); err == nil || !strings.Contains(err.Error(), "defined by both") {
		t.Errorf("two specs of one directory defining one device: %v", err)
	}
	if _, err := LoadCDI([]string{"relative/dir"}, nil); err == nil {
		t.Error("a relative spec directory was accepted")
	}
}

// TestBuildInjectsCDILast checks everything a CDI device brings, and that
// it comes last: its env over the sandbox's, the image's LD_PRELOAD
// nowhere near the hook, whose environment is the explicit one.
func TestBuildInjectsCDILast(t *testing.T) {
	host := fakeHost(t)
	dir := t.TempDir()
	writeFile(t, dir, "fake.yaml", fakeVendorSpec(host), 0o644)
	img := ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/bin:/bin", "LD_PRELOAD=/image/preload.so"}}
	s := &Sandbox{ID: "t1", CDIDevices: []string{"sbxrun.test/fake=dev0"}, CDISpecDirs: []string{dir},
		Env: []string{"SHARED=from-sandbox"}, Mounts: []Mount{{Type: "tmpfs", Destination: "/usr/lib/fake"}}}
	spec := generate(t, s, img)

	e := env(t, spec.Process.Env)
	for k, v := range map[string]string{"FAKE_DEVICE": "dev0", "FAKE_VENDOR": "yes", "SHARED": "from-cdi", "LD_PRELOAD": "/image/preload.so", "PATH": "/usr/bin:/bin:/opt/fake/bin"} {
		if e[k] != v {
			t.Errorf("env %s = %q, want %q", k, e[k], v)
		}
	}
	var dev bool
	for _, d := range spec.Linux.Devices {
		if d.Path == "/dev/fake0" && d.Type == "c" && d.Major == 1 && d.Minor == 3 {
			dev = true
		}
	}
	if !dev {
		t.Errorf("no /dev/fake0 (c 1:3) in %+v", spec.Linux.Devices)
	}
	allowed := false
	for _, r := range spec.Linux.Resources.Devices {
		if r.Allow && r.Major != nil && *r.Major == 1 && r.Minor != nil && *r.Minor == 3 && r.Access == "rwm" {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("the device cgroup does not allow c 1:3: %+v", spec.Linux.Resources.Devices)
	}
	var mounted []string
	for _, m := range spec.Mounts {
		mounted = append(mounted, m.Destination)
	}
	for _, p := range []string{"/usr/lib/fake", "/usr/lib/fake/libfake.so.1", "/opt/fake/bin/fake-smi"} {
		if !slices.Contains(mounted, p) {
			t.Errorf("no mount at %q: %q", p, mounted)
		}
	}
	if slices.Index(mounted, "/usr/lib/fake") > slices.Index(mounted, "/usr/lib/fake/libfake.so.1") {
		t.Errorf("the sandbox's tmpfs at /usr/lib/fake would hide the CDI mount below it: %q", mounted)
	}
	if spec.Hooks == nil || len(spec.Hooks.CreateContainer) != 1 {
		t.Fatalf("hooks = %+v, want one createContainer hook", spec.Hooks)
	}
	h := spec.Hooks.CreateContainer[0]
	if want := []string{"PATH=" + hooks.Path, "NVIDIA_CTK_DEBUG=false"}; !slices.Equal(h.Env, want) {
		t.Errorf("hook env = %q, want exactly %q", h.Env, want)
	}
	if spec.Annotations[CDIAnnotation] != "sbxrun.test/fake=dev0" {
		t.Errorf("annotations %v", spec.Annotations)
	}

	// Without cgroups, CDI adds no device rules back.
	s.NoCgroups = true
	if spec := generate(t, s, img); spec.Linux.Resources != nil {
		t.Errorf("NoCgroups: linux.resources = %+v", spec.Linux.Resources)
	}
}

func TestBuildRefusesUnsafeCDI(t *testing.T) {
	img := ocispec.ImageConfig{Cmd: []string{"sh"}}
	tests := []struct {
		name string
		edit func(t *testing.T, spec, host string) string
		want string
	}{
		{"hook writable by others", func(t *testing.T, spec, host string) string {
			hook := writeFile(t, host, "hook", "#!/bin/sh\n", 0o777)
			return strings.Replace(spec, "path: /bin/true", "path: "+hook, 1)
		}, "writable by group or others"},
		{"hook missing", func(t *testing.T, spec, host string) string {
			return strings.Replace(spec, "path: /bin/true", "path: "+host+"/gone", 1)
		}, "regenerate the spec"},
		{"hook not executable", func(t *testing.T, spec, host string) string {
			hook := writeFile(t, host, "hook", "#!/bin/sh\n", 0o644)
			return strings.Replace(spec, "path: /bin/true", "path: "+hook, 1)
		}, "not an executable"},
		{"host file gone (stale spec)", func(t *testing.T, spec, host string) string {
			return strings.Replace(spec, "/libfake.so.1,", "/libfake.so.0,", 1)
		}, "the spec is stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := fakeHost(t)
			dir := t.TempDir()
			writeFile(t, dir, "fake.yaml", tt.edit(t, fakeVendorSpec(host), host), 0o644)
			opts, err := Build(&Sandbox{ID: "t1", CDIDevices: []string{"sbxrun.test/fake=dev0"}, CDISpecDirs: []string{dir}}, img)
			if err == nil {
				_, err = generateErr(opts)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Build(&Sandbox{ID: "t1", CDIDevices: []string{"gpu0"}}, img); err == nil || !strings.Contains(err.Error(), "VENDOR/CLASS=NAME") {
		t.Errorf("an unqualified device name: %v", err)
	}
}

// generateErr composes opts as containerd.WithNewSpec does and returns the
// error.
func generateErr(opts []oci.SpecOpts) (*specs.Spec, error) {
	return oci.GenerateSpec(namespaces.WithNamespace(context.Background(), "test"), nil, &containers.Container{ID: "t1"}, opts...)
}

// TestLoadCDINonRegular: a FIFO or device node in a spec directory is
// refused without being opened (a FIFO would block forever), and a sticky
// world-writable directory is not trusted.
func TestLoadCDINonRegular(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to own its spec directory: run it as root (CI does)")
	}
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "evil.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "dev.yaml")); err != nil {
		t.Fatal(err)
	}
	done := make(chan *CDIRegistry, 1)
	go func() {
		reg, err := LoadCDI([]string{dir}, []uint32{0})
		if err != nil {
			t.Errorf("LoadCDI: %v", err)
		}
		done <- reg
	}()
	select {
	case reg := <-done:
		if reg != nil && len(reg.Refused()) != 2 {
			t.Errorf("refused %d files, want the FIFO and the device link", len(reg.Refused()))
		}
		for _, r := range reg.Refused() {
			if !strings.Contains(r.Err.Error(), "not a regular file") {
				t.Errorf("refusal %v does not say why", r.Err)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LoadCDI blocked on a FIFO in the spec directory")
	}

	sticky := t.TempDir()
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := checkDir(sticky, []uint32{0}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("sticky world-writable directory: %v, want it refused", err)
	}
}

// TestCheckAncestors: a hook binary in a directory others can write is
// refused (they could swap it before runc runs it as root).
func TestCheckAncestors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to own its directories: run it as root (CI does)")
	}
	dir := t.TempDir()
	hook := filepath.Join(dir, "bin", "sbxrun")
	if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkAncestors(hook, []uint32{0}); err != nil {
		t.Fatalf("root-owned 0755 directories: %v", err)
	}
	if err := os.Chmod(filepath.Dir(hook), 0o775); err != nil {
		t.Fatal(err)
	}
	if err := checkAncestors(hook, []uint32{0}); err == nil || !strings.Contains(err.Error(), "others can change") {
		t.Errorf("group-writable directory: %v, want a refusal", err)
	}
	if err := os.Chmod(filepath.Dir(hook), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := checkAncestors(hook, []uint32{0}); err != nil {
		t.Errorf("sticky directory: %v, want it accepted", err)
	}
}
