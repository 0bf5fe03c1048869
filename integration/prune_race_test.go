package integration

import (
	"strings"
	"sync"
	"testing"
)

// TestRunSurvivesConcurrentPrune runs sandboxes of a registry image while
// `sbxrun prune -a -f` removes that image again and again in the same
// namespace. prune may take the image between the run's image check and
// the creation of its rootfs; the run must then fetch it again (its pull
// policy allows that), never fail with a missing parent snapshot.
func TestRunSurvivesConcurrentPrune(t *testing.T) {
	useNamespace(t, false)
	reg := startRegistry(t, registryOpts{})
	reg.push(t, "oci-archive:"+harness.plainImage, "sbxtest/prune-race", "v1")
	ref := reg.host + "/sbxtest/prune-race:v1"

	const rounds = 12
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	prunes := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			stdout, stderr, code := run(t, "prune", "-a", "-f")
			if code != 0 {
				t.Errorf("prune: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
				return
			}
			prunes++
		}
	}()
	failed := 0
	for i := 0; i < rounds; i++ {
		stdout, stderr, code := run(t, "run", "--pull", "missing", ref, "--", "echo", "ran")
		if code != 0 || strings.TrimSpace(stdout) != "ran" {
			failed++
			t.Errorf("round %d: run while prune removes its image: exit %d\nstdout: %s\nstderr: %s", i, code, stdout, stderr)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d runs, %d prunes beside them, %d failed", rounds, prunes, failed)
	if prunes < 2 {
		t.Errorf("only %d prunes ran beside the %d runs: the race was not exercised", prunes, rounds)
	}
}
