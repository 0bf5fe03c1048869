package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/sbxrun/sbxrun/oci"
)

// Sandbox is one row of `sbxrun ps`.
type Sandbox struct {
	Name string `json:"name"`
	// ID is the containerd container ID: the name, or its mapped form for
	// a Docker name containerd does not accept (see LabelName).
	ID      string            `json:"id"`
	Image   string            `json:"image"`
	Profile string            `json:"profile"`
	Status  string            `json:"status"`
	Pid     uint32            `json:"pid"`
	Exit    *int              `json:"exit_code,omitempty"`
	Created time.Time         `json:"created"`
	Remove  bool              `json:"remove"`
	Owner   string            `json:"owner_pid,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Ports are the published ports, "127.0.0.1:8080->8000/tcp, ...".
	Ports string `json:"ports,omitempty"`
}

// PsOptions selects the sandboxes Select returns.
type PsOptions struct {
	// All includes sandboxes that are not running.
	All bool
	// Filters are Docker's `--filter KEY=VALUE`: name=, status=, label=.
	Filters []string
}

// List returns the sandboxes sbxrun created in the namespace.
func List(ctx context.Context, g *Global, all bool) ([]Sandbox, error) {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctrs, err := c.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := []Sandbox{}
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			continue
		}
		s := sandboxOf(ctx, ctr, info.Labels, info.ID, info.Image, info.CreatedAt)
		if !all && s.Status != string(client.Running) && s.Status != string(client.Paused) {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// sandboxOf is the ps row of a container: its labels, and its task's state
// (or, for a kept sandbox whose task is gone, the exit status it recorded).
func sandboxOf(ctx context.Context, ctr client.Container, labels map[string]string, id, image string, created time.Time) Sandbox {
	s := Sandbox{Name: sandboxName(id, labels), ID: id, Image: image, Profile: labels[LabelProfile], Created: created,
		Remove: labels[LabelRemove] == "true", Owner: labels[LabelOwnerPID], Status: "created", Labels: labels, Ports: labels[LabelPorts]}
	if v, ok := labels[LabelImage]; ok && v != "" {
		s.Image = v
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		if st, err := task.Status(ctx); err == nil {
			s.Status = string(st.Status)
			s.Pid = task.Pid()
			if st.Status == client.Stopped {
				code := int(st.ExitStatus)
				s.Exit = &code
			}
		}
	} else if v, ok := labels[LabelExitCode]; ok {
		s.Status = string(client.Stopped)
		if code, err := strconv.Atoi(v); err == nil {
			s.Exit = &code
		}
	}
	return s
}

// Names returns the names of the sandboxes in the namespace: the running
// ones, or with all every one (`stop --all`, `rm --all`).
func Names(ctx context.Context, g *Global, all bool) ([]string, error) {
	list, err := List(ctx, g, all)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list))
	for _, s := range list {
		names = append(names, s.Name)
	}
	return names, nil
}

// Select returns the sandboxes o selects: the running ones, or with All
// every one, that match o.Filters.
func Select(ctx context.Context, g *Global, o PsOptions) ([]Sandbox, error) {
	filter, err := parsePsFilters(o.Filters)
	if err != nil {
		return nil, err
	}
	// A status filter looks at stopped sandboxes too, as in Docker.
	all := o.All || len(filter["status"]) > 0
	list, err := List(ctx, g, all)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(s Sandbox) bool { return !filter.match(s) }), nil
}

func (g *Global) load(ctx context.Context, name string) (*client.Client, context.Context, client.Container, error) {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return nil, ctx, nil, err
	}
	ctr, err := c.LoadContainer(ctx, containerID(name))
	if err != nil {
		c.Close()
		if errdefs.IsNotFound(err) {
			return nil, ctx, nil, fmt.Errorf("no sandbox named %q in namespace %q: `sbxrun ps -a` lists them", name, g.namespace())
		}
		return nil, ctx, nil, fmt.Errorf("loading sandbox %q: %w", name, err)
	}
	return c, ctx, ctr, nil
}

// Kill sends sig (a name such as TERM or SIGKILL, or a number) to the
// sandbox's workload.
func Kill(ctx context.Context, g *Global, name, sig string) error {
	s, err := parseSignal(sig)
	if err != nil {
		return err
	}
	c, ctx, ctr, err := g.load(ctx, name)
	if err != nil {
		return err
	}
	defer c.Close()
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("sandbox %q is not running", name)
	}
	if err := task.Kill(ctx, s); err != nil {
		return fmt.Errorf("signalling %q: %w", name, err)
	}
	return nil
}

// Stop sends the sandbox's stop signal, waits up to timeout (negative: the
// sandbox's own stop timeout, default 10s), then kills it. A detached
// sandbox started with --rm is removed.
func Stop(ctx context.Context, g *Global, name string, timeout time.Duration) error {
	c, ctx, ctr, err := g.load(ctx, name)
	if err != nil {
		return err
	}
	defer c.Close()
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if v := labels[LabelStopSignal]; v != "" {
		if s, err := parseSignal(v); err == nil {
			sig = s
		}
	}
	if timeout < 0 {
		timeout = 10 * time.Second
		if v, err := strconv.Atoi(labels[LabelStopTimeout]); err == nil {
			timeout = time.Duration(v) * time.Second
		}
	}
	task, err := ctr.Task(ctx, nil)
	if err == nil {
		stopTask(ctx, task, sig, timeout)
	}
	if labels[LabelDetached] == "true" && labels[LabelRemove] == "true" {
		if err := remove(ctx, c, ctr, true); err != nil {
			return err
		}
		g.forget(name)
	}
	return nil
}

// stopTask signals t, waits up to timeout for it to exit, then SIGKILLs it.
func stopTask(ctx context.Context, t client.Process, sig syscall.Signal, timeout time.Duration) {
	ch, err := t.Wait(ctx)
	if err != nil {
		return
	}
	if st, err := t.Status(ctx); err == nil && st.Status == client.Stopped {
		return
	}
	_ = t.Kill(ctx, sig)
	select {
	case <-ch:
		return
	case <-time.After(timeout):
	}
	_ = t.Kill(ctx, syscall.SIGKILL)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
	}
}

// Remove deletes sandboxes with their snapshots (not their bind mounts or
// caches); a running one only with force.
func Remove(ctx context.Context, g *Global, names []string, force bool) error {
	var errs []error
	for _, name := range names {
		c, cctx, ctr, err := g.load(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := remove(cctx, c, ctr, force); err != nil {
			errs = append(errs, err)
		} else {
			g.forget(name)
		}
		c.Close()
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// Logs writes the output of a detached sandbox; with follow it keeps
// writing until the sandbox stops.
func Logs(ctx context.Context, g *Global, name string, follow bool, w io.Writer) error {
	p := logPath(g.stateDir(), g.namespace(), containerID(name))
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no logs for %q: only sandboxes started with -d or kept with --rm=false keep logs (other runs print to the terminal only)", name)
		}
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	if !follow {
		return nil
	}
	c, ctx, ctr, err := g.load(ctx, name)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		running := false
		if task, err := ctr.Task(ctx, nil); err == nil {
			if st, err := task.Status(ctx); err == nil && st.Status == client.Running {
				running = true
			}
		}
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ExecOptions describes a second process in a running sandbox.
type ExecOptions struct {
	// Name is the sandbox.
	Name string
	// Args is the command and its arguments.
	Args []string
	// Env adds KEY=VALUE entries to the sandbox's environment.
	Env []string
	// Workdir replaces the sandbox's working directory.
	Workdir string
	// User is UID[:GID] or NAME[:GROUP]; names come from the running
	// sandbox's own /etc/passwd and /etc/group. Empty keeps the sandbox's.
	User string
	// Interactive attaches Stdin.
	Interactive bool
	// TTY runs the command on a terminal (sbxrun's own).
	TTY    bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Exec runs a command inside a running sandbox and returns its exit status
// as an *ExitError (nil for 0). Its process goes through the lifecycle run
// uses (session): terminal or pipes, signals, exec watch, drain, 141.
func Exec(ctx context.Context, g *Global, o *ExecOptions) error {
	if len(o.Args) == 0 {
		return errors.New("no command: give one after --, e.g. `sbxrun exec NAME -- sh`")
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("invalid -e %q for exec: use KEY=VALUE", kv)
		}
	}
	var con console.Console
	if o.TTY {
		var err error
		if con, err = terminal(); err != nil {
			return err
		}
	}
	// Signals go to the exec'd process, as for run: a terminating one before
	// it exists cancels; after, they are forwarded, so killing `sbxrun exec`
	// ends the process in the sandbox too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newSession(ctx, cancel, con, true)
	defer s.listen()()
	fail := func(err error) error {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return err
	}

	c, ctx, ctr, err := g.load(ctx, o.Name)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	notRunning := fmt.Errorf("sandbox %q is not running: `sbxrun ps -a` shows its state", o.Name)
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return fail(notRunning)
	}
	if st, err := task.Status(ctx); err == nil && st.Status != client.Running && st.Status != client.Paused {
		return fail(notRunning)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return fail(err)
	}
	pspec := *spec.Process
	pspec.Args = o.Args
	pspec.Terminal = o.TTY
	pspec.Env = append(append([]string{}, pspec.Env...), o.Env...)
	if o.Workdir != "" {
		pspec.Cwd = o.Workdir
	}
	if o.User != "" {
		if err := execUser(ctx, task.Pid(), o.User, &pspec); err != nil {
			return fail(err)
		}
	}
	ioc, err := s.streams(ctx, o.Interactive, o.Stdin, o.Stdout, o.Stderr, nil)
	if err != nil {
		return fail(err)
	}
	defer s.reset()
	proc, err := task.Exec(ctx, "exec-"+randHex(6), &pspec, ioc)
	if err != nil {
		return fail(fmt.Errorf("exec in %q: %w", o.Name, err))
	}
	defer func() { _, _ = proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill) }()
	s.created(proc)
	ch, err := proc.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return fail(err)
	}
	s.sized(ctx, proc)
	if err := proc.Start(ctx); err != nil {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return classifyStart("running the command in "+o.Name, err)
	}
	s.started()
	code, execErr := s.result(<-ch, proc, func() string { return o.Args[0] })
	if execErr != nil {
		return execErr
	}
	if code != 0 {
		return &ExitError{Code: int(code)}
	}
	return nil
}

// parseSignal is oci.ParseSignal: TERM, SIGTERM, term or 15; 1..64 only.
var parseSignal = oci.ParseSignal

// CheckSignal refuses a signal no sandbox could be sent, so that kill
// says so once, before it looks up any sandbox.
func CheckSignal(s string) error {
	_, err := parseSignal(s)
	return err
}

func namespaceOf(ctx context.Context) (string, bool) {
	return namespaces.Namespace(ctx)
}

// forget removes sbxrun's own files about a removed sandbox: its log and
// owner marker, and releases its network.
func (g *Global) forget(name string) {
	id := containerID(name)
	_ = os.Remove(logPath(g.stateDir(), g.namespace(), id))
	forgetMarkers(g.stateDir(), g.namespace(), id)
	g.detachNetwork(id)
}
