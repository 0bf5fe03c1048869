package integration

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// loopScript prints "ready" and runs until killed; as PID 1 without a trap
// it ignores SIGTERM, so stop must fall back to SIGKILL.
const loopScript = "echo ready; while :; do sleep 0.1; done"

// containerLabels returns the containerd labels of container name, or nil
// when it does not exist.
func containerLabels(t *testing.T, name string) map[string]string {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	c, err := harness.client.LoadContainer(ctx, name)
	if err != nil {
		return nil
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		t.Fatalf("labels of %q: %v", name, err)
	}
	return labels
}

// TestDetached runs sandboxes with -d and drives them with ps, logs, exec,
// stop, kill and rm.
func TestDetached(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)

	t.Run("keep", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := runWith(t, opts{timeout: 30 * time.Second}, "run", "--pull", "never", "-d", "--rm=false",
			"--stop-timeout", "1", "--name", name, "base", "--", "sh", "-c", "echo started; "+loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		if code != 0 {
			return
		}
		e, ok := psFind(t, name)
		if !ok {
			t.Fatalf("sbxrun ps -a does not list the detached sandbox %q", name)
		}
		if e.Status != "running" || e.Profile != "base" || !strings.Contains(e.Image, "ghcr.io/sbxrun/base") || e.PID <= 0 {
			t.Errorf("ps entry %+v, want running, profile base, image %s, a pid", e, baseRef)
		}
		var logs string
		waitFor(10*time.Second, func() bool {
			logs, _, _ = run(t, "logs", name)
			return strings.Contains(logs, "started")
		})
		if !strings.Contains(logs, "started") {
			t.Errorf("sbxrun logs %s: %q, want it to contain \"started\"", name, logs)
		}

		execs := []struct {
			args  []string
			stdin string
			want  string
			code  int
		}{
			{[]string{name, "--", "echo", "hi"}, "", "hi\n", 0},
			{[]string{name, "--", "sh", "-c", "exit 5"}, "", "", 5},
			{[]string{name, "--", "no-such-command-sbxrun"}, "", "", 127},
			{[]string{name, "--", "/bin/notexec"}, "", "", 126},
			{[]string{"-i", name, "--", "cat"}, "via exec stdin\n", "via exec stdin\n", 0},
			{[]string{"-w", "/tmp", name, "--", "pwd"}, "", "/tmp\n", 0},
			{[]string{"-e", "X=y", name, "--", "sh", "-c", "echo $X $PYTHONPATH"}, "", "y /workspace\n", 0},
		}
		for _, ex := range execs {
			o := opts{}
			if ex.stdin != "" {
				o.stdin = strings.NewReader(ex.stdin)
			}
			stdout, stderr, code := runWith(t, o, append([]string{"exec"}, ex.args...)...)
			expect(t, "sbxrun exec "+strings.Join(ex.args, " "), code, ex.code, stdout, stderr)
			if stdout != ex.want {
				t.Errorf("sbxrun exec %s: stdout %q, want %q", strings.Join(ex.args, " "), stdout, ex.want)
			}
		}

		// A detached sandbox has no live owner by design; gc must leave it.
		stdout, stderr, code = run(t, "gc")
		expect(t, "sbxrun gc", code, 0, stdout, stderr)
		if e, ok := psFind(t, name); !ok || e.Status != "running" {
			t.Errorf("after gc the detached sandbox is %+v (listed: %v), want it running", e, ok)
		}

		// rm without -f refuses a running sandbox.
		stdout, stderr, code = run(t, "rm", name)
		if code == 0 {
			t.Errorf("sbxrun rm %s on a running sandbox: exit 0, want a refusal naming -f or stop", name)
		}
		if _, ok := psFind(t, name); !ok {
			t.Fatalf("sbxrun rm without -f removed the running sandbox %q", name)
		}

		began := time.Now()
		stdout, stderr, code = runWith(t, opts{timeout: 30 * time.Second}, "stop", name)
		expect(t, "sbxrun stop", code, 0, stdout, stderr)
		if d := time.Since(began); d > 8*time.Second {
			t.Errorf("sbxrun stop took %s with --stop-timeout 1", d)
		}
		if e, ok := psFind(t, name); !ok || e.Status != "stopped" {
			t.Errorf("after stop: %+v (listed: %v), want status stopped", e, ok)
		}
		logs, stderr, code = run(t, "logs", name)
		expect(t, "sbxrun logs after stop", code, 0, logs, stderr)
		if !strings.Contains(logs, "started") {
			t.Errorf("sbxrun logs after stop: %q, want \"started\"", logs)
		}
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "sbxrun rm", code, 0, stdout, stderr)
		assertGone(t, name)
		stdout, stderr, code = run(t, "rm", name)
		if code == 0 {
			t.Errorf("sbxrun rm of a removed sandbox: exit 0, want an error; stderr %q", stderr)
		}
	})

	t.Run("rm-default", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--stop-timeout", "1", "--name", name, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		if l := containerLabels(t, name); l["sbxrun.rm"] != "true" {
			t.Errorf("label sbxrun.rm = %q, want true (--rm defaults to true)", l["sbxrun.rm"])
		}
		stdout, stderr, code = run(t, "stop", name)
		expect(t, "sbxrun stop", code, 0, stdout, stderr)
		// --rm: stopping removes the sandbox, as docker stop does.
		assertGone(t, name)
	})

	t.Run("rm-force", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--rm=false", "--name", name, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		stdout, stderr, code = run(t, "rm", "-f", name)
		expect(t, "sbxrun rm -f on a running sandbox", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("kill", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--rm=false", "--name", name, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		stdout, stderr, code = run(t, "kill", name)
		expect(t, "sbxrun kill", code, 0, stdout, stderr)
		if !waitFor(10*time.Second, func() bool { e, ok := psFind(t, name); return ok && e.Status == "stopped" }) {
			e, ok := psFind(t, name)
			t.Errorf("after sbxrun kill (SIGKILL by default): %+v (listed: %v), want stopped", e, ok)
		}
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "sbxrun rm", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("exit-on-its-own", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--rm=false", "--name", name, "base", "--", "sh", "-c", "echo done")
		expect(t, "run -d", code, 0, stdout, stderr)
		if !waitFor(10*time.Second, func() bool { e, ok := psFind(t, name); return ok && e.Status == "stopped" }) {
			e, ok := psFind(t, name)
			t.Errorf("a detached sandbox whose workload exited: %+v (listed: %v), want stopped", e, ok)
		}
		logs, stderr, code := run(t, "logs", name)
		expect(t, "sbxrun logs", code, 0, logs, stderr)
		if logs != "done\n" {
			t.Errorf("sbxrun logs: %q, want %q", logs, "done\n")
		}
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "sbxrun rm", code, 0, stdout, stderr)
		assertGone(t, name)
	})
}

// TestOrphan SIGKILLs a foreground sbxrun: the sandbox it leaves is not
// touched while its owner lives, and is removed by gc or replaced by the
// next run with the same name.
func TestOrphan(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name string
		// cleanup removes the orphan and checks the result.
		cleanup func(t *testing.T, name string)
	}{
		{"gc", func(t *testing.T, name string) {
			stdout, stderr, code := run(t, "gc")
			expect(t, "sbxrun gc", code, 0, stdout, stderr)
		}},
		{"next-run-replaces", func(t *testing.T, name string) {
			stdout, stderr, code := run(t, "run", "--pull", "never", "--name", name, "base", "--", "echo", "replaced")
			expect(t, "a run with the orphan's name", code, 0, stdout, stderr)
			if stdout != "replaced\n" {
				t.Errorf("stdout %q, want %q", stdout, "replaced\n")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			p := start(t, opts{}, "run", "--pull", "never", "--name", name, "base", "--", "sh", "-c", loopScript)
			waitOutput(t, p, p.stdout, "ready", 30*time.Second)

			labels := containerLabels(t, name)
			if got, want := labels["sbxrun.owner.pid"], strconv.Itoa(p.cmd.Process.Pid); got != want {
				t.Errorf("label sbxrun.owner.pid = %q, want %s (the running sbxrun)", got, want)
			}
			if labels["sbxrun.rm"] != "true" {
				t.Errorf("label sbxrun.rm = %q, want true", labels["sbxrun.rm"])
			}

			// gc leaves a sandbox whose owner is alive.
			stdout, stderr, code := run(t, "gc")
			expect(t, "sbxrun gc with a live owner", code, 0, stdout, stderr)
			if e, ok := psFind(t, name); !ok || e.Status != "running" {
				t.Fatalf("gc touched a sandbox whose owner is alive: %+v (listed: %v)", e, ok)
			}
			// So does a run with the same name: 125, name in use.
			stdout, stderr, code = run(t, "run", "--pull", "never", "--name", name, "base", "--", "echo", "intruder")
			expect(t, "a run with the name of a live sandbox", code, 125, stdout, stderr)
			if !strings.Contains(stderr, name) {
				t.Errorf("stderr %q does not name %q", stderr, name)
			}

			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 10*time.Second); code != 137 {
				t.Fatalf("sbxrun after SIGKILL: exit %d, want 137", code)
			}
			if _, ok := psFind(t, name); !ok {
				t.Fatalf("no orphan: %q vanished although its sbxrun was SIGKILLed", name)
			}
			tt.cleanup(t, name)
			assertGone(t, name)
		})
	}
}

// TestSameNameRace starts two runs with the same --name at once: exactly
// one runs (exit 0), the other exits 125, and nothing leaks.
func TestSameNameRace(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			var wg sync.WaitGroup
			type result struct {
				stdout, stderr string
				code           int
			}
			results := make([]result, 2)
			for j := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stdout, stderr, code := runWith(t, opts{timeout: 60 * time.Second}, "run", "--pull", "never", "--name", name,
						"base", "--", "sh", "-c", "sleep 2; echo ran")
					results[j] = result{stdout, stderr, code}
				}()
			}
			wg.Wait()
			codes := []int{results[0].code, results[1].code}
			sort.Ints(codes)
			if codes[0] != 0 || codes[1] != 125 {
				t.Errorf("exit codes %v, want one 0 and one 125; results %+v", codes, results)
			}
			for _, r := range results {
				if r.code == 0 && r.stdout != "ran\n" {
					t.Errorf("the winner printed %q, want %q", r.stdout, "ran\n")
				}
				if r.code == 125 && !strings.Contains(r.stderr, name) {
					t.Errorf("the loser's stderr %q does not name %q", r.stderr, name)
				}
			}
			assertGone(t, name)
		})
	}
}

// TestParallelRuns starts 20 runs at once: all exit 0 with their own output
// and leave nothing.
func TestParallelRuns(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	const n = 20
	type result struct {
		stdout, stderr string
		code           int
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stdout, stderr, code := runWith(t, opts{timeout: 120 * time.Second}, "run", "--pull", "never", "--name", nameFor(t, strconv.Itoa(i)),
				"base", "--", "sh", "-c", fmt.Sprintf("echo run-%d $(hostname)", i))
			results[i] = result{stdout, stderr, code}
		}()
	}
	wg.Wait()
	for i, r := range results {
		name := nameFor(t, strconv.Itoa(i))
		expect(t, "parallel run "+name, r.code, 0, r.stdout, r.stderr)
		if want := fmt.Sprintf("run-%d %s\n", i, name); r.stdout != want {
			t.Errorf("run %d printed %q, want %q", i, r.stdout, want)
		}
		assertGone(t, name)
	}
}

// TestForeground drives a sandbox that runs in the foreground from a second
// sbxrun: exec beside it, then stop it; the foreground run reports the
// kill and cleans up.
func TestForeground(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	p := start(t, opts{}, "run", "--pull", "never", "--name", name, "--stop-timeout", "1", "base", "--", "sh", "-c", loopScript)
	waitOutput(t, p, p.stdout, "ready", 30*time.Second)
	if e, ok := psFind(t, name); !ok || e.Status != "running" || e.Profile != "base" || e.PID <= 0 {
		t.Errorf("sbxrun ps -a: %+v (listed: %v), want running, profile base, a pid", e, ok)
	}
	stdout, stderr, code := run(t, "exec", name, "--", "sh", "-c", "echo beside; cat /proc/1/cmdline | tr '\\0' ' '")
	expect(t, "sbxrun exec beside a foreground sandbox", code, 0, stdout, stderr)
	if !strings.HasPrefix(stdout, "beside\nsh -c ") {
		t.Errorf("exec stdout %q, want \"beside\" and PID 1 being the workload's sh", stdout)
	}
	stdout, stderr, code = runWith(t, opts{timeout: 30 * time.Second}, "stop", name)
	expect(t, "sbxrun stop of a foreground sandbox", code, 0, stdout, stderr)
	// PID 1 ignores SIGTERM, so stop ends it with SIGKILL after 1 s.
	if got := p.wait(t, 30*time.Second); got != 137 {
		t.Errorf("the foreground run after stop: exit %d, want 137; stderr %q", got, p.stderr.String())
	}
	assertGone(t, name)
}
