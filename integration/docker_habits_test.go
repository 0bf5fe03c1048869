package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idOfName returns the containerd ID of the sandbox sbxrun shows as name
// (its sbxrun.name label), or "" when there is none.
func idOfName(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	cs, err := harness.client.Containers(ctx, `labels."sbxrun.name"==`+name)
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	if len(cs) > 1 {
		t.Fatalf("%d containers are labelled sbxrun.name=%s, want at most one", len(cs), name)
	}
	if len(cs) == 0 {
		return ""
	}
	return cs[0].ID()
}

// inspection is the part of `sbxrun inspect` the tests read.
type inspection struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State struct {
		Status   string `json:"Status"`
		Running  bool   `json:"Running"`
		ExitCode int    `json:"ExitCode"`
	} `json:"State"`
	Config struct {
		Hostname string `json:"Hostname"`
		Tty      bool   `json:"Tty"`
	} `json:"Config"`
}

func inspect(t *testing.T, names ...string) []inspection {
	t.Helper()
	stdout, stderr, code := run(t, append([]string{"inspect"}, names...)...)
	expect(t, "sbxrun inspect", code, 0, stdout, stderr)
	var out []inspection
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("sbxrun inspect printed no JSON array: %v\n%s", err, stdout)
	}
	return out
}

// expectLines fails t unless stdout is exactly the lines want.
func expectLines(t *testing.T, what, stdout string, want ...string) {
	t.Helper()
	if got := strings.TrimSuffix(stdout, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("%s printed %q, want the lines %q", what, stdout, want)
	}
}

// TestDockerNames runs sandboxes under names Docker accepts and containerd
// does not (a--b, a__b, a..b, a-) and under a name longer than a hostname,
// and finds them by that name with every command.
func TestDockerNames(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)

	t.Run("lifecycle", func(t *testing.T) {
		t.Parallel()
		name := "it--docker__name..x-"
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--rm=false", "--name", name, "base", "--", "sh", "-c", "echo hello from $(hostname); "+loopScript)
		expect(t, "run -d --name "+name, code, 0, stdout, stderr)
		expectLines(t, "run -d", stdout, name)
		if code != 0 {
			return
		}
		id := idOfName(t, name)
		if id == "" || id == name {
			t.Fatalf("container of %q has ID %q, want a mapped containerd ID", name, id)
		}
		stdout, _, _ = run(t, "ps", "--format", "{{.Names}} {{.State}}")
		if !strings.Contains(stdout, name+" running\n") {
			t.Errorf("ps --format '{{.Names}} {{.State}}' = %q, want a line %q", stdout, name+" running")
		}
		stdout, stderr, code = run(t, "exec", name, "--", "hostname")
		expect(t, "exec "+name, code, 0, stdout, stderr)
		expectLines(t, "exec hostname", stdout, name)
		var logs string
		waitFor(10*time.Second, func() bool {
			logs, _, _ = run(t, "logs", name)
			return strings.Contains(logs, "hello from "+name)
		})
		if !strings.Contains(logs, "hello from "+name) {
			t.Errorf("logs %s = %q, want %q", name, logs, "hello from "+name)
		}
		if in := inspect(t, name); len(in) != 1 || in[0].Name != name || in[0].ID != id || !in[0].State.Running || in[0].Config.Hostname != name {
			t.Errorf("inspect %s = %+v, want name %q, id %q, running, hostname %q", name, in, name, id, name)
		}
		// Docker's attached short value, and stop prints the name.
		stdout, stderr, code = run(t, "stop", "-t0", name)
		expect(t, "stop -t0", code, 0, stdout, stderr)
		expectLines(t, "stop -t0", stdout, name)
		stdout, stderr, code = run(t, "wait", name)
		expect(t, "wait", code, 0, stdout, stderr)
		expectLines(t, "wait after stop -t0 (SIGKILL)", stdout, "137")
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "rm", code, 0, stdout, stderr)
		expectLines(t, "rm", stdout, name)
		assertGone(t, id)
		if id := idOfName(t, name); id != "" {
			t.Errorf("after rm, container %q of %q is left", id, name)
		}
		if _, err := os.Stat(filepath.Join(harness.root, "state", "logs", nsFor(t), id+".log")); !os.IsNotExist(err) {
			t.Errorf("after rm, the log of %q is left (stat: %v)", name, err)
		}
	})

	for _, name := range []string{"a--b", "a__b", "a..b", "a-"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := sandbox(t, name, "base", "--", "hostname")
			expect(t, "run --name "+name, code, 0, stdout, stderr)
			expectLines(t, "hostname", stdout, name)
			if id := idOfName(t, name); id != "" {
				t.Errorf("the --rm run %q left container %q", name, id)
			}
		})
	}

	t.Run("longer-than-a-hostname", func(t *testing.T) {
		t.Parallel()
		name := "long-" + strings.Repeat("n", 70)
		stdout, stderr, code := sandbox(t, name, "base", "--", "hostname")
		expect(t, "run with a 75-character --name", code, 0, stdout, stderr)
		// The name is the hostname, cut to the kernel's 64 characters.
		expectLines(t, "hostname", stdout, name[:64])
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"-a", "a b", "a/b", strings.Repeat("x", 129)} {
			stdout, stderr, code := sandbox(t, name, "base", "--", "echo", "workload-ran")
			expect(t, "run --name "+name, code, 125, stdout, stderr)
			if !strings.Contains(stderr, "--name") || strings.Count(stderr, "\n") != 1 || strings.Contains(stdout, "workload-ran") {
				t.Errorf("run --name %q: stderr %q, want one line naming --name, and no run", name, stderr)
			}
		}
	})
}

// TestDockerHabits checks the rest of "Docker habits that just work": run
// -dit, logs of a kept attached run, attached short options, explicit
// groups, oom_score_adj, wait, inspect and ps filters and templates.
func TestDockerHabits(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)

	t.Run("detached-terminal", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		// -dit: sh on a terminal that nobody types into waits, as in Docker.
		stdout, stderr, code := run(t, "run", "--pull", "never", "-dit", "--name", name, "base", "sh")
		expect(t, "run -dit", code, 0, stdout, stderr)
		expectLines(t, "run -dit", stdout, name)
		defer run(t, "rm", "-f", name)
		time.Sleep(time.Second)
		if e, ok := psFind(t, name); !ok || e.Status != "running" {
			t.Fatalf("1s after run -dit ... sh: %+v (listed %v), want running", e, ok)
		}
		stdout, stderr, code = run(t, "exec", name, "--", "readlink", "/proc/1/fd/0")
		expect(t, "exec readlink", code, 0, stdout, stderr)
		if !strings.HasPrefix(stdout, "/dev/pts/") {
			t.Errorf("the workload's stdin is %q, want a terminal /dev/pts/N", stdout)
		}
		if in := inspect(t, name); len(in) != 1 || !in[0].Config.Tty {
			t.Errorf("inspect: %+v, want Config.Tty", in)
		}
		stdout, stderr, code = run(t, "rm", "-f", name)
		expect(t, "rm -f", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("detached-terminal-logs", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "-t", "--rm=false", "--name", name, "base", "--", "sh", "-c", "tty; echo on-the-terminal")
		expect(t, "run -d -t", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", name)
		stdout, stderr, code = run(t, "wait", name)
		expect(t, "wait", code, 0, stdout, stderr)
		expectLines(t, "wait", stdout, "0")
		logs, stderr, code := run(t, "logs", name)
		expect(t, "logs", code, 0, logs, stderr)
		if !strings.Contains(logs, "/dev/pts/") || !strings.Contains(logs, "on-the-terminal") {
			t.Errorf("logs of run -d -t = %q, want the terminal's output (/dev/pts/N, on-the-terminal)", logs)
		}
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "rm", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("detached-stdin", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		// -d -i: stdin stays open, so `read` waits instead of reading EOF.
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "-i", "--name", name, "base", "--", "sh", "-c", "read x; echo eof")
		expect(t, "run -d -i", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", name)
		time.Sleep(time.Second)
		if e, ok := psFind(t, name); !ok || e.Status != "running" {
			t.Errorf("1s after run -d -i ... read: %+v (listed %v), want running (stdin open)", e, ok)
		}
		fifos, _ := filepath.Glob(filepath.Join(harness.root, "state", "logs", nsFor(t), "*.stdin"))
		if len(fifos) > 0 {
			t.Errorf("stdin FIFOs left in the state directory: %q", fifos)
		}
		stdout, stderr, code = run(t, "stop", "-t0", name)
		expect(t, "stop", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("kept-attached-logs", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "--rm=false", "--name", name, "base", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
		expect(t, "run --rm=false", code, 3, stdout, stderr)
		defer run(t, "rm", "-f", name)
		if stdout != "to-stdout\n" || !strings.Contains(stderr, "to-stderr") {
			t.Errorf("run printed %q / %q, want to-stdout / to-stderr on the terminal too", stdout, stderr)
		}
		logs, stderr, code := run(t, "logs", name)
		expect(t, "logs of a kept attached run", code, 0, logs, stderr)
		if !strings.Contains(logs, "to-stdout\n") || !strings.Contains(logs, "to-stderr\n") {
			t.Errorf("logs = %q, want both streams", logs)
		}
		stdout, stderr, code = run(t, "wait", name)
		expect(t, "wait", code, 0, stdout, stderr)
		expectLines(t, "wait", stdout, "3")
		if in := inspect(t, name); len(in) != 1 || in[0].State.Status != "exited" || in[0].State.ExitCode != 3 {
			t.Errorf("inspect = %+v, want exited with 3", in)
		}
		stdout, _, _ = run(t, "ps", "--filter", "status=exited", "--filter", "name="+name, "--format", "{{.Names}}|{{.Status}}")
		expectLines(t, "ps --filter status=exited --filter name=", stdout, name+"|Exited (3)")
		stdout, _, _ = run(t, "ps", "-q", "--filter", "status=running", "--filter", "name="+name)
		expectLines(t, "ps -q --filter status=running", stdout)
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "rm", code, 0, stdout, stderr)
		assertGone(t, name)
		if _, err := os.Stat(filepath.Join(harness.root, "state", "logs", nsFor(t), name+".log")); !os.IsNotExist(err) {
			t.Errorf("after rm the log is left (stat: %v)", err)
		}
		// --rm (the default) keeps no log.
		other := nameFor(t, "rm")
		stdout, stderr, code = sandbox(t, other, "base", "--", "echo", "x")
		expect(t, "run --rm", code, 0, stdout, stderr)
		if _, err := os.Stat(filepath.Join(harness.root, "state", "logs", nsFor(t), other+".log")); !os.IsNotExist(err) {
			t.Errorf("a --rm run left a log (stat: %v)", err)
		}
	})

	t.Run("kill-attached-signal", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--rm=false", "--label", "habit=kill", "--name", name, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", name)
		stdout, _, _ = run(t, "ps", "--filter", "label=habit=kill", "--format", "table {{.Names}}\\t{{.Label \"habit\"}}")
		if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAMES") || strings.Join(strings.Fields(lines[1]), " ") != name+" kill" {
			t.Errorf("ps --format table ... = %q, want a header and %q", stdout, name+" kill")
		}
		stdout, stderr, code = run(t, "kill", "-sKILL", name)
		expect(t, "kill -sKILL", code, 0, stdout, stderr)
		expectLines(t, "kill -sKILL", stdout, name)
		stdout, stderr, code = run(t, "wait", name)
		expect(t, "wait", code, 0, stdout, stderr)
		expectLines(t, "wait after kill -sKILL", stdout, "137")
		stdout, stderr, code = run(t, "stop", "--timeout", "1", name)
		expect(t, "stop --timeout 1 (stopped already)", code, 0, stdout, stderr)
		stdout, stderr, code = run(t, "rm", name)
		expect(t, "rm", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("explicit-group", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--name", name, "base", "--", "sh", "-c", "echo wheel:x:10:root >> /etc/group; "+loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", name)
		for _, tt := range []struct{ user, want string }{
			{"root", "0 10"}, {"root:root", "0"}, {"0:0", "0"}, {"root:10", "10"},
		} {
			var got string
			waitFor(5*time.Second, func() bool {
				got, _, _ = run(t, "exec", "-u", tt.user, name, "--", "id", "-G")
				return strings.TrimSpace(got) == tt.want
			})
			if strings.TrimSpace(got) != tt.want {
				t.Errorf("exec -u %s: id -G = %q, want %q (an explicit group is the only group)", tt.user, got, tt.want)
			}
		}
		stdout, stderr, code = run(t, "stop", "-t0", name)
		expect(t, "stop", code, 0, stdout, stderr)
		assertGone(t, name)
	})

	t.Run("oom-score-adj", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			flags []string
			want  string
		}{
			{nil, "0"}, {[]string{"--oom-score-adj", "500"}, "500"}, {[]string{"--oom-score-adj=1000"}, "1000"},
		} {
			args := append(append([]string{}, tt.flags...), "base", "--", "cat", "/proc/self/oom_score_adj")
			stdout, stderr, code := sandbox(t, nameFor(t, tt.want), args...)
			expect(t, "run "+strings.Join(tt.flags, " "), code, 0, stdout, stderr)
			expectLines(t, "oom_score_adj with "+strings.Join(tt.flags, " "), stdout, tt.want)
		}
		// Below 0 needs CAP_SYS_RESOURCE, which these VMs withhold even from
		// root: then it is one line up front, not runc's late failure.
		stdout, stderr, code := sandbox(t, nameFor(t, "neg"), "--oom-score-adj=-100", "base", "--", "cat", "/proc/self/oom_score_adj")
		if hasCapSysResource(t) {
			expect(t, "run --oom-score-adj=-100", code, 0, stdout, stderr)
			expectLines(t, "oom_score_adj with --oom-score-adj=-100", stdout, "-100")
		} else {
			expect(t, "run --oom-score-adj=-100 without CAP_SYS_RESOURCE", code, 125, stdout, stderr)
			if !strings.Contains(stderr, "CAP_SYS_RESOURCE") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("run --oom-score-adj=-100: stderr %q, want one line naming CAP_SYS_RESOURCE", stderr)
			}
		}
		stdout, stderr, code = sandbox(t, nameFor(t, "bad"), "--oom-score-adj", "2000", "base", "--", "echo", "workload-ran")
		expect(t, "run --oom-score-adj 2000", code, 125, stdout, stderr)
		if !strings.Contains(stderr, "--oom-score-adj") || strings.Count(stderr, "\n") != 1 || strings.Contains(stdout, "workload-ran") {
			t.Errorf("run --oom-score-adj 2000: stderr %q, want one line naming --oom-score-adj, and no run", stderr)
		}
	})

	t.Run("missing-names", func(t *testing.T) {
		t.Parallel()
		for _, verb := range []string{"wait", "inspect", "stop", "kill", "rm"} {
			stdout, stderr, code := run(t, verb, "no-such-sandbox")
			expect(t, verb+" no-such-sandbox", code, 125, stdout, stderr)
			if !strings.Contains(stderr, `"no-such-sandbox"`) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%s no-such-sandbox: stderr %q, want one line naming it", verb, stderr)
			}
		}
	})
}

// TestDockerAll drives stop, kill and rm with --all in a namespace of its
// own: they act on every sandbox and print each name.
func TestDockerAll(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	names := []string{nameFor(t, "one"), nameFor(t, "two")}
	for _, n := range names {
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--rm=false", "--name", n, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d "+n, code, 0, stdout, stderr)
	}
	defer run(t, "rm", "-fa")
	stdout, stderr, code := run(t, "stop", "--all", names[0])
	expect(t, "stop --all NAME", code, 125, stdout, stderr)
	stdout, stderr, code = run(t, "stop", "-t0", "--all")
	expect(t, "stop --all", code, 0, stdout, stderr)
	if got := strings.Fields(stdout); len(got) != 2 || !strings.Contains(stdout, names[0]) || !strings.Contains(stdout, names[1]) {
		t.Errorf("stop --all printed %q, want both names", stdout)
	}
	stdout, _, _ = run(t, "ps", "-q")
	expectLines(t, "ps -q after stop --all", stdout)
	stdout, _, _ = run(t, "ps", "-aq")
	if got := strings.Fields(stdout); len(got) != 2 {
		t.Errorf("ps -aq after stop --all = %q, want both stopped sandboxes", stdout)
	}
	stdout, stderr, code = run(t, "rm", "--all")
	expect(t, "rm --all", code, 0, stdout, stderr)
	if got := strings.Fields(stdout); len(got) != 2 {
		t.Errorf("rm --all printed %q, want both names", stdout)
	}
	for _, n := range names {
		assertGone(t, n)
	}
}

// hasCapSysResource reports whether the tests (and so sbxrun and runc) run
// with CAP_SYS_RESOURCE, which lowering oom_score_adj below 0 needs.
func hasCapSysResource(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<24) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
