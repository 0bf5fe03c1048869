package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBindSourceRace: a host process flips the bind source between a data
// directory and a symlink to / while sandboxes start. sbxrun checks the
// source it opened and hands runc that descriptor, so every run either
// mounts the data directory or is refused; none ever sees the host's root.
// (Before, 9 of 60 such runs mounted /.)
func TestBindSourceRace(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("data", link); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var flips atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := filepath.Join(dir, "link.tmp")
		for i := 0; !stop.Load(); i++ {
			target := "data"
			if i%2 == 1 {
				target = "/"
			}
			_ = os.Remove(tmp)
			if os.Symlink(target, tmp) == nil && os.Rename(tmp, link) == nil {
				flips.Add(1)
			}
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	const runs = 40
	var mounted, refused int
	for i := 0; i < runs; i++ {
		out, stderr, code := sandbox(t, nameFor(t, "r"), "-v", link+":/mnt:ro", "base", "--", "ls", "/mnt")
		switch {
		case code == 0 && strings.TrimSpace(out) == "marker":
			mounted++
		case code == 125 && strings.Contains(stderr, "host's root"):
			refused++
		default:
			t.Fatalf("run %d: exit %d, stdout %q, stderr %q; want the data directory (marker) or a refusal of the host's root", i, code, out, stderr)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d runs: %d mounted the data directory, %d refused the host's root; %d flips", runs, mounted, refused, flips.Load())
	if flips.Load() < runs {
		t.Fatalf("the flipper made only %d flips: the race was not exercised", flips.Load())
	}
	if mounted == 0 {
		t.Errorf("no run mounted the data directory: the check refuses more than it should")
	}
}

// TestBindMountsNosuidNodev: binds are nosuid,nodev inside the sandbox
// unless the mount asks for suid or dev (-v SRC:DST:suid,dev).
func TestBindMountsNosuidNodev(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	dir := t.TempDir()
	options := func(args ...string) string {
		t.Helper()
		full := append(append([]string{}, args...), "base", "--", "sh", "-c", `awk '$5 == "/mnt" {print $6}' /proc/self/mountinfo`)
		out, stderr, code := sandbox(t, nameFor(t), full...)
		expect(t, strings.Join(args, " "), code, 0, out, stderr)
		return strings.TrimSpace(out)
	}
	got := options("-v", dir+":/mnt")
	if !strings.Contains(got, "nosuid") || !strings.Contains(got, "nodev") {
		t.Errorf("-v %s:/mnt mount options %q, want nosuid and nodev", dir, got)
	}
	got = options("-v", dir+":/mnt:suid,dev")
	if got == "" || strings.Contains(got, "nosuid") || strings.Contains(got, "nodev") {
		t.Errorf("-v %s:/mnt:suid,dev mount options %q, want neither nosuid nor nodev", dir, got)
	}
}

// TestStagedMountsCollected: a run killed while its bind sources were
// staged leaves them mounted under STATE/mounts; gc unmounts and removes
// them, and leaves those of a live run alone.
func TestStagedMountsCollected(t *testing.T) {
	useNamespace(t, false)
	root := filepath.Join(harness.root, "state", "mounts")
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	live := filepath.Join(root, strconv.Itoa(os.Getpid())+"-"+fields[19]+"-live")
	dead := filepath.Join(root, "999999999-1-dead") // above any pid_max
	for _, d := range []string{live, dead} {
		if err := os.MkdirAll(filepath.Join(d, "0"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(t.TempDir(), filepath.Join(d, "0"), "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("staging a test mount: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{live, dead} {
			_ = unix.Unmount(filepath.Join(d, "0"), unix.MNT_DETACH)
			_ = os.RemoveAll(d)
		}
	})
	out, stderr, code := run(t, "gc")
	expect(t, "gc", code, 0, out, stderr)
	if !strings.Contains(out, "removed the staged bind mounts of ") {
		t.Errorf("gc printed %q, want the staged mounts of the killed run removed", out)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) || strings.Contains(string(mountinfo), dead) {
		t.Errorf("gc left %s (stat: %v)", dead, err)
	}
	if _, err := os.Stat(filepath.Join(live, "0")); err != nil || !strings.Contains(string(mountinfo), live) {
		t.Errorf("gc removed the staged mounts of a live run: %v", err)
	}
}
