package gpu

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	server := dgx(mockVersion)
	root := fakeDriverRoot(t, mockVersion)
	dir := t.TempDir()
	if _, err := Setup(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t), Output: filepath.Join(dir, "nvidia.yaml")}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("kind: x/y\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "other.yaml"), 0o666); err != nil {
		t.Fatal(err)
	}

	fakeProcVersion(t, procLine(mockVersion))
	var out bytes.Buffer
	err := Status(&out, StatusOptions{SpecDirs: []string{dir}, NVML: server})
	for _, want := range []string{
		"driver:    " + mockVersion + " (loaded)",
		"GPUs:      0  Mock NVIDIA A100-SXM4-40GB  " + uuids(server)[0],
		uuids(server)[7],
		filepath.Join(dir, "nvidia.yaml") + "  nvidia.com/gpu  devices: all, 0, 1, 2, 3, 4, 5, 6, 7 (+8 UUIDs)  driver",
		"driver " + mockVersion + "  fresh",
		filepath.Join(dir, "other.yaml") + "  REFUSED: ",
		"hook:      " + hookBinary(t) + " ok",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	if err == nil || !strings.Contains(err.Error(), "other.yaml") {
		t.Errorf("status error = %v, want the refused file named", err)
	}

	// After a driver upgrade the spec is stale, and status says what to run.
	if err := os.Remove(filepath.Join(dir, "other.yaml")); err != nil {
		t.Fatal(err)
	}
	fakeProcVersion(t, procLine("580.159.04"))
	out.Reset()
	err = Status(&out, StatusOptions{SpecDirs: []string{dir}, NVML: dgx("580.159.04")})
	if !strings.Contains(out.String(), "STALE: it was generated for driver "+mockVersion+", the loaded driver is 580.159.04") {
		t.Errorf("status after an upgrade:\n%s", out.String())
	}
	if err == nil || !strings.Contains(err.Error(), "sudo sbxrun gpu setup --output "+filepath.Join(dir, "nvidia.yaml")) {
		t.Errorf("status error = %v, want the command that fixes it", err)
	}
}
