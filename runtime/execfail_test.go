package runtime

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the watcher's timer goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestExecWatch feeds the watcher what runc's init writes when its execve
// fails after the start, and what workloads write, and checks which exits
// are classified and what reaches the user's streams.
func TestExecWatch(t *testing.T) {
	tests := []struct {
		name           string
		args0          string
		stdout, stderr []string // writes, in order: all stdout first
		code           uint32
		want           int    // ExitCode of finish's error; 0: no error
		wantIn         string // part of the error's text
		wantStderr     string // what reached stderr
	}{
		{name: "exec format error", args0: "/w/script", stderr: []string{"exec /w/script: exec format error\n"}, code: 1,
			want: ExitCannotExec, wantIn: `"/w/script"`},
		{name: "fix is named", args0: "/w/script", stderr: []string{"exec /w/script: exec format error\n"}, code: 1,
			want: ExitCannotExec, wantIn: "add a #! line"},
		{name: "missing interpreter", args0: "/w/script", stderr: []string{"exec /w/script: no such file or directory\n"}, code: 1,
			want: ExitNotFound, wantIn: "interpreter was not found"},
		{name: "permission denied", args0: "/w/script", stderr: []string{"exec /w/script: permission denied\n"}, code: 1,
			want: ExitCannotExec, wantIn: "chmod +x"},
		{name: "other errno", args0: "/w/prog", stderr: []string{"exec /w/prog: text file busy\n"}, code: 1,
			want: ExitCannotExec, wantIn: "text file busy"},
		{name: "found in PATH", args0: "tool", stderr: []string{"exec /usr/local/bin/tool: exec format error\n"}, code: 1,
			want: ExitCannotExec, wantIn: `"/usr/local/bin/tool"`},
		{name: "relative path", args0: "./tool", stderr: []string{"exec ./tool: exec format error\n"}, code: 1,
			want: ExitCannotExec},
		{name: "split writes", args0: "/w/x", stderr: []string{"ex", "ec /w/x: exec fo", "rmat error\n"}, code: 1,
			want: ExitCannotExec},
		{name: "terminal line ending", args0: "/w/x", stderr: []string{"exec /w/x: exec format error\r\n"}, code: 1,
			want: ExitCannotExec},

		{name: "workload exit 1", args0: "/w/x", stderr: []string{"error: bad input\n"}, code: 1,
			wantStderr: "error: bad input\n"},
		{name: "workload exit 1 silent", args0: "/w/x", code: 1},
		{name: "same line, other exit", args0: "/w/x", stderr: []string{"exec /w/x: exec format error\n"}, code: 2,
			wantStderr: "exec /w/x: exec format error\n"},
		{name: "same line, exit 0", args0: "/w/x", stderr: []string{"exec /w/x: exec format error\n"}, code: 0,
			wantStderr: "exec /w/x: exec format error\n"},
		{name: "another program's path", args0: "/w/wrapper", stderr: []string{"exec /w/x: exec format error\n"}, code: 1,
			wantStderr: "exec /w/x: exec format error\n"},
		{name: "other base name", args0: "tool", stderr: []string{"exec /usr/bin/other: exec format error\n"}, code: 1,
			wantStderr: "exec /usr/bin/other: exec format error\n"},
		{name: "with stdout", args0: "/w/x", stdout: []string{"started\n"}, stderr: []string{"exec /w/x: exec format error\n"}, code: 1,
			wantStderr: "exec /w/x: exec format error\n"},
		{name: "two lines", args0: "/w/x", stderr: []string{"exec /w/x: exec format error\n", "more\n"}, code: 1,
			wantStderr: "exec /w/x: exec format error\nmore\n"},
		{name: "not an errno", args0: "/w/x", stderr: []string{"exec /w/x: it broke\n"}, code: 1,
			wantStderr: "exec /w/x: it broke\n"},
		{name: "no newline", args0: "/w/x", stderr: []string{"exec /w/x: exec format error"}, code: 1,
			wantStderr: "exec /w/x: exec format error"},
		{name: "prefix only", args0: "/w/x", stderr: []string{"exe"}, code: 1, wantStderr: "exe"},
		{name: "execution log", args0: "/w/x", stderr: []string{"execution failed\n"}, code: 1,
			wantStderr: "execution failed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut lockedBuffer
			w := newExecWatch()
			so, se := w.stdout(&out), w.stderr(&errOut)
			for _, s := range tt.stdout {
				if n, err := so.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("stdout Write = %d, %v", n, err)
				}
			}
			for _, s := range tt.stderr {
				if n, err := se.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("stderr Write = %d, %v", n, err)
				}
			}
			err := w.finish(tt.code, func() string { return tt.args0 })
			if got := ExitCode(err); got != tt.want {
				t.Fatalf("finish(%d) = %v (exit %d), want exit %d", tt.code, err, got, tt.want)
			}
			if err != nil && (!strings.Contains(err.Error(), tt.wantIn) || strings.Contains(err.Error(), "\n")) {
				t.Errorf("error %q: want one line containing %q", err, tt.wantIn)
			}
			if got := errOut.String(); got != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", got, tt.wantStderr)
			}
			if got, want := out.String(), strings.Join(tt.stdout, ""); got != want {
				t.Errorf("stdout = %q, want %q", got, want)
			}
			// After finish everything passes straight through.
			if _, err := se.Write([]byte("late\n")); err != nil || !strings.HasSuffix(errOut.String(), "late\n") {
				t.Errorf("a write after finish did not pass through: %q, %v", errOut.String(), err)
			}
		})
	}
}

// TestExecWatchPassesOtherOutputAtOnce checks that output that cannot be
// runc's report is never held back.
func TestExecWatchPassesOtherOutputAtOnce(t *testing.T) {
	var out, errOut lockedBuffer
	w := newExecWatch()
	if _, err := w.stderr(&errOut).Write([]byte("warning: x\n")); err != nil {
		t.Fatal(err)
	}
	if got := errOut.String(); got != "warning: x\n" {
		t.Errorf("stderr before exit = %q, want the write passed on", got)
	}
	if _, err := w.stdout(&out).Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "hi\n" {
		t.Errorf("stdout before exit = %q", got)
	}
}

// TestExecWatchHoldExpires checks that a line held back is written when
// the process does not exit in time, and that it is still classified if
// the process then exits 1 without other output.
func TestExecWatchHoldExpires(t *testing.T) {
	var errOut lockedBuffer
	w := newExecWatch()
	w.hold = 10 * time.Millisecond
	line := "exec /w/x: exec format error\n"
	if _, err := w.stderr(&errOut).Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for errOut.String() != line && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := errOut.String(); got != line {
		t.Fatalf("stderr after the hold = %q, want %q", got, line)
	}
	err := w.finish(1, func() string { return "/w/x" })
	if ExitCode(err) != ExitCannotExec {
		t.Errorf("finish(1) = %v, want exit %d", err, ExitCannotExec)
	}
	if got := errOut.String(); got != line {
		t.Errorf("stderr = %q, want the line once", got)
	}
}

// TestCannotExecDetail checks the one line for runc's failures before the
// start, `"NAME": TEXT`.
func TestCannotExecDetail(t *testing.T) {
	tests := []struct {
		detail string
		want   int
		in     []string
	}{
		{`"/bin/notexec": permission denied`, ExitCannotExec, []string{`"/bin/notexec"`, "chmod +x"}},
		{`"/tmp": permission denied`, ExitCannotExec, []string{`"/tmp"`, "not a directory"}},
		{`"/w/x": exec format error`, ExitCannotExec, []string{`"/w/x"`, "#! line"}},
		{`"/w/x": is a directory`, ExitCannotExec, []string{`"/w/x"`, "is a directory"}},
		{`something else`, ExitCannotExec, []string{"cannot execute the command in the sandbox: something else"}},
	}
	for _, tt := range tests {
		t.Run(tt.detail, func(t *testing.T) {
			err := cannotExecDetail(tt.detail)
			if got := ExitCode(err); got != tt.want {
				t.Errorf("exit %d, want %d", got, tt.want)
			}
			for _, s := range tt.in {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q: want it to contain %q", err, s)
				}
			}
		})
	}
}
