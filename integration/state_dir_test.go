package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFullStateDir: with no room left in the state directory, a run whose
// marker or log cannot be written fails before anything is created: exit
// 125 and one line naming the directory, for attached, kept and detached
// runs alike (a detached run used to exit 0 and lose its output).
func TestFullStateDir(t *testing.T) {
	t.Parallel()
	ns := useNamespace(t, false)
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mounting a small tmpfs as the state directory: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	// Fill it.
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()

	o := opts{env: []string{"SBXRUN_STATE_DIR=" + dir}}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"attached", nil},
		{"kept", []string{"--rm=false"}},
		{"detached", []string{"-d"}},
		{"detached-kept", []string{"-d", "--rm=false"}},
	} {
		name := nameFor(t, tt.name)
		args := append(append([]string{"run", "--pull", "never", "--name", name}, tt.args...), "base", "--", "echo", "lost")
		stdout, stderr, code := runWith(t, o, args...)
		expect(t, "sbxrun "+strings.Join(args, " ")+" with a full state directory", code, 125, stdout, stderr)
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, dir) || !strings.Contains(stderr, "no space left") {
			t.Errorf("%s: stderr %q, want one line naming %q and that it is full", tt.name, stderr, dir)
		}
		if strings.Contains(stdout, "lost") || strings.Contains(stdout, name) {
			t.Errorf("%s: stdout %q: the run went ahead", tt.name, stdout)
		}
		assertGone(t, name)
	}
	ctx, cancel := nsCtx(t)
	defer cancel()
	ls, err := harness.client.LeasesService().List(ctx, `labels."sbxrun.run"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) > 0 {
		t.Errorf("leases of refused runs left in %s: %d", ns, len(ls))
	}
	markers, _ := filepath.Glob(filepath.Join(dir, "owners", ns, "*@*"))
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", ns, "*"))
	if len(markers)+len(logs) > 0 {
		t.Errorf("files left in the full state directory: markers %q, logs %q", markers, logs)
	}
}

// TestLogPermissions: a detached sandbox's log is readable by its owner
// only (0600 in 0700 directories), also in a state directory an older
// sbxrun created world-readable.
func TestLogPermissions(t *testing.T) {
	t.Parallel()
	ns := useNamespace(t, false)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs", ns)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := opts{env: []string{"SBXRUN_STATE_DIR=" + dir}}
	name := nameFor(t)
	stdout, stderr, code := runWith(t, o, "run", "--pull", "never", "-d", "--rm=false", "--name", name, "base", "--", "echo", "secret")
	expect(t, "run -d", code, 0, stdout, stderr)
	var logs string
	waitFor(10*time.Second, func() bool {
		logs, _, _ = runWith(t, o, "logs", name)
		return strings.Contains(logs, "secret")
	})
	if !strings.Contains(logs, "secret") {
		t.Errorf("sbxrun logs %s: %q, want the workload's output", name, logs)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(dir, "logs"), 0o700},
		{logDir, 0o700},
		{filepath.Join(logDir, name+".log"), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %#o, want %#o", c.path, got, c.want)
		}
	}
	stdout, stderr, code = runWith(t, o, "rm", "-f", name)
	expect(t, "sbxrun rm -f", code, 0, stdout, stderr)
	assertGone(t, name)
}
