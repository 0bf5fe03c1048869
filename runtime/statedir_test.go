package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// prepareLog tightens log directories an older sbxrun made world-readable
// and leaves an existing log alone (it may be a live sandbox's).
func TestPrepareLog(t *testing.T) {
	state := t.TempDir()
	lp := logPath(state, "sbxrun", "box")
	if err := os.MkdirAll(filepath.Dir(lp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lp, []byte("earlier output\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareLog(state, lp); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(state, "logs"), filepath.Dir(lp)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %#o, want 0700", d, fi.Mode().Perm())
		}
	}
	if b, _ := os.ReadFile(lp); string(b) != "earlier output\n" {
		t.Errorf("prepareLog changed an existing log: %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(lp))
	if len(entries) != 1 {
		t.Errorf("prepareLog left files behind: %v", entries)
	}
}

func TestStateDirError(t *testing.T) {
	err := stateDirError("/var/lib/sbxrun", &os.PathError{Op: "open", Path: "/var/lib/sbxrun/owners/x", Err: syscall.ENOSPC})
	msg := err.Error()
	for _, want := range []string{`"/var/lib/sbxrun"`, "no space left on device", "SBXRUN_STATE_DIR"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "owners/x") {
		t.Errorf("%q names the file instead of the directory", msg)
	}
}
