package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// Some exec failures reach sbxrun only after the workload's process was
// started. runc (1.1) checks before the start that the command exists and
// may be executed, but the final execve can still fail: a file with execute
// permission that is neither a binary for this machine nor a script with a
// #! line (ENOEXEC), a #! interpreter or dynamic loader that does not exist
// (ENOENT). runc's init process then writes one line to the workload's own
// stderr (its terminal with -t), "exec NAME: ERRNO TEXT", with NAME the
// command as resolved in PATH, and exits 1, and nothing else is written.
//
// execWatch recognises exactly that: exit status 1, and the whole output of
// the process on both streams is that single line naming the command that
// was run. A workload that ran and exited 1 cannot look like it unless it
// printed only that line about its own path. While the output could still be
// that line, it is held back (at most initReportHold, and only within initReportWindow of the
// process's creation), so a recognised
// failure is reported as sbxrun's one line instead of runc's.
type execWatch struct {
	mu    sync.Mutex
	other atomic.Bool // output other than one candidate line was written
	seen  []byte      // the candidate line so far, held or written
	held  []byte      // the part of seen not yet written
	to    io.Writer   // where held goes
	timer *time.Timer
	hold  time.Duration
	since time.Time // when the process was being created
}

// initReportHold is how long a possible runc report is held back waiting for
// the process to exit. runc's init exits right after writing it, within
// milliseconds; the hold only bounds what a workload that merely prints such
// a line sees (its line comes this much later).
const initReportHold = 500 * time.Millisecond

// initReportWindow is how soon after the process is created its output can
// still be runc's report (the task's creation, hooks included, and the
// start come first). Later output is the workload's own and is never held.
const initReportWindow = 2 * time.Second

// maxInitReport bounds the held line: a path and an errno text.
const maxInitReport = 4096

func newExecWatch() *execWatch { return &execWatch{hold: initReportHold, since: time.Now()} }

// stdout wraps w, the process's stdout: anything written there means the
// process produced output of its own.
func (e *execWatch) stdout(w io.Writer) io.Writer { return &watchWriter{e: e, w: w} }

// stderr wraps w, the process's stderr (or its terminal, which carries
// both streams), where runc's report appears.
func (e *execWatch) stderr(w io.Writer) io.Writer { return &watchWriter{e: e, w: w, report: true} }

type watchWriter struct {
	e      *execWatch
	w      io.Writer
	report bool
}

func (ww *watchWriter) Write(p []byte) (int, error) {
	e := ww.e
	if e.other.Load() {
		return ww.w.Write(p)
	}
	e.mu.Lock()
	if !e.other.Load() && ww.report && len(e.seen)+len(p) <= maxInitReport && time.Since(e.since) < initReportWindow && maybeReport(append(e.seen[:len(e.seen):len(e.seen)], p...)) {
		e.seen = append(e.seen, p...)
		if e.timer != nil && e.held == nil && e.to == nil {
			// Held once already and written out on time: pass on.
			e.mu.Unlock()
			return ww.w.Write(p)
		}
		e.held = append(e.held, p...)
		e.to = ww.w
		if e.timer == nil {
			e.timer = time.AfterFunc(e.hold, e.release)
		}
		e.mu.Unlock()
		return len(p), nil
	}
	e.flushLocked()
	e.other.Store(true)
	e.mu.Unlock()
	return ww.w.Write(p)
}

// release writes what is held when the process did not exit in time.
func (e *execWatch) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked()
}

func (e *execWatch) flushLocked() {
	if e.held != nil && e.to != nil {
		_, _ = e.to.Write(e.held)
	}
	e.held, e.to = nil, nil
}

// finish is called once the process exited with code and its output was
// copied. It returns the failure to report when the process was runc's init
// failing to execute the command (args0, called only then, is the command
// as given), and nil otherwise, after writing out anything still held.
func (e *execWatch) finish(code uint32, args0 func() string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
	if code == 1 && !e.other.Load() && len(e.seen) > 0 {
		if name, errno, ok := parseInitReport(string(e.seen)); ok && sameCommand(name, args0()) {
			e.held, e.to = nil, nil
			e.other.Store(true)
			return cannotExec(name, errno)
		}
	}
	e.flushLocked()
	e.other.Store(true)
	return nil
}

// maybeReport reports whether b is, or may still become, one line
// "exec NAME: TEXT" ending in a newline.
func maybeReport(b []byte) bool {
	const prefix = "exec "
	if len(b) < len(prefix) {
		return bytes.HasPrefix([]byte(prefix), b)
	}
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return false
	}
	i := bytes.IndexByte(b, '\n')
	return i < 0 || i == len(b)-1
}

// parseInitReport splits runc's "exec NAME: TEXT\n" into NAME and the errno
// whose text TEXT is.
func parseInitReport(s string) (string, syscall.Errno, bool) {
	s, ok := strings.CutSuffix(s, "\n")
	if !ok {
		return "", 0, false
	}
	s = strings.TrimSuffix(s, "\r")
	s, _ = strings.CutPrefix(s, "exec ")
	i := strings.LastIndex(s, ": ")
	if i <= 0 {
		return "", 0, false
	}
	errno, ok := errnoByText(s[i+2:])
	return s[:i], errno, ok
}

// errnoByText finds the errno whose message is text.
func errnoByText(text string) (syscall.Errno, bool) {
	for n := syscall.Errno(1); n < 256; n++ {
		if n.Error() == text {
			return n, true
		}
	}
	return 0, false
}

// sameCommand reports whether name, the path runc executed, is the command
// args0: itself, or for a bare command name a path in PATH ending in it.
func sameCommand(name, args0 string) bool {
	if name == args0 {
		return true
	}
	return args0 != "" && !strings.Contains(args0, "/") && path.IsAbs(name) && path.Base(name) == args0
}

// cannotExec is the one line, and the exit status, for a command that was
// found but could not be executed (errno from execve).
func cannotExec(name string, errno syscall.Errno) error {
	platform := goruntime.GOOS + "/" + goruntime.GOARCH
	switch errno {
	case syscall.ENOEXEC:
		return withKind(ErrCannotExecute, fmt.Errorf("cannot execute %q in the sandbox: exec format error: it is neither a program for %s nor a script: add a #! line (e.g. #!/bin/sh) to a script, or use a build for %s", name, platform, platform))
	case syscall.ENOENT:
		return withKind(ErrCommandNotFound, fmt.Errorf("cannot execute %q in the sandbox: its interpreter was not found (the program on its #! line, or the dynamic loader of a binary built for another system): fix the #! line, or install the interpreter in the image", name))
	case syscall.EACCES:
		return withKind(ErrCannotExecute, fmt.Errorf("cannot execute %q in the sandbox: permission denied: run a regular file with execute permission (chmod +x), not a directory, and not from a noexec mount; a script's #! interpreter needs execute permission too", name))
	}
	return withKind(ErrCannotExecute, fmt.Errorf("cannot execute %q in the sandbox: %s", name, errno.Error()))
}

// cannotExecDetail is cannotExec for runc's report of a failure before the
// start, `"NAME": TEXT`; a detail it cannot parse is passed on as it is.
func cannotExecDetail(detail string) error {
	if i := strings.LastIndex(detail, ": "); i > 0 {
		if name, err := strconv.Unquote(detail[:i]); err == nil {
			if errno, ok := errnoByText(detail[i+2:]); ok {
				return cannotExec(name, errno)
			}
		}
	}
	return withKind(ErrCannotExecute, fmt.Errorf("cannot execute the command in the sandbox: %s", detail))
}

// specArg0 is the command a container's process runs, "" when its spec
// cannot be read.
func specArg0(ctx context.Context, c client.Container) string {
	spec, err := c.Spec(ctx)
	if err != nil || spec.Process == nil || len(spec.Process.Args) == 0 {
		return ""
	}
	return spec.Process.Args[0]
}
