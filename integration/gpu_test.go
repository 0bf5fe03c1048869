package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/hooks"
)

// preloadRef is a busybox image whose config sets LD_PRELOAD and
// LD_LIBRARY_PATH, as a hostile image would to reach host-side hooks.
const preloadRef = "localhost/sbxrun-test/preload:1"

// fakeVendor is a CDI vendor spec written by the test: a device node (the
// host's /dev/null under another name), a mounted library and a mounted
// tool, env, and two createContainer hooks: sbxrun's own hook code
// (create-symlinks, run as nvidia-cdi-hook) and a shell that records the
// environment it was given.
type fakeVendor struct {
	specDir, host string
}

// newFakeVendor writes the spec into a fresh spec directory.
func newFakeVendor(t *testing.T) fakeVendor {
	t.Helper()
	v := fakeVendor{specDir: t.TempDir(), host: t.TempDir()}
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(v.host, "libfake.so.1"), "fake library 1.0\n", 0o644)
	write(filepath.Join(v.host, "fake-smi"), "#!/bin/sh\necho 'GPU 0: Fake GPU (UUID: GPU-fake)'\n", 0o755)
	ro := []string{"ro", "nosuid", "nodev", "bind"}
	spec := cdispecs.Spec{
		Version: "0.6.0",
		Kind:    "sbxrun.test/gpu",
		Devices: []cdispecs.Device{{
			Name: "fake0",
			ContainerEdits: cdispecs.ContainerEdits{
				DeviceNodes: []*cdispecs.DeviceNode{{Path: "/dev/sbxrun-fake0", HostPath: "/dev/null"}},
				Env:         []string{"SBXRUN_FAKE_DEVICE=fake0"},
			},
		}},
		ContainerEdits: cdispecs.ContainerEdits{
			Env: []string{"SBXRUN_FAKE_VENDOR=yes"},
			Mounts: []*cdispecs.Mount{
				{HostPath: filepath.Join(v.host, "libfake.so.1"), ContainerPath: "/opt/fake/lib/libfake.so.1", Options: ro},
				{HostPath: filepath.Join(v.host, "fake-smi"), ContainerPath: "/opt/fake/bin/fake-smi", Options: ro},
			},
			Hooks: []*cdispecs.Hook{
				{HookName: "createContainer", Path: harness.sbxrun,
					Args: []string{hooks.Name, "create-symlinks", "--link", "libfake.so.1::/opt/fake/lib/libfake.so"},
					Env:  []string{"NVIDIA_CTK_DEBUG=false", "LD_LIBRARY_PATH=/from-the-spec"}},
				{HookName: "createContainer", Path: "/bin/sh",
					Args: []string{"sh", "-c", "env > '" + filepath.Join(v.host, "hook.env") + "'"},
					Env:  []string{"SBXRUN_HOOK_MARK=1", "LD_PRELOAD=/from-the-spec.so"}},
			},
		},
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(v.specDir, "fake.json"), string(b), 0o644)
	return v
}

// env is the environment that points sbxrun at the vendor's spec directory.
func (v fakeVendor) env() []string {
	return []string{"SBXRUN_CDI_SPEC_DIRS=" + v.specDir}
}

// hookEnv is what the recording hook saw, without the variables the shell
// sets itself.
func (v fakeVendor) hookEnv(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.host, "hook.env"))
	if err != nil {
		t.Fatalf("the recording hook did not run: %v", err)
	}
	var env []string
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, _, _ := strings.Cut(kv, "="); k != "PWD" && k != "SHLVL" && k != "_" && k != "OLDPWD" {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	return env
}

// loadPreloadImage builds and loads an image whose config sets LD_PRELOAD.
func loadPreloadImage(t *testing.T) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "preload.tar")
	mkimage := filepath.Join(harness.root, "bin", "mkimage")
	if b, err := exec.Command(mkimage, "-o", out, "-ref", preloadRef, "-workdir", "/",
		"-env", "LD_PRELOAD=/image/preload.so", "-env", "LD_LIBRARY_PATH=/image/lib").CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v\n%s", err, b)
	}
	if stdout, stderr, code := run(t, "load", "-i", out); code != 0 {
		t.Fatalf("sbxrun load: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestCDIVendorEndToEnd runs real containers with a fake CDI vendor spec:
// the device node, the mounts, the env and what sbxrun's own hook code made
// all arrive inside the sandbox, and the hooks run with the explicit
// environment, not the image's LD_PRELOAD.
func TestCDIVendorEndToEnd(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	loadPreloadImage(t)

	t.Run("everything arrives", func(t *testing.T) {
		v := newFakeVendor(t)
		script := `stat -c '%F %t:%T' /dev/sbxrun-fake0; echo probe > /dev/sbxrun-fake0 && echo writable; ` +
			`cat /opt/fake/lib/libfake.so.1; readlink /opt/fake/lib/libfake.so; ` +
			`echo "device=$SBXRUN_FAKE_DEVICE vendor=$SBXRUN_FAKE_VENDOR"; fake-smi`
		stdout, stderr, code := sandboxWith(t, opts{env: v.env()}, nameFor(t), "--device", "sbxrun.test/gpu=fake0", "base", "--", "sh", "-c", script)
		expect(t, "run with a CDI device", code, 0, stdout, stderr)
		for _, want := range []string{"character special file 1:3", "writable", "fake library 1.0", "libfake.so.1\n",
			"device=fake0 vendor=yes", "GPU 0: Fake GPU (UUID: GPU-fake)"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s\nstderr: %s", want, stdout, stderr)
			}
		}
		if stderr != "" {
			t.Errorf("stderr: %q", stderr)
		}
	})

	t.Run("hooks get the explicit environment, not the image's LD_PRELOAD", func(t *testing.T) {
		v := newFakeVendor(t)
		stdout, stderr, code := sandboxWith(t, opts{env: v.env()}, nameFor(t), "--device", "sbxrun.test/gpu=fake0", preloadRef,
			"--", "sh", "-c", `echo "preload=$LD_PRELOAD"; readlink /opt/fake/lib/libfake.so`)
		expect(t, "run an LD_PRELOAD image with a hook", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "preload=/image/preload.so") || !strings.Contains(stdout, "libfake.so.1") {
			t.Errorf("the workload should see its image's env and the hook's symlink: %q", stdout)
		}
		want := []string{"PATH=" + hooks.Path, "SBXRUN_HOOK_MARK=1"}
		if got := v.hookEnv(t); !slices.Equal(got, want) {
			t.Errorf("the hook's environment is %q, want exactly %q", got, want)
		}
	})

	t.Run("spec shows the injected devices, mounts and hooks", func(t *testing.T) {
		v := newFakeVendor(t)
		// The global flag, this time, instead of the environment.
		stdout, stderr, code := run(t, "--cdi-spec-dir", v.specDir, "spec", "--device", "sbxrun.test/gpu=fake0", preloadRef, "--", "true")
		expect(t, "sbxrun spec with a CDI device", code, 0, stdout, stderr)
		var s specs.Spec
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("spec output is not JSON: %v", err)
		}
		if s.Annotations["sbxrun.cdi-devices"] != "sbxrun.test/gpu=fake0" {
			t.Errorf("annotations %v", s.Annotations)
		}
		if !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/sbxrun-fake0" }) {
			t.Errorf("devices %+v lack /dev/sbxrun-fake0", s.Linux.Devices)
		}
		if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/opt/fake/lib/libfake.so.1" }) {
			t.Errorf("mounts lack the library")
		}
		if s.Hooks == nil || len(s.Hooks.CreateContainer) != 2 {
			t.Fatalf("hooks %+v, want two createContainer hooks", s.Hooks)
		}
		for _, h := range s.Hooks.CreateContainer {
			for _, kv := range h.Env {
				if strings.HasPrefix(kv, "LD_") {
					t.Errorf("hook %s gets %s", h.Path, kv)
				}
			}
			if len(h.Env) == 0 || h.Env[0] != "PATH="+hooks.Path {
				t.Errorf("hook %s env %q, want PATH first", h.Path, h.Env)
			}
		}
		if !slices.Contains(s.Process.Env, "LD_PRELOAD=/image/preload.so") {
			t.Errorf("the workload's env should keep the image's LD_PRELOAD: %q", s.Process.Env)
		}
	})

	t.Run("untrusted specs are refused by name", func(t *testing.T) {
		v := newFakeVendor(t)
		spec := filepath.Join(v.specDir, "fake.json")
		if err := os.Chmod(spec, 0o666); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := sandboxWith(t, opts{env: v.env()}, nameFor(t), "--device", "sbxrun.test/gpu=fake0", "base", "--", "true")
		expect(t, "run with a world-writable spec", code, 125, stdout, stderr)
		if !strings.Contains(stderr, spec) || !strings.Contains(stderr, "writable by group or others") {
			t.Errorf("stderr %q does not name %s and the problem", stderr, spec)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("more than one line: %q", stderr)
		}
	})

	t.Run("optional GPUs missing: one warning; required: exit 125", func(t *testing.T) {
		v := newFakeVendor(t)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "sbxrun.yaml"), []byte("profiles:\n  gpu-box:\n    extends: base\n    gpus: all\n    gpu: optional\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := sandboxWith(t, opts{env: v.env(), dir: dir}, nameFor(t, "optional"), "gpu-box", "--", "echo", "ran")
		expect(t, "optional GPUs", code, 0, stdout, stderr)
		if stdout != "ran\n" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "sbxrun: warning: running without GPUs: no CDI spec for nvidia.com/gpu") {
			t.Errorf("stdout %q stderr %q, want the output and one warning line", stdout, stderr)
		}
		stdout, stderr, code = sandboxWith(t, opts{env: v.env(), dir: dir}, nameFor(t, "required"), "--gpus", "all", "gpu-box", "--", "echo", "ran")
		expect(t, "--gpus all without a spec", code, 125, stdout, stderr)
		if !strings.Contains(stderr, "--gpus all: no CDI spec for nvidia.com/gpu devices in "+v.specDir) {
			t.Errorf("stderr %q", stderr)
		}
	})
}
