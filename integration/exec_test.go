package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDetached starts a sandbox that runs until removed, in dir (mounted
// at /workspace), and removes it when t ends.
func startDetached(t *testing.T, dir string) string {
	t.Helper()
	name := nameFor(t)
	stdout, stderr, code := runWith(t, opts{dir: dir}, "run", "--pull", "never", "-d", "--name", name, "base", "--", "sh", "-c", loopScript)
	if code != 0 {
		t.Fatalf("sbxrun run -d: exit %d\nstdout: %q\nstderr: %q", code, stdout, stderr)
	}
	t.Cleanup(func() {
		if stdout, stderr, code := run(t, "rm", "-f", name); code != 0 {
			t.Errorf("sbxrun rm -f %s: exit %d\nstdout: %q\nstderr: %q", name, code, stdout, stderr)
		}
		assertGone(t, name)
	})
	return name
}

// TestExecUserNames checks that exec -u takes names as Docker does,
// resolved in the running sandbox's own /etc/passwd and /etc/group (users
// added inside it count, the host's do not), and that run -u agrees.
func TestExecUserNames(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := startDetached(t, t.TempDir())
	// A user and a group that exist only inside this running sandbox.
	stdout, stderr, code := run(t, "exec", name, "--", "sh", "-c",
		"echo alice:x:2000:2000::/home/alice:/bin/sh >> /etc/passwd && echo team:x:3000:alice >> /etc/group")
	expect(t, "adding a user in the sandbox", code, 0, stdout, stderr)

	t.Run("exec", func(t *testing.T) {
		tests := []struct {
			user, want string
		}{
			{"dev", "uid=1000(dev) gid=1000(dev) groups=1000(dev)"},
			{"dev:dev", "uid=1000(dev) gid=1000(dev) groups=1000(dev)"},
			{"root", "uid=0(root) gid=0(root) groups=0(root)"},
			{"1000:dev", "uid=1000(dev) gid=1000(dev) groups=1000(dev)"},
			{"1000", "uid=1000(dev) gid=1000(dev) groups=1000(dev)"},
			{"0:dev", "uid=0(root) gid=1000(dev) groups=1000(dev)"},
			// Unknown ids run as given, without the main process's groups.
			{"4242:4242", "uid=4242 gid=4242 groups=4242"},
			{"alice", "uid=2000(alice) gid=2000 groups=2000,3000(team)"},
			{"alice:team", "uid=2000(alice) gid=3000(team) groups=3000(team)"},
		}
		for _, tt := range tests {
			t.Run(tt.user, func(t *testing.T) {
				t.Parallel()
				stdout, stderr, code := run(t, "exec", "-u", tt.user, name, "--", "id")
				expect(t, "sbxrun exec -u "+tt.user, code, 0, stdout, stderr)
				if strings.TrimSpace(stdout) != tt.want {
					t.Errorf("exec -u %s: id = %q, want %q", tt.user, strings.TrimSpace(stdout), tt.want)
				}
			})
		}
	})

	t.Run("exec unknown", func(t *testing.T) {
		tests := []struct {
			user, want string
		}{
			{"nosuch", `exec -u nosuch: no user "nosuch" in the sandbox's /etc/passwd: use a numeric UID[:GID] or a name listed there`},
			{"nosuch:dev", `exec -u nosuch:dev: no user "nosuch" in the sandbox's /etc/passwd`},
			{"dev:nosuch", `exec -u dev:nosuch: no group "nosuch" in the sandbox's /etc/group: use a numeric GID or a name listed there`},
			// A user of the host (Debian has daemon) is not one of the
			// sandbox's.
			{"daemon", `exec -u daemon: no user "daemon" in the sandbox's /etc/passwd`},
			{"a:b:c", `exec -u a:b:c: invalid user "a:b:c"`},
		}
		for _, tt := range tests {
			t.Run(tt.user, func(t *testing.T) {
				t.Parallel()
				stdout, stderr, code := run(t, "exec", "-u", tt.user, name, "--", "id")
				expect(t, "sbxrun exec -u "+tt.user, code, 125, stdout, stderr)
				if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "sbxrun: "+tt.want) {
					t.Errorf("exec -u %s: stdout %q, stderr %q; want nothing on stdout and one line starting %q", tt.user, stdout, stderr, "sbxrun: "+tt.want)
				}
			})
		}
	})

	t.Run("run", func(t *testing.T) {
		tests := []struct {
			user string
			code int
			want string // stdout, or the start of the one stderr line
		}{
			{"dev:dev", 0, "uid=1000(dev) gid=1000(dev) groups=1000(dev)\n"},
			{"1000:dev", 0, "uid=1000(dev) gid=1000(dev) groups=1000(dev)\n"},
			{"root", 0, "uid=0(root) gid=0(root) groups=0(root)\n"},
			{"nosuch", 125, `sbxrun: no user "nosuch" in the image's /etc/passwd: use a numeric UID[:GID] or a name listed there`},
			{"dev:nosuch", 125, `sbxrun: no group "nosuch" in the image's /etc/group: use a numeric GID or a name listed there`},
		}
		for _, tt := range tests {
			t.Run(tt.user, func(t *testing.T) {
				t.Parallel()
				stdout, stderr, code := sandbox(t, nameFor(t), "-u", tt.user, "base", "--", "id")
				expect(t, "sbxrun run -u "+tt.user, code, tt.code, stdout, stderr)
				if tt.code == 0 && stdout != tt.want {
					t.Errorf("run -u %s: id = %q, want %q", tt.user, stdout, tt.want)
				}
				if tt.code != 0 && (stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, tt.want)) {
					t.Errorf("run -u %s: stdout %q, stderr %q; want one line starting %q", tt.user, stdout, stderr, tt.want)
				}
			})
		}
	})
}

// notExecutable are files a command can name that exist but cannot be
// executed, with how sbxrun reports them.
var notExecutable = []struct {
	file, content string
	mode          os.FileMode
	code          int
	want          []string // parts of the one stderr line
}{
	{"noshebang", "echo hi\n", 0o755, 126, []string{"exec format error", "add a #! line"}},
	// The start of an ELF executable for 64-bit ARM (or x86-64 on ARM).
	{"foreign", foreignELF(), 0o755, 126, []string{"exec format error", "use a build for linux/"}},
	{"badinterp", "#!/no/such/interpreter\necho hi\n", 0o755, 127, []string{"interpreter was not found", "fix the #! line"}},
	{"notexec", "#!/bin/sh\necho hi\n", 0o644, 126, []string{"permission denied", "chmod +x"}},
}

// foreignELF is an ELF header for a machine that is not this one.
func foreignELF() string {
	machine := "\xb7\x00" // EM_AARCH64
	if runtime.GOARCH == "arm64" {
		machine = "\x3e\x00" // EM_X86_64
	}
	return "\x7fELF\x02\x01\x01" + strings.Repeat("\x00", 9) + "\x02\x00" + machine + strings.Repeat("\x00", 200)
}

// writeNotExecutable writes the notExecutable files into a new directory.
func writeNotExecutable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range notExecutable {
		if err := os.WriteFile(filepath.Join(dir, f.file), []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, f.file), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkCannotExec checks the outcome of running a notExecutable file:
// its exit status and sbxrun's one line naming the file and the fix, with
// runc's own report held back.
func checkCannotExec(t *testing.T, what, path string, code, wantCode int, stdout, stderr string, want []string) {
	t.Helper()
	expect(t, what, code, wantCode, stdout, stderr)
	want = append([]string{`sbxrun: cannot execute "` + path + `" in the sandbox: `}, want...)
	if stdout != "" || strings.Count(stderr, "\n") != 1 {
		t.Errorf("%s: stdout %q, stderr %q; want only one line on stderr", what, stdout, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr %q; want it to contain %q", what, stderr, w)
		}
	}
}

// TestCannotExecute checks that a command that exists but cannot be
// executed exits 126 (127 when its interpreter is missing) for run and
// exec, including the failures runc reports only after the start, and
// that a workload that ran and exited 1 keeps its status and output.
func TestCannotExecute(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	dir := writeNotExecutable(t)
	name := startDetached(t, dir)

	for _, f := range notExecutable {
		t.Run("run "+f.file, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := sandboxWith(t, opts{dir: dir}, nameFor(t), "base", "--", "/workspace/"+f.file)
			checkCannotExec(t, "sbxrun run /workspace/"+f.file, "/workspace/"+f.file, code, f.code, stdout, stderr, f.want)
		})
		t.Run("exec "+f.file, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := run(t, "exec", name, "--", "/workspace/"+f.file)
			checkCannotExec(t, "sbxrun exec /workspace/"+f.file, "/workspace/"+f.file, code, f.code, stdout, stderr, f.want)
		})
	}

	t.Run("run found in PATH", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := sandboxWith(t, opts{dir: dir}, nameFor(t), "-e", "PATH=/workspace:/bin", "base", "--", "noshebang")
		checkCannotExec(t, "sbxrun run noshebang", "/workspace/noshebang", code, 126, stdout, stderr, notExecutable[0].want)
	})
	t.Run("exec found in PATH", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := run(t, "exec", "-e", "PATH=/workspace:/bin", name, "--", "noshebang")
		checkCannotExec(t, "sbxrun exec noshebang", "/workspace/noshebang", code, 126, stdout, stderr, notExecutable[0].want)
	})

	// Workloads that ran and exited 1 are not classified, even one that
	// prints a line like runc's about another file.
	workloads := []struct {
		name, script, stderr string
	}{
		{"silent", "exit 1", ""},
		{"message", "echo failed >&2; exit 1", "failed\n"},
		{"runc-like line", "echo 'exec /workspace/noshebang: exec format error' >&2; exit 1", "exec /workspace/noshebang: exec format error\n"},
	}
	for _, w := range workloads {
		t.Run("run exit 1 "+w.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := sandboxWith(t, opts{dir: dir}, nameFor(t), "base", "--", "sh", "-c", w.script)
			expect(t, "sbxrun run sh -c "+w.script, code, 1, stdout, stderr)
			if stderr != w.stderr {
				t.Errorf("stderr %q, want the workload's %q", stderr, w.stderr)
			}
		})
		t.Run("exec exit 1 "+w.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := run(t, "exec", name, "--", "sh", "-c", w.script)
			expect(t, "sbxrun exec sh -c "+w.script, code, 1, stdout, stderr)
			if stderr != w.stderr {
				t.Errorf("stderr %q, want the workload's %q", stderr, w.stderr)
			}
		})
	}

	// With -t runc's report arrives on the terminal.
	t.Run("run terminal", func(t *testing.T) {
		t.Parallel()
		runName := nameFor(t)
		p, out := startTTY(t, "run", "--pull", "never", "--name", runName, "-t", "-v", dir+":/x", "base", "--", "/x/noshebang")
		code := p.wait(t, 60*time.Second)
		checkTTYCannotExec(t, "sbxrun run -t /x/noshebang", "/x/noshebang", code, out)
		assertGone(t, runName)
	})
	t.Run("exec terminal", func(t *testing.T) {
		t.Parallel()
		p, out := startTTY(t, "exec", "-t", name, "--", "/workspace/noshebang")
		code := p.wait(t, 60*time.Second)
		checkTTYCannotExec(t, "sbxrun exec -t /workspace/noshebang", "/workspace/noshebang", code, out)
	})
}

// checkTTYCannotExec checks the exit status and the terminal's output of
// running noshebang with -t.
func checkTTYCannotExec(t *testing.T, what, path string, code int, pty *ptyOut) {
	t.Helper()
	line := `sbxrun: cannot execute "` + path + `" in the sandbox: exec format error`
	// The terminal's output may still be on its way.
	waitFor(5*time.Second, func() bool { return strings.Contains(pty.String(), line) })
	out := pty.String()
	expect(t, what, code, 126, out, "")
	if !strings.Contains(out, line) {
		t.Errorf("%s: terminal output %q; want sbxrun's line naming %s", what, out, path)
	}
	if strings.Contains(out, "exec "+path+":") {
		t.Errorf("%s: terminal output %q; want runc's own report held back", what, out)
	}
}

// TestExecStoppedSandbox: exec into a sandbox whose workload has exited
// says so in one line, with or without -u.
func TestExecStoppedSandbox(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	if out, stderr, code := run(t, "run", "-d", "--rm=false", "--pull", "never", "--name", name, "base", "--", "true"); code != 0 {
		t.Fatalf("run -d: exit %d\n%s%s", code, out, stderr)
	}
	defer func() { _, _, _ = run(t, "rm", "-f", name) }()
	if !waitFor(20*time.Second, func() bool { e, ok := psFind(t, name); return ok && e.Status == "stopped" }) {
		t.Fatalf("%s did not exit", name)
	}
	for _, args := range [][]string{{"exec", name, "--", "id"}, {"exec", "-u", "dev", name, "--", "id"}, {"exec", "-u", "1000:1000", name, "--", "id"}} {
		stdout, stderr, code := run(t, args...)
		if code != 125 || !strings.Contains(stderr, "is not running") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v on a stopped sandbox: exit %d, stdout %q, stderr %q; want 125 and one line saying it is not running", args, code, stdout, stderr)
		}
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
