package integration

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shimPids returns the pids of the containerd shims serving namespace ns
// of the harness's containerd, by task id. Shims of other daemons and
// namespaces are never listed, so no test touches another's.
func shimPids(t *testing.T, ns string) map[string]int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 7 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		flags := map[string]string{}
		for i := 1; i+1 < len(args); i++ {
			flags[args[i]] = args[i+1]
		}
		if flags["-namespace"] == ns && flags["-address"] == harness.address {
			out[flags["-id"]] = pid
		}
	}
	return out
}

// orphanShims returns the ids of ns's shims for which containerd has no
// task.
func orphanShims(t *testing.T, ns string) []string {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	var out []string
	for id := range shimPids(t, ns) {
		c, err := harness.client.LoadContainer(ctx, id)
		if err == nil {
			if _, err = c.Task(ctx, nil); err == nil {
				continue
			}
		}
		out = append(out, id)
	}
	return out
}

// markers lists the run markers sbxrun keeps for namespace ns in the
// harness's state directory.
func markers(t *testing.T, ns string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(harness.root, "state", "owners", ns))
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// shimSocket is where a containerd 1.6/2.x shim of task id in ns listens.
func shimSocket(ns, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(harness.address, ns, id)))
	return fmt.Sprintf("/run/containerd/s/%x", sum)
}

// TestGCStopsShimUnknownToContainerd: a shim that containerd does not know
// (what containerd 1.6 leaves when a client dies while it starts a task)
// is shut down by gc, and its socket removed; the shim of a live sandbox
// is left alone.
func TestGCStopsShimUnknownToContainerd(t *testing.T) {
	t.Parallel()
	ns := useNamespace(t, false)

	live := nameFor(t, "live")
	p := start(t, opts{}, "run", "--pull", "never", "--name", live, "base", "--", "sh", "-c", loopScript)
	waitOutput(t, p, p.stdout, "ready", 30*time.Second)
	livePid := shimPids(t, ns)[live]
	if livePid == 0 {
		t.Fatalf("no shim found for the running sandbox %q", live)
	}

	// The shim as containerd starts it, from a bundle containerd has
	// forgotten.
	id := nameFor(t, "orphan")
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("containerd-shim-runc-v2")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-namespace", ns, "-id", id, "-address", harness.address, "-publish-binary", "containerd", "start")
	cmd.Dir = bundle
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starting a shim: %v\n%s", err, out)
	}
	var orphan int
	waitFor(5*time.Second, func() bool { orphan = shimPids(t, ns)[id]; return orphan != 0 })
	if orphan == 0 {
		t.Fatalf("the shim started for %q is not running; its log:\n%s", id, readFile(filepath.Join(bundle, "log")))
	}
	t.Cleanup(func() {
		// Only if gc failed: the pid is still this test's shim.
		if shimPids(t, ns)[id] == orphan {
			_ = syscall.Kill(orphan, syscall.SIGKILL)
		}
		_ = os.Remove(shimSocket(ns, id))
	})
	if _, err := os.Stat(shimSocket(ns, id)); err != nil {
		t.Fatalf("the shim's socket: %v", err)
	}

	stdout, stderr, code := run(t, "gc")
	expect(t, "sbxrun gc", code, 0, stdout, stderr)
	if !strings.Contains(stdout, "stopped the orphaned shim of "+id) {
		t.Errorf("gc output %q does not report the orphaned shim of %q", stdout, id)
	}
	if !waitFor(5*time.Second, func() bool { return shimPids(t, ns)[id] == 0 }) {
		t.Errorf("the orphaned shim of %q (pid %d) still runs after gc", id, orphan)
	}
	if _, err := os.Stat(shimSocket(ns, id)); !os.IsNotExist(err) {
		t.Errorf("the orphaned shim's socket is still there after gc (stat: %v)", err)
	}
	if got := shimPids(t, ns)[live]; got != livePid {
		t.Errorf("gc touched the shim of the live sandbox %q: pid %d, want %d", live, got, livePid)
	}
	if e, ok := psFind(t, live); !ok || e.Status != "running" {
		t.Errorf("after gc the live sandbox is %+v (listed: %v), want running", e, ok)
	}
	stdout, stderr, code = run(t, "kill", live)
	expect(t, "sbxrun kill", code, 0, stdout, stderr)
	if code := p.wait(t, 30*time.Second); code != 137 {
		t.Errorf("the live sandbox's run after sbxrun kill: exit %d, want 137", code)
	}
	assertGone(t, live)
}

// TestKilledRunsLeaveNoShim SIGKILLs runs at random points of their start
// (50-300 ms in, where containerd 1.6 leaves shims behind): a later run
// stops the shims of the killed runs it finds markers for, and gc leaves
// no shim, runc container, marker, container or snapshot of them behind.
func TestKilledRunsLeaveNoShim(t *testing.T) {
	t.Parallel()
	ns := useNamespace(t, false)
	const kills = 20
	var lastKill time.Time
	for i := 0; i < kills; i++ {
		p := start(t, opts{}, "run", "--pull", "never", "base", "--", "sh", "-c", "sleep 1")
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		_ = p.cmd.Process.Kill()
		lastKill = time.Now()
		p.wait(t, 10*time.Second)
	}
	time.Sleep(time.Second)
	t.Logf("after %d kills: %d shim(s) containerd does not know, %d marker(s)", kills, len(orphanShims(t, ns)), len(markers(t, ns)))

	// A run after the markers' grace period collects the killed runs,
	// shims included.
	time.Sleep(5 * time.Second)
	stdout, stderr, code := run(t, "run", "--pull", "never", "base", "--", "true")
	expect(t, "a run after the kills", code, 0, stdout, stderr)
	if o := orphanShims(t, ns); len(o) > 0 {
		t.Errorf("after a run: shims of killed runs left that containerd does not know: %q", o)
	}

	// gc leaves a network attachment whose CNI ADD a killed run left
	// unfinished alone for 10 s (a plugin may still run): wait that out.
	time.Sleep(time.Until(lastKill.Add(11 * time.Second)))
	stdout, stderr, code = run(t, "gc")
	expect(t, "sbxrun gc", code, 0, stdout, stderr)
	if left, _ := filepath.Glob(filepath.Join(os.Getenv("SBXRUN_STATE_DIR"), "cni", "attachments", ns, "*.json")); len(left) > 0 {
		t.Errorf("after gc: network attachments of killed runs left: %q", left)
	}
	if !waitFor(10*time.Second, func() bool { return len(shimPids(t, ns)) == 0 }) {
		t.Errorf("after gc: shims left: %v", shimPids(t, ns))
	}
	if m := markers(t, ns); len(m) > 0 {
		t.Errorf("after gc: markers left: %q", m)
	}
	// A shim that died holding a created container leaves `runc init`
	// waiting with the rootfs mounted; gc deletes such containers.
	if left, _ := os.ReadDir(filepath.Join("/run/containerd/runc", ns)); len(left) > 0 {
		var ids []string
		for _, e := range left {
			ids = append(ids, e.Name())
		}
		t.Errorf("after gc: runc containers left in /run/containerd/runc/%s: %q", ns, ids)
	}
}

// TestRunReplacesStaleRuncState: a runc container left under a sandbox's
// name by a shim that died with its containerd (a killed `up -d`, a
// harness or host daemon killed with its shims) no longer makes every later
// run of that name fail with "container with given ID already exists": the
// run deletes it first, and only because nothing manages it.
func TestRunReplacesStaleRuncState(t *testing.T) {
	t.Parallel()
	ns := useNamespace(t, false)
	const name = "stale-runc"
	root := filepath.Join("/run/containerd/runc", ns)
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "/bin/busybox", filepath.Join(rootfs, "bin", "sh")).CombinedOutput(); err != nil {
		t.Fatalf("copying busybox: %v\n%s", err, out)
	}
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	cfg := filepath.Join(bundle, "config.json")
	spec := strings.Replace(readFile(cfg), `"terminal": true`, `"terminal": false`, 1)
	if err := os.WriteFile(cfg, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	// Created, never started: `runc init` waits, as a dead shim leaves it.
	// `runc init` keeps the stdio it is given: a file, never a pipe that
	// would hold this test until it exits.
	logf, err := os.Create(filepath.Join(bundle, "create.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	create := exec.Command("runc", "--root", root, "create", "--bundle", bundle, name)
	create.Stdout, create.Stderr = logf, logf
	if err := create.Run(); err != nil {
		t.Fatalf("runc create: %v\n%s", err, readFile(logf.Name()))
	}
	t.Cleanup(func() { _ = exec.Command("runc", "--root", root, "delete", "--force", name).Run() })
	if _, err := os.Stat(filepath.Join(root, name, "state.json")); err != nil {
		t.Fatalf("runc create left no state: %v", err)
	}

	stdout, stderr, code := run(t, "run", "--rm", "--pull", "never", "--name", name, "base", "--", "echo", "ran")
	expect(t, "a run over a stale runc container of its name", code, 0, stdout, stderr)
	if strings.TrimSpace(stdout) != "ran" {
		t.Errorf("stdout %q, want %q", stdout, "ran")
	}
	if _, err := os.Stat(filepath.Join(root, name)); !os.IsNotExist(err) {
		t.Errorf("runc state of %q left after the --rm run (stat: %v)", name, err)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
