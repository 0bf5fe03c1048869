package integration

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
)

// TestGCDropsLeasesOfKilledRuns: a run SIGKILLed between its image check
// and its container's creation leaves the lease that holds its snapshot.
// gc (and prune) drop such leases of dead runs, and only those: a live
// run's lease and leases sbxrun did not make stay.
func TestGCDropsLeasesOfKilledRuns(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	ctx, cancel := nsCtx(t)
	defer cancel()
	ls := harness.client.LeasesService()

	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	owner := func(pid int, start string) map[string]string {
		return map[string]string{"sbxrun.run": "1", "sbxrun.owner.pid": strconv.Itoa(pid),
			"sbxrun.owner.start": start, "sbxrun.owner.boot-id": strings.TrimSpace(string(boot))}
	}
	// A run that has ended: a process that exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// A live run: this test process, with its real start time.
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	live := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))[19]

	mk := func(labels map[string]string) leases.Lease {
		l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Hour), leases.WithLabels(labels))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ls.Delete(ctx, l) })
		return l
	}
	dead := mk(owner(gone.Process.Pid, "12345"))
	alive := mk(owner(os.Getpid(), live))
	foreign := mk(map[string]string{"someone.else": "1"})

	stdout, stderr, code := run(t, "gc")
	expect(t, "gc", code, 0, stdout, stderr)
	if !strings.Contains(stdout, "removed 1 lease(s) of killed runs") {
		t.Errorf("gc output %q, want it to report the one dead run's lease", stdout)
	}
	left, err := ls.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, l := range left {
		has[l.ID] = true
	}
	if has[dead.ID] || !has[alive.ID] || !has[foreign.ID] {
		t.Errorf("after gc: dead run's lease kept %v, live run's kept %v, foreign kept %v; want false, true, true", has[dead.ID], has[alive.ID], has[foreign.ID])
	}
}
