package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

func TestResolveCDISpecDirs(t *testing.T) {
	t.Setenv(CDISpecDirsEnv, "")
	if got := ResolveCDISpecDirs(nil); !slices.Equal(got, []string{"/etc/cdi", "/var/run/cdi"}) {
		t.Errorf("default = %q", got)
	}
	t.Setenv(CDISpecDirsEnv, "/a::/b")
	if got := ResolveCDISpecDirs(nil); !slices.Equal(got, []string{"/a", "/b"}) {
		t.Errorf("from the environment = %q", got)
	}
	if got := ResolveCDISpecDirs([]string{"/c"}); !slices.Equal(got, []string{"/c"}) {
		t.Errorf("explicit = %q", got)
	}
}

func TestModelDevAsksForGPUsOptionally(t *testing.T) {
	r, err := builtins(t).Resolve("model-dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Profile.GPUs == nil || *r.Profile.GPUs != "all" || r.Profile.GPU == nil || *r.Profile.GPU != "optional" {
		t.Errorf("model-dev gpus %v gpu %v, want all, optional", r.Profile.GPUs, r.Profile.GPU)
	}
	if r, _ := builtins(t).Resolve("base", nil); r.Profile.GPUs != nil {
		t.Errorf("base asks for GPUs: %v", *r.Profile.GPUs)
	}
}

// fakeCDIDir writes a CDI spec of vendor sbxrun.test with device dev0 and
// returns its directory.
func fakeCDIDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	spec := "cdiVersion: \"0.6.0\"\nkind: sbxrun.test/fake\ndevices:\n  - name: dev0\n    containerEdits:\n      env: [FAKE=1]\n"
	if err := os.WriteFile(filepath.Join(dir, "fake.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCDIDevicesRequiredAndOptional(t *testing.T) {
	specDir := fakeCDIDir(t)
	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		profile string
		flags   *profiles.Profile
		devices []string // want in the sandbox
		warn    string   // want in the one warning line
		err     []string // want in the error
	}{
		{name: "base asks for nothing", profile: "base"},
		{name: "a CDI device of any vendor", profile: "base", flags: &profiles.Profile{Devices: []string{"sbxrun.test/fake=dev0", "sbxrun.test/fake=dev0"}},
			devices: []string{"sbxrun.test/fake=dev0"}},
		{name: "an unknown device is an error", profile: "base", flags: &profiles.Profile{Devices: []string{"sbxrun.test/fake=dev9"}},
			err: []string{"--device:", `"sbxrun.test/fake=dev9" not found: the sbxrun.test/fake devices are dev0`}},
		{name: "model-dev without GPUs runs with a warning", profile: "model-dev",
			warn: "running without GPUs: no CDI spec for nvidia.com/gpu devices in " + specDir},
		{name: "model-dev --gpus none asks for nothing", profile: "model-dev", flags: &profiles.Profile{GPUs: str("none")}},
		{name: "--gpus on the command line is required", profile: "model-dev", flags: &profiles.Profile{GPUs: str("all")},
			err: []string{"--gpus all: no CDI spec for nvidia.com/gpu devices in " + specDir}},
		{name: "a device alongside optional GPUs", profile: "model-dev", flags: &profiles.Profile{Devices: []string{"sbxrun.test/fake=dev0"}},
			devices: []string{"sbxrun.test/fake=dev0"}, warn: "running without GPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := builtins(t).Resolve(tt.profile, tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			o := &RunOptions{CDISpecDirs: []string{specDir}, Stderr: &stderr}
			sb := &oci.Sandbox{}
			err = o.cdiDevices(res, sb)
			// prepare prints the notes once the run is validated.
			for _, n := range o.notes {
				stderr.WriteString("sbxrun: " + n + "\n")
			}
			if tt.err != nil {
				if err == nil {
					t.Fatalf("no error; want %q", tt.err)
				}
				for _, w := range tt.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(tt.name, "command line") && !strings.Contains(err.Error(), "sbxrun gpu setup") && !strings.Contains(err.Error(), "no NVIDIA driver is loaded") {
					t.Errorf("error names no fix: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("cdiDevices: %v", err)
			}
			if !slices.Equal(sb.CDIDevices, tt.devices) {
				t.Errorf("devices %q, want %q", sb.CDIDevices, tt.devices)
			}
			if (sb.CDI != nil) != (len(tt.devices) > 0) {
				t.Errorf("registry set: %v", sb.CDI != nil)
			}
			lines := strings.Count(stderr.String(), "\n")
			switch {
			case tt.warn == "" && stderr.Len() > 0:
				t.Errorf("unexpected output %q", stderr.String())
			case tt.warn != "" && (lines != 1 || !strings.Contains(stderr.String(), tt.warn) || !strings.HasPrefix(stderr.String(), "sbxrun: warning: ")):
				t.Errorf("output %q, want one warning line containing %q", stderr.String(), tt.warn)
			}
		})
	}
}
