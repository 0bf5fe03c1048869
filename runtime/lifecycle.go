package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// The process lifecycle run, start and exec share: a terminal or pipes,
// signals routed by phase, the exec-failure watch, the drain of the
// output, 141 on a broken pipe, and one stack of undo steps so that no
// error path forgets what was created before it.
//
//	s := newSession(ctx, con, proxy)   // signals: abort, hold, forward
//	defer s.listen()()
//	ioc := s.streams(...)              // terminal (raw) or watched pipes
//	p := create process with ioc; s.created(p)
//	p.Start; s.started()
//	code, err := s.result(ctx, status, p, arg0)

// cleanups is the one deferred cleanup stack of a run: each resource
// pushes what undoes it right after it exists (onFail: removed unless the
// run went ahead; always: closed or released either way), and run, deferred
// once, does the steps still there, last first. A run that goes ahead
// tears down in its own order and disarms the undo steps; a sandbox that
// outlives the run (-d, create) is kept the same way.
type cleanups struct{ steps []cleanupStep }

type cleanupStep struct {
	f      func()
	always bool
}

// onFail pushes a step that undoes a resource unless disarm is called.
func (c *cleanups) onFail(f func()) { c.steps = append(c.steps, cleanupStep{f: f}) }

// always pushes a step done at the end either way.
func (c *cleanups) always(f func()) { c.steps = append(c.steps, cleanupStep{f: f, always: true}) }

// disarm drops the undo steps: what exists now is meant to stay, or was
// torn down in order by the caller.
func (c *cleanups) disarm() {
	kept := c.steps[:0]
	for _, s := range c.steps {
		if s.always {
			kept = append(kept, s)
		}
	}
	c.steps = kept
}

// run does every step still on the stack, last first.
func (c *cleanups) run() {
	for i := len(c.steps) - 1; i >= 0; i-- {
		c.steps[i].f()
	}
	c.steps = nil
}

// session is one attached workload process's plumbing: its terminal, the
// signal router, the exec-failure watch and the watched output.
type session struct {
	con    console.Console
	router *signalRouter
	// watch sees what runc reports of exec failures after the start.
	watch *execWatch
	stdin *closingReader
	out   *pipeWatch
	raw   bool
}

// newSession routes signals for one process: before it exists a
// terminating signal cancels ctx (cancel); between create and start they
// are held; after, they go to it (proxy) or stop it (stop).
func newSession(ctx context.Context, cancel context.CancelFunc, con console.Console, proxy bool) *session {
	return &session{
		con:    con,
		router: &signalRouter{ctx: context.WithoutCancel(ctx), cancel: cancel, con: con, proxy: proxy},
		watch:  newExecWatch(),
	}
}

// listen routes signals until the returned function is called.
func (s *session) listen() func() { return s.router.listen() }

// earlyExit is 128+N when a terminating signal N arrived before the
// process existed (nil otherwise): the status the run ends with then.
func (s *session) earlyExit() error {
	if sig := s.router.earlySignal(); sig != 0 {
		return &ExitError{Code: 128 + int(sig)}
	}
	return nil
}

// streams is the IO of the attached process: the terminal in raw mode
// (reset restores it), or stdout and stderr watched for a reader that went
// away (`| head`: the process is killed, and the status is 141). stdin is
// attached when interactive. log, when set, gets a copy of the output.
func (s *session) streams(ctx context.Context, interactive bool, stdin io.Reader, stdout, stderr io.Writer, log *os.File) (cio.Creator, error) {
	if s.con != nil {
		if err := s.con.SetRaw(); err != nil {
			return nil, fmt.Errorf("setting the terminal to raw mode: %w; run without -t", err)
		}
		s.raw = true
		var in io.Reader
		if interactive {
			in = s.con
		}
		return cio.NewCreator(cio.WithStreams(in, s.watch.stderr(tee(s.con, log)), nil), cio.WithTerminal), nil
	}
	var in io.Reader
	if interactive {
		s.stdin = &closingReader{r: stdin, ctx: context.WithoutCancel(ctx)}
		in = s.stdin
	}
	kill := func() {
		if t := s.router.process(); t != nil {
			go func() { _ = t.Kill(context.WithoutCancel(ctx), syscall.SIGKILL) }()
		}
	}
	s.out = &pipeWatch{w: stdout, onBreak: kill}
	return cio.NewCreator(cio.WithStreams(in, s.watch.stdout(tee(s.out, log)), s.watch.stderr(tee(&pipeWatch{w: stderr, onBreak: kill}, log)))), nil
}

// reset gives the terminal back its mode; safe to call more than once.
func (s *session) reset() {
	if s.con != nil && s.raw {
		_ = s.con.Reset()
	}
}

// created hands the process to signal routing and stdin.
func (s *session) created(p client.Process) {
	s.router.created(p)
	if s.stdin != nil {
		s.stdin.setTask(p)
	}
}

// sized sets the process's terminal to the terminal's size.
func (s *session) sized(ctx context.Context, p client.Process) {
	if s.con != nil {
		resize(ctx, p, s.con)
	}
}

// started delivers the signals held since the process was created.
func (s *session) started() { s.router.started() }

// result is the process's exit status once its output is drained: a
// failure of runc to exec the command (126/127, execErr) or 141 when the
// reader of stdout went away.
func (s *session) result(st client.ExitStatus, p client.Process, arg0 func() string) (code uint32, execErr error) {
	drainIO(p)
	code, _, err := st.Result()
	if err != nil {
		code = ExitFailed
	}
	if execErr = s.watch.finish(code, arg0); execErr != nil {
		code = uint32(ExitCode(execErr))
	}
	if s.out != nil && s.out.broken.Load() {
		code = 128 + uint32(syscall.SIGPIPE)
	}
	return code, execErr
}
