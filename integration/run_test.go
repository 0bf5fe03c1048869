package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TestExitCodes checks that sbxrun exits with the workload's status, 126
// for a command that cannot be executed, 127 for one that is not found and
// 128+N for a workload killed by signal N.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name string
		cmd  []string
		want int
	}{
		{"true", []string{"true"}, 0},
		{"exit-3", []string{"sh", "-c", "exit 3"}, 3},
		{"exit-255", []string{"sh", "-c", "exit 255"}, 255},
		{"not-executable", []string{"/bin/notexec"}, 126},
		{"directory", []string{"/tmp"}, 126},
		{"not-found", []string{"no-such-command-sbxrun"}, 127},
		{"not-found-path", []string{"/no/such/file"}, 127},
		// The workload is PID 1 of its PID namespace, so the kernel drops
		// signals it does not handle; a child killed by SIGTERM shows the
		// status the shell passes on.
		{"child-sigterm", []string{"sh", "-c", `sh -c 'kill -TERM $$'; exit $?`}, 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := sandbox(t, nameFor(t), append([]string{"base", "--"}, tt.cmd...)...)
			expect(t, strings.Join(tt.cmd, " "), code, tt.want, stdout, stderr)
		})
	}
}

// TestExitCodeKilledFromOutside kills a foreground sandbox with
// "sbxrun kill": the run exits 128+9 and leaves nothing behind.
func TestExitCodeKilledFromOutside(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name   string
		signal string
		script string
		want   int
	}{
		{"sigkill", "KILL", "echo ready; while :; do sleep 0.1; done", 137},
		{"sigterm-trapped", "TERM", `trap 'exit 143' TERM; echo ready; while :; do sleep 0.1; done`, 143},
		{"sigusr1-trapped", "SIGUSR1", `trap 'exit 7' USR1; echo ready; while :; do sleep 0.1; done`, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			p := start(t, opts{}, "run", "--pull", "never", "--name", name, "base", "--", "sh", "-c", tt.script)
			waitOutput(t, p, p.stdout, "ready", 30*time.Second)
			stdout, stderr, code := run(t, "kill", "-s", tt.signal, name)
			expect(t, "sbxrun kill -s "+tt.signal, code, 0, stdout, stderr)
			got := p.wait(t, 30*time.Second)
			expect(t, "sbxrun run after kill -s "+tt.signal, got, tt.want, p.stdout.String(), p.stderr.String())
			assertGone(t, name)
		})
	}
}

// TestExitCode125 checks that every failure before the workload runs exits
// 125 with one line on stderr and creates nothing.
func TestExitCode125(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("profiles:\n  base:\n    no_such_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		// stderr must contain each of these (case-insensitive).
		want []string
	}{
		{"bad-flag", []string{"run", "--no-such-flag", "base", "--", "echo", "workload-ran"}, []string{"no-such-flag"}},
		{"bad-flag-after-profile", []string{"run", "base", "--no-such-flag", "--", "echo", "workload-ran"}, []string{"no-such-flag"}},
		{"bad-memory", []string{"run", "--memory", "12q", "base", "--", "echo", "workload-ran"}, []string{"12q"}},
		{"bad-memory-shorthand", []string{"base", "-m", "lots", "--", "echo", "workload-ran"}, []string{"lots"}},
		{"bad-cpus", []string{"run", "--cpus", "many", "base", "--", "echo", "workload-ran"}, []string{"many"}},
		{"bad-net", []string{"run", "--net", "bridge-of-doom", "base", "--", "echo", "workload-ran"}, []string{"bridge-of-doom"}},
		{"bad-pull", []string{"run", "--pull", "sometimes", "base", "--", "echo", "workload-ran"}, []string{"sometimes"}},
		{"missing-image", []string{"run", "--pull", "never", "localhost/sbxrun-test/no-such-image:1", "--", "echo", "workload-ran"}, []string{"localhost/sbxrun-test/no-such-image:1"}},
		{"unreachable-address", []string{"--address", "/nonexistent/sbxrun-test.sock", "run", "--pull", "never", "base", "--", "echo", "workload-ran"}, []string{"/nonexistent/sbxrun-test.sock"}},
		{"missing-bind-source", []string{"run", "--pull", "never", "-v", "/nonexistent/sbxrun-src:/data", "base", "--", "echo", "workload-ran"}, []string{"/nonexistent/sbxrun-src"}},
		{"relative-destination", []string{"run", "--pull", "never", "-v", "/tmp:data", "base", "--", "echo", "workload-ran"}, []string{"data"}},
		{"proc-destination", []string{"run", "--pull", "never", "-v", "/tmp:/proc", "base", "--", "echo", "workload-ran"}, []string{"/proc"}},
		{"host-root", []string{"run", "--pull", "never", "-v", "/:/host", "base", "--", "echo", "workload-ran"}, []string{"--allow-unsafe-mounts"}},
		{"containerd-socket", []string{"run", "--pull", "never", "-v", harness.address + ":/run/containerd.sock", "base", "--", "echo", "workload-ran"}, []string{"--allow-unsafe-mounts"}},
		{"workdir-proc", []string{"run", "--pull", "never", "-w", "/proc/self", "base", "--", "echo", "workload-ran"}, []string{"/proc"}},
		{"bad-config", []string{"--config", badConfig, "run", "--pull", "never", "base", "--", "echo", "workload-ran"}, []string{badConfig, "no_such_key"}},
		{"missing-config", []string{"--config", "/nonexistent/sbxrun.yaml", "run", "--pull", "never", "base", "--", "echo", "workload-ran"}, []string{"/nonexistent/sbxrun.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			// --name goes first so that it is parsed even when a later
			// flag is bad; global flags must precede the command.
			args := tt.args
			for i, a := range args {
				if a == "run" {
					args = append(append(append([]string{}, args[:i+1]...), "--name", name), args[i+1:]...)
					break
				}
				if a == "base" {
					args = append([]string{"base", "--name", name}, args[i+1:]...)
					break
				}
			}
			stdout, stderr, code := run(t, args...)
			expect(t, strings.Join(tt.args, " "), code, 125, stdout, stderr)
			msg := strings.TrimSpace(stderr)
			if msg == "" {
				t.Errorf("%s: nothing on stderr", strings.Join(tt.args, " "))
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
					t.Errorf("%s: stderr %q does not mention %q", strings.Join(tt.args, " "), msg, w)
				}
			}
			if strings.Contains(stdout, "workload-ran") {
				t.Errorf("the workload ran: %q", stdout)
			}
			if tt.name != "unreachable-address" {
				assertGone(t, name)
			}
		})
	}
}

// TestOOM runs a workload that allocates far beyond its memory limit: the
// run exits 137 and prints one line saying it was OOM-killed at 32m.
func TestOOM(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	// dd allocates a 256 MiB buffer and fills it from /dev/zero.
	stdout, stderr, code := sandbox(t, name, "--memory", "32m", "base", "--",
		"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	expect(t, "dd bs=256M under --memory 32m", code, 137, stdout, stderr)
	var oomLines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "OOM") {
			oomLines = append(oomLines, l)
		}
	}
	if len(oomLines) != 1 {
		t.Fatalf("want exactly one stderr line mentioning OOM, got %d; stderr: %q", len(oomLines), stderr)
	}
	if !strings.Contains(oomLines[0], "32") {
		t.Errorf("OOM line %q does not name the 32m limit", oomLines[0])
	}
}

// TestStdin pipes input to the workload with -i; without -i the workload
// reads end-of-file at once.
func TestStdin(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name  string
		flags []string
		input string
		cmd   []string
		want  string
	}{
		{"cat", []string{"-i"}, "hello from the host\n", []string{"cat"}, "hello from the host\n"},
		{"wc", []string{"-i"}, "a\nb\nc\n", []string{"wc", "-l"}, "3\n"},
		{"large", []string{"--interactive"}, strings.Repeat("0123456789abcdef", 1<<16), []string{"wc", "-c"}, "1048576\n"},
		{"no-i", nil, "ignored\n", []string{"sh", "-c", "cat; echo eof"}, "eof\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(append(append([]string{}, tt.flags...), "base", "--"), tt.cmd...)
			stdout, stderr, code := sandboxWith(t, opts{stdin: strings.NewReader(tt.input)}, nameFor(t), args...)
			expect(t, strings.Join(args, " "), code, 0, stdout, stderr)
			if strings.TrimSpace(stdout) != strings.TrimSpace(tt.want) {
				t.Errorf("stdout %q, want %q", stdout, tt.want)
			}
		})
	}
}

// TestStdoutStderr checks that the workload's stdout and stderr stay apart.
func TestStdoutStderr(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	stdout, stderr, code := sandbox(t, nameFor(t), "base", "--", "sh", "-c", "echo to-out; echo to-err >&2")
	expect(t, "echo to both", code, 0, stdout, stderr)
	if stdout != "to-out\n" {
		t.Errorf("stdout %q, want %q", stdout, "to-out\n")
	}
	if !strings.Contains(stderr, "to-err") || strings.Contains(stderr, "to-out") {
		t.Errorf("stderr %q, want it to hold to-err only", stderr)
	}
}

// trapScript prints "ready", then exits 42 on SIGTERM and 43 on SIGINT.
const trapScript = `trap 'echo got-TERM; exit 42' TERM; trap 'echo got-INT; exit 43' INT; echo ready; while :; do sleep 0.1; done`

// TestSignalForwarding sends SIGINT and SIGTERM to the sbxrun process and
// checks that the workload receives them, with and without a TTY.
func TestSignalForwarding(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name   string
		tty    bool
		signal syscall.Signal
		want   int
		output string
	}{
		// Repeated: a signal that arrives right after the workload starts
		// must be forwarded too.
		{"sigterm", false, syscall.SIGTERM, 42, "got-TERM"},
		{"sigterm-2", false, syscall.SIGTERM, 42, "got-TERM"},
		{"sigterm-3", false, syscall.SIGTERM, 42, "got-TERM"},
		{"sigint", false, syscall.SIGINT, 43, "got-INT"},
		{"sigint-2", false, syscall.SIGINT, 43, "got-INT"},
		{"sigint-3", false, syscall.SIGINT, 43, "got-INT"},
		{"sigterm-tty", true, syscall.SIGTERM, 42, "got-TERM"},
		{"sigint-tty", true, syscall.SIGINT, 43, "got-INT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			args := []string{"run", "--pull", "never", "--name", name}
			var p *proc
			var out interface{ String() string }
			if tt.tty {
				args = append(args, "-t", "-i", "base", "--", "sh", "-c", trapScript)
				var pty *ptyOut
				p, pty = startTTY(t, args...)
				out = pty
			} else {
				args = append(args, "base", "--", "sh", "-c", trapScript)
				p = start(t, opts{}, args...)
				out = p.stdout
			}
			waitOutput(t, p, out, "ready", 30*time.Second)
			if err := p.cmd.Process.Signal(tt.signal); err != nil {
				t.Fatalf("signalling sbxrun: %v", err)
			}
			code := p.wait(t, 30*time.Second)
			expect(t, "sbxrun after "+tt.signal.String(), code, tt.want, out.String(), p.stderr.String())
			if !strings.Contains(out.String(), tt.output) {
				t.Errorf("workload output %q does not contain %q: the signal was not forwarded", out.String(), tt.output)
			}
			assertGone(t, name)
		})
	}
}

// TestTTY checks that sbxrun gives the workload a terminal when its own
// stdin and stdout are terminals, with the host terminal's size, and none
// when they are pipes.
func TestTTY(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	script := `if test -t 0 && test -t 1; then echo tty-yes; stty size; else echo tty-no; fi`

	t.Run("auto", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		p, out := startTTY(t, "run", "--pull", "never", "--name", name, "base", "--", "sh", "-c", script)
		code := p.wait(t, 30*time.Second)
		expect(t, "sbxrun run under a terminal", code, 0, out.String(), p.stderr.String())
		waitFor(2*time.Second, func() bool { return strings.Contains(out.String(), "30 100") })
		if !strings.Contains(out.String(), "tty-yes") {
			t.Errorf("the workload has no terminal though sbxrun runs on one: %q", out.String())
		}
		if !strings.Contains(out.String(), "30 100") {
			t.Errorf("stty size in the sandbox: want \"30 100\" (the host terminal's size) in %q", out.String())
		}
		assertGone(t, name)
	})
	t.Run("pipes", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := sandbox(t, nameFor(t), "base", "--", "sh", "-c", script)
		expect(t, "sbxrun run on pipes", code, 0, stdout, stderr)
		if strings.TrimSpace(stdout) != "tty-no" {
			t.Errorf("stdout %q, want tty-no", stdout)
		}
	})
	t.Run("resize", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		p, out := startTTY(t, "run", "--pull", "never", "--name", name, "-t", "-i", "base", "--", "sh", "-c",
			`echo ready; while read x; do stty size; [ "$x" = q ] && exit 0; done`)
		waitOutput(t, p, out, "ready", 30*time.Second)
		// Resizing the terminal sends SIGWINCH to sbxrun, which resizes
		// the sandbox's terminal.
		if err := out.master.Resize(console.WinSize{Height: 40, Width: 120}); err != nil {
			t.Fatal(err)
		}
		waitFor(10*time.Second, func() bool {
			_, _ = out.master.Write([]byte("x\r"))
			time.Sleep(100 * time.Millisecond)
			return strings.Contains(out.String(), "40 120")
		})
		_, _ = out.master.Write([]byte("q\r"))
		code := p.wait(t, 30*time.Second)
		expect(t, "resize", code, 0, out.String(), p.stderr.String())
		if !strings.Contains(out.String(), "40 120") {
			t.Errorf("after resizing the terminal to 40x120 the sandbox still sees %q", out.String())
		}
		assertGone(t, name)
	})
	t.Run("exit-code", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		p, out := startTTY(t, "run", "--pull", "never", "--name", name, "-t", "-i", "base", "--", "sh", "-c", "exit 5")
		code := p.wait(t, 30*time.Second)
		expect(t, "sh -c 'exit 5' with -t", code, 5, out.String(), p.stderr.String())
		assertGone(t, name)
	})
}

// ptyOut collects what the workload writes to the terminal.
type ptyOut struct {
	syncBuffer
	// master is the terminal's master side, to resize it or type.
	master console.Console
}

// startTTY starts sbxrun with a new pseudo-terminal (30 rows, 100 columns)
// as its controlling terminal, stdin, stdout and stderr.
func startTTY(t *testing.T, args ...string) (*proc, *ptyOut) {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatalf("opening a pty: %v", err)
	}
	if err := master.Resize(console.WinSize{Height: 30, Width: 100}); err != nil {
		t.Fatalf("sizing the pty: %v", err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("opening %q: %v", slavePath, err)
	}
	out := &ptyOut{master: master}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				_, _ = out.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	cmd := sbxrunCmd(t, opts{}, args...)
	cmd.Stdin, cmd.Stdout = slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p := &proc{cmd: cmd, stdout: &out.syncBuffer, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = slave
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sbxrun: %v", err)
	}
	slave.Close()
	go func() {
		err := cmd.Wait()
		p.code = exitCode(err, cmd)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		// Reads on the master fail with EIO once the slave is closed;
		// give the reader a moment to drain, then close.
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
		master.Close()
	})
	return p, out
}

// TestShorthand checks "sbxrun PROFILE|IMAGE [flags] [-- CMD]", with run
// flags before and after the profile.
func TestShorthand(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name string
		// args get "--name NAME" inserted after the profile.
		before, after []string
		want          string
	}{
		{"flags-after", nil, []string{"--pull", "never", "-e", "X=after", "--", "sh", "-c", "echo $X"}, "after\n"},
		{"global-first", []string{"--debug"}, []string{"--pull=never", "-w", "/tmp", "--", "pwd"}, "/tmp\n"},
		{"no-dashes", nil, []string{"--pull", "never", "-i"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			args := append(append(append([]string{}, tt.before...), "base", "--name", name), tt.after...)
			stdout, stderr, code := run(t, args...)
			assertGone(t, name)
			expect(t, "sbxrun "+strings.Join(args, " "), code, 0, stdout, stderr)
			if stdout != tt.want {
				t.Errorf("stdout %q, want %q", stdout, tt.want)
			}
		})
	}
}

// TestBrokenPipe: `sbxrun ... | head -1` must end, with the shell's 141,
// and leave nothing behind, although the workload never stops writing.
func TestBrokenPipe(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	endsOnBrokenPipe(t, sbxrunCmd(t, opts{}, "run", "--pull", "never", "--name", name, "base", "--", "yes"))
	assertGone(t, name)
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
