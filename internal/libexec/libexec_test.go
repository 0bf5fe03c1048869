package libexec

import (
	"os"
	"path/filepath"
	"testing"
)

// The variable wins; a name found nowhere is not ok.
func TestFind(t *testing.T) {
	t.Setenv("SBXRUN_TEST_HELPER", "/opt/x/helper")
	if p, ok := Find("sbxrun-no-such-helper", "SBXRUN_TEST_HELPER"); !ok || p != "/opt/x/helper" {
		t.Errorf("Find with the variable set = %q, %v", p, ok)
	}
	t.Setenv("SBXRUN_TEST_HELPER", "")
	t.Setenv("PATH", t.TempDir())
	if p, ok := Find("sbxrun-no-such-helper", "SBXRUN_TEST_HELPER"); ok {
		t.Errorf("Find of a missing helper = %q, want not found", p)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sbxrun-on-path"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if p, ok := Find("sbxrun-on-path", "SBXRUN_TEST_HELPER"); !ok || p != filepath.Join(dir, "sbxrun-on-path") {
		t.Errorf("Find on PATH = %q, %v", p, ok)
	}
}
