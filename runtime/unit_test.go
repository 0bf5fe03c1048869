package runtime

import (
	"github.com/sbxrun/sbxrun/runtime/profiles"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// serviceProfiles is a profile file with GPU requests of every kind.
const serviceProfiles = `profiles:
  gpu-optional:
    extends: base
    gpus: all
    gpu: optional
  gpu-required:
    extends: base
    gpus: device=0
  gpu-off:
    extends: gpu-optional
    gpus: none
  nvidia-device:
    extends: base
    devices: [nvidia.com/gpu=0]
  other-device:
    extends: base
    devices: [example.com/fpga=0]
  slow-stop:
    extends: base
    stop_signal: SIGINT
    stop_timeout: 60
`

func serviceLoad(t *testing.T) profiles.LoadOptions {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(file, []byte(serviceProfiles), 0o644); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "none.yaml")
	return profiles.LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none, ConfigFile: file}
}

func TestWantsGPUs(t *testing.T) {
	profs, err := profiles.Load(serviceLoad(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		profile string
		flags   *profiles.Profile
		// request and optional are what gpuRequest says (a request or
		// nil); want and wantOptional what wantsGPUs says.
		request, optional  bool
		want, wantOptional bool
	}{
		{"no GPUs", "base", nil, false, false, false, false},
		{"optional", "gpu-optional", nil, true, true, true, true},
		{"required", "gpu-required", nil, true, false, true, false},
		{"turned off", "gpu-off", nil, false, false, false, false},
		{"NVIDIA device", "nvidia-device", nil, false, false, true, false},
		{"other device", "other-device", nil, false, false, false, false},
		{"built-in optional", "model-dev", nil, true, true, true, true},
		{"--gpus", "base", &profiles.Profile{GPUs: pointerTo("all")}, true, false, true, false},
		{"--gpus over optional", "gpu-optional", &profiles.Profile{GPUs: pointerTo("device=0")}, true, false, true, false},
		{"--gpus none", "gpu-optional", &profiles.Profile{GPUs: pointerTo("none")}, false, false, false, false},
		{"--gpus quoted none", "gpu-optional", &profiles.Profile{GPUs: pointerTo(`"none"`)}, false, false, false, false},
		{"--device NVIDIA over optional", "gpu-optional", &profiles.Profile{Devices: []string{"nvidia.com/gpu=0"}}, true, true, true, false},
		{"--device other", "base", &profiles.Profile{Devices: []string{"example.com/fpga=0"}}, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := profs.Resolve(tt.profile, tt.flags)
			if err != nil {
				t.Fatalf("resolving %s: %v", tt.profile, err)
			}
			req, optional, err := gpuRequest(r)
			if err != nil || (req != nil) != tt.request || optional != tt.optional {
				t.Errorf("gpuRequest() = %v, %v, %v; want a request %v, optional %v", req, optional, err, tt.request, tt.optional)
			}
			want, optional, err := wantsGPUs(r)
			if err != nil || want != tt.want || optional != tt.wantOptional {
				t.Errorf("wantsGPUs() = %v, %v, %v; want %v, %v", want, optional, err, tt.want, tt.wantOptional)
			}
		})
	}
}

func TestServiceFacts(t *testing.T) {
	str := func(s string) *string { return &s }
	seconds := func(n int) *int { return &n }
	tests := []struct {
		name         string
		target       string
		flags        *profiles.Profile
		signal       syscall.Signal
		timeout      time.Duration
		network      bool
		gpus, gpuOpt bool
	}{
		{"defaults", "base", nil, syscall.SIGTERM, 10 * time.Second, true, false, false},
		{"flags", "base", &profiles.Profile{StopSignal: str("INT"), StopTimeout: seconds(3)}, syscall.SIGINT, 3 * time.Second, true, false, false},
		{"profile stop", "slow-stop", nil, syscall.SIGINT, time.Minute, true, false, false},
		{"no network, never pulls", "base", &profiles.Profile{Network: str("none"), Pull: str("never")}, syscall.SIGTERM, 10 * time.Second, false, false, false},
		{"no network, may pull", "base", &profiles.Profile{Network: str("none")}, syscall.SIGTERM, 10 * time.Second, true, false, false},
		{"optional GPUs", "gpu-optional", nil, syscall.SIGTERM, 10 * time.Second, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &RunOptions{Target: tt.target, Name: "svc", Flags: tt.flags, Load: serviceLoad(t),
				Host: profiles.HostEnv{Home: t.TempDir(), Cwd: t.TempDir()}, Global: Global{StateDir: t.TempDir()}}
			f, err := o.ServiceFacts()
			if err != nil {
				t.Fatal(err)
			}
			if f.Name != "svc" || f.StopSignal != tt.signal || f.StopTimeout != tt.timeout || f.Network != tt.network || f.GPUs != tt.gpus || f.GPUsOptional != tt.gpuOpt {
				t.Errorf("facts %+v, want signal %v, timeout %s, network %v, GPUs %v (optional %v)", f, tt.signal, tt.timeout, tt.network, tt.gpus, tt.gpuOpt)
			}
			if len(o.notes) != 0 {
				t.Errorf("ServiceFacts left notes to print: %q", o.notes)
			}
		})
	}
	// Bad input is the run's own error, exit 125.
	o := &RunOptions{Target: "base", Name: "bad name", Load: serviceLoad(t), Host: profiles.HostEnv{Home: t.TempDir(), Cwd: t.TempDir()}}
	if _, err := o.ServiceFacts(); ExitCode(err) != ExitFailed {
		t.Errorf("ServiceFacts with a bad name: %v (exit %d), want exit 125", err, ExitCode(err))
	}
}
