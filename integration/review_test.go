package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBrokenPipe: `sbxrun ... | head -1` must end, with the shell's 141,
// and leave nothing behind, although the workload never stops writing.
func TestBrokenPipe(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	endsOnBrokenPipe(t, sbxrunCmd(t, opts{}, "run", "--pull", "never", "--name", name, "base", "--", "yes"))
	assertGone(t, name)
}

// endsOnBrokenPipe starts cmd, whose command writes "y" lines forever,
// reads one line and closes the pipe, as `| head -1` does: cmd must end
// with 141 (128+SIGPIPE).
func endsOnBrokenPipe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "y\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	out.Close() // what head does after one line
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err, cmd); code != 141 {
			t.Errorf("%v: exit %d after the reader went away, want 141 (128+SIGPIPE)", cmd.Args[1:], code)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v kept running after its stdout reader went away", cmd.Args[1:])
	}
}

// TestExecSignal: killing `sbxrun exec` ends the process it started in the
// sandbox.
func TestExecSignal(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	if out, stderr, code := run(t, "run", "-d", "--pull", "never", "--name", name, "base", "--", "sleep", "300"); code != 0 {
		t.Fatalf("run -d: exit %d\n%s%s", code, out, stderr)
	}
	defer func() { _, _, _ = run(t, "rm", "-f", name) }()
	cmd := sbxrunCmd(t, opts{}, "exec", name, "--", "sh", "-c", "trap 'echo got-term; exit 9' TERM; echo up; while :; do sleep 0.1; done")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "up\n" {
		t.Fatalf("exec's first line %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := r.ReadString('\n')
	err = cmd.Wait()
	if code := exitCode(err, cmd); code != 9 || rest != "got-term\n" {
		t.Errorf("exec after SIGTERM: exit %d, output %q; want the process to get TERM and exit 9", code, rest)
	}
	ps, _, _ := run(t, "exec", name, "--", "ps")
	if strings.Contains(ps, "trap") {
		t.Errorf("the exec'd process is still running in the sandbox:\n%s", ps)
	}
}

// TestRefusedBeforeAnything: input refused up front creates nothing: no
// container, no cache directory, no warning first.
func TestRefusedBeforeAnything(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	home := t.TempDir()
	dir := t.TempDir()
	tests := []struct {
		name, want string
		args       []string
		setup      func()
	}{
		{name: "tty without a terminal", want: "-t needs a terminal", args: []string{"-t", "base", "--", "true"}},
		{name: "bad memory on model-dev", want: "below the minimum", args: []string{"--memory", "1k", "model-dev", "--", "true"}},
		{name: "host proc", want: "exposes the host's /proc", args: []string{"-v", "/proc:/hp", "base", "--", "true"}},
		{name: "privileged from the project file", want: "privileged: true is not allowed from an untrusted project file", args: []string{"base", "--", "true"},
			setup: func() {
				if err := os.WriteFile(filepath.Join(dir, "sbxrun.yaml"), []byte("profiles:\n  base:\n    privileged: true\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
				defer os.Remove(filepath.Join(dir, "sbxrun.yaml"))
			}
			name := nameFor(t)
			args := append([]string{"run", "--pull", "never", "--name", name}, tt.args...)
			out, stderr, code := runWith(t, opts{dir: dir, env: []string{"HOME=" + home}}, args...)
			if code != 125 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 125 and one line containing %q", code, out, stderr, tt.want)
			}
			assertGone(t, name)
		})
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("refused runs created %q in HOME", names)
	}
}

// TestExecBrokenPipe: `sbxrun exec ... | head -1` ends too, with 141, and
// the command it started in the sandbox is gone.
func TestExecBrokenPipe(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	if out, stderr, code := run(t, "run", "-d", "--pull", "never", "--name", name, "base", "--", "sleep", "300"); code != 0 {
		t.Fatalf("run -d: exit %d\n%s%s", code, out, stderr)
	}
	defer func() { _, _, _ = run(t, "rm", "-f", name) }()
	endsOnBrokenPipe(t, sbxrunCmd(t, opts{}, "exec", name, "--", "yes"))
	// Only the sandbox's own sleep is left running in it.
	ps, stderr, code := run(t, "exec", name, "--", "ps", "-o", "comm")
	if code != 0 || strings.Contains(ps, "yes") {
		t.Errorf("processes in the sandbox after the broken pipe (exit %d):\n%s%s", code, ps, stderr)
	}
}
