package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/docker/go-units"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
)

// launch is the start half of a run: a created container gets its
// network and a task, attached to the caller's terminal or pipes or, with
// Detach, to its log file; attached, it is waited for and torn down. run
// (Run) and start (Start) both end here.
type launch struct {
	o   *RunOptions
	sb  *oci.Sandbox
	c   *client.Client
	ctr client.Container
	// pins are the staged bind sources, released once the task exists.
	pins *pinned
	// afterTask, when set, runs right after the task was created (or
	// failed to be): start puts the stored spec's sources back.
	afterTask func()
	// onDetached, when set, runs once a detached workload runs.
	onDetached func()
	mark       *marker
	s          *session
	tr         *tracer
}

// run starts the workload and, attached, waits for it. Every step pushes
// its undo on undo; the sandbox that outlives the call (detached, kept
// across a lost containerd) disarms them.
func (l *launch) run(ctx context.Context, undo *cleanups) error {
	o, s, tr := l.o, l.s, l.tr
	fail := func(err error) error {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return err
	}
	// The network namespace exists before the task does; it goes when the
	// run ends, unless the sandbox outlives the run.
	netw, err := o.attachNetwork(ctx, l.sb)
	tr.mark("network")
	if err != nil {
		return fail(err)
	}
	undo.always(func() { netw.release(); tr.mark("network gone") })

	// A kept attached run logs too, as Docker keeps logs for every
	// container: `sbxrun logs NAME` works after it ended.
	var runLog *os.File
	if !o.Detach && !o.Remove {
		if runLog, err = openRunLog(logPath(o.stateDir(), o.namespace(), l.sb.ID)); err != nil {
			return fail(err)
		}
		undo.always(func() { runLog.Close() })
	}
	var ioc cio.Creator
	if o.Detach {
		lp := logPath(o.stateDir(), o.namespace(), l.sb.ID)
		if err := os.MkdirAll(filepath.Dir(lp), logDirMode); err != nil {
			return fail(fmt.Errorf("creating log directory: %w", err))
		}
		_ = os.Remove(lp)
		ioc = detachedIO(lp, o.TTY, o.Interactive)
	} else {
		if ioc, err = s.streams(ctx, o.Interactive, o.Stdin, o.Stdout, o.Stderr, runLog); err != nil {
			return fail(err)
		}
		undo.always(s.reset)
	}

	var hio *heldIO
	task, err := l.ctr.NewTask(ctx, holdable(ioc, &hio))
	l.pins.release()
	if l.afterTask != nil {
		l.afterTask()
	}
	tr.mark("task")
	if err != nil {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return classifyStart("starting the sandbox", err)
	}
	undo.onFail(func() {
		cctx, done := cleanupCtx(ctx)
		defer done()
		_, _ = task.Delete(cctx, client.WithProcessKill)
	})
	s.created(task)
	statusC, err := task.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return fail(fmt.Errorf("waiting on task: %w", err))
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if err := netw.ready(); err != nil {
		return fail(err)
	}
	tr.mark("network ready")
	s.sized(ctx, task)
	hio.hold()
	if err := task.Start(ctx); err != nil {
		started, lost := startedAcrossRestart(context.WithoutCancel(ctx), l.c, task, ResolveAddress(o.Address), l.sb.ID, err)
		hio.release(!started)
		if lost != nil {
			s.reset()
			netw.keep() // the workload may run: gc detaches it with its sandbox
			undo.disarm()
			return lost
		}
		if !started {
			if e := s.earlyExit(); e != nil {
				return e
			}
			return classifyStart("starting the sandbox", err)
		}
	}
	hio.release(false)
	tr.mark("start")
	s.started()
	if o.OnStarted != nil {
		o.OnStarted(task.Pid())
	}
	if o.Detach {
		// The shim holds the stdin FIFO of -di now: its name can go.
		_ = task.IO().Close()
		netw.keep()
		undo.disarm()
		if l.onDetached != nil {
			l.onDetached()
		}
		fmt.Fprintln(o.Stdout, o.Name)
		if len(o.ports) > 0 {
			fmt.Fprintf(o.Stderr, "sbxrun: %s publishes %s\n", o.Name, network.FormatPorts(o.ports))
		}
		return nil
	}

	st := <-statusC
	if st.Error() != nil && ctx.Err() == nil {
		// containerd went away (a restart); the task lives on in its shim.
		var err error
		if st, err = rewait(context.WithoutCancel(ctx), l.c, task, ResolveAddress(o.Address), l.sb.ID); err != nil {
			s.reset()
			netw.keep() // the workload may still run: gc detaches it with its sandbox
			undo.disarm()
			return err
		}
	}
	tr.mark("exit")
	if o.Remove {
		netw.detachSoon()
	}
	code, execErr := s.result(st, task, func() string { return specArg0(context.WithoutCancel(ctx), l.ctr) })
	runCtx, done := cleanupCtx(ctx)
	defer done()
	if code == 137 && l.sb.Memory > 0 && oomKilled(l.sb) {
		s.reset()
		fmt.Fprintf(o.Stderr, "sbxrun: sandbox %s was OOM-killed: it reached its memory limit of %s (raise it with --memory)\n", o.Name, units.BytesSize(float64(l.sb.Memory)))
	}
	// Teardown in order: the task, the marker, then the container (or
	// its exit status, kept).
	_, _ = task.Delete(runCtx)
	tr.mark("delete task")
	l.mark.remove()
	if o.Remove {
		_ = l.ctr.Delete(runCtx, client.WithSnapshotCleanup)
	} else {
		netw.keep()
		_, _ = l.ctr.SetLabels(runCtx, map[string]string{LabelExitCode: strconv.Itoa(int(code))})
	}
	undo.disarm()
	tr.mark("cleanup")
	if execErr != nil {
		return execErr
	}
	if code != 0 {
		return &ExitError{Code: int(code)}
	}
	return nil
}
