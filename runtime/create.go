package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// `sbxrun create` runs the create half of a run and stores what the start
// half needs in the container itself (an extension, so it goes with the
// container however that is removed); `sbxrun start` runs the start half
// of a stored container. The stored spec keeps the user's bind sources:
// runc must never be handed a path checked at create time, so start opens
// and checks every source again (pinWith) and hands runc the staged
// mounts for the moment the task is created.

// LabelCreated marks a sandbox made by `sbxrun create`. It is kept until
// `sbxrun rm`, as Docker keeps created containers, whatever became of the
// sbxrun that created it: its LabelRemove is "false" until a start says
// otherwise.
const LabelCreated = "sbxrun.created"

// createExtension is the container extension that holds a createRecord.
const createExtension = "sbxrun.create"

func init() {
	typeurl.Register(&createRecord{}, "github.com/sbxrun/sbxrun/runtime", "createRecord")
}

// createRecord is what `sbxrun start` needs of the run `sbxrun create`
// resolved: the options that are not in the spec, and the sandbox's
// mounts with the user's own sources, to pin again.
type createRecord struct {
	Name        string   `json:"name"`
	Remove      bool     `json:"remove"`
	TTY         bool     `json:"tty,omitempty"`
	Interactive bool     `json:"interactive,omitempty"`
	Publish     []string `json:"publish,omitempty"`
	PublishAll  bool     `json:"publish_all,omitempty"`
	// Exposed are the image's EXPOSEd ports, which -P publishes.
	Exposed        map[string]struct{} `json:"exposed,omitempty"`
	NetworkAliases []string            `json:"network_aliases,omitempty"`
	// Sandbox is the part of the resolved sandbox start uses: its id,
	// network (with its extra hosts and DNS settings), cgroup and mounts
	// (never its environment).
	Sandbox oci.Sandbox `json:"sandbox"`
	// Pins pairs the index of each bind mount in Sandbox.Mounts with the
	// index of its mount in the spec.
	Pins [][2]int `json:"pins,omitempty"`
	// Owner is keep-id's host owner (uid, gid) when keep-id applied, and
	// Within the directories (resolved) whose owned sources it maps: the
	// workspace and home create saw, not those of whoever starts it.
	Owner  *[2]uint32 `json:"owner,omitempty"`
	Within []string   `json:"within,omitempty"`
}

// pinMark is the placeholder a bind mount's Handle has while `create`
// builds the spec, so that markPins finds exactly the mounts of the
// sandbox's bind sources in it, whatever else the spec mounts.
const pinMark = "\x00sbxrun-pin:"

// planPins prepares sb's bind mounts for a spec that keeps their sources:
// each gets a placeholder Handle (markPins), and keep-id's owner is
// recorded. Nothing is opened or staged.
func (r *createRecord) planPins(sb *oci.Sandbox) (*pinned, error) {
	keep, err := newKeepID(sb)
	if err != nil {
		return nil, err
	}
	if keep != nil {
		r.Owner = &[2]uint32{keep.owner.uid, keep.owner.gid}
		r.Within = keep.within
	}
	for i := range sb.Mounts {
		if m := &sb.Mounts[i]; m.Type == "" || m.Type == "bind" {
			m.Handle = pinMark + strconv.Itoa(i)
		}
	}
	return &pinned{keep: keep}, nil
}

// markPins is the spec option that puts the user's sources back where
// planPins left placeholders, and records where they are.
func (r *createRecord) markPins(sb *oci.Sandbox) ctrdoci.SpecOpts {
	return func(_ context.Context, _ ctrdoci.Client, _ *containers.Container, s *ctrdoci.Spec) error {
		r.Pins = r.Pins[:0] // the spec is built again when an orphan is replaced
		for j := range s.Mounts {
			v, ok := strings.CutPrefix(s.Mounts[j].Source, pinMark)
			if !ok {
				continue
			}
			i, err := strconv.Atoi(v)
			if err != nil || i < 0 || i >= len(sb.Mounts) {
				return fmt.Errorf("internal error: bad bind mount placeholder %q", s.Mounts[j].Source)
			}
			s.Mounts[j].Source = sb.Mounts[i].Source
			r.Pins = append(r.Pins, [2]int{i, j})
		}
		return nil
	}
}

// attach stores r in the container, with sb as it is once the spec is
// built (mount targets resolved against the image's home).
func (r *createRecord) attach(sb *oci.Sandbox) client.NewContainerOpts {
	return func(ctx context.Context, c *client.Client, ctr *containers.Container) error {
		mounts := make([]oci.Mount, len(sb.Mounts))
		copy(mounts, sb.Mounts)
		for i := range mounts {
			mounts[i].Handle = ""
		}
		r.Sandbox = oci.Sandbox{
			ID: sb.ID, Namespace: sb.Namespace, Hostname: sb.Hostname, Mounts: mounts,
			Memory: sb.Memory, NoCgroups: sb.NoCgroups, CgroupsPath: sb.CgroupsPath,
			Network: sb.Network, NetNSPath: sb.NetNSPath, HostsFile: sb.HostsFile, ResolvConf: sb.ResolvConf,
			ExtraHosts: sb.ExtraHosts, DNSServers: sb.DNSServers, DNSSearch: sb.DNSSearch, DNSOptions: sb.DNSOptions,
			Userns: sb.Userns, AllowUnsafeMounts: sb.AllowUnsafeMounts, ProtectedPaths: sb.ProtectedPaths,
		}
		return client.WithContainerExtension(createExtension, r)(ctx, c, ctr)
	}
}

// Create makes a sandbox that `sbxrun start` starts later (Docker's
// create): the run is resolved and validated, its image pulled and its
// container created with the spec run would use; nothing runs. It prints
// the name. Bad input creates nothing, and a signal during creation
// removes what was made.
func Create(ctx context.Context, o *RunOptions) error {
	tr := newTracer(o.Debug, o.Stderr)
	o.Detach = false
	p, err := o.prepare()
	if err != nil {
		return err
	}
	tr.mark("prepare")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newSession(ctx, cancel, nil, false)
	defer s.listen()()
	var undo cleanups
	defer undo.run()
	fail := func(err error) error {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return err
	}
	c, ctx, err := o.connect(ctx)
	tr.mark("connect")
	if err != nil {
		return fail(err)
	}
	undo.always(func() { c.Close() })
	rec := &createRecord{Name: o.Name, Remove: o.Remove, TTY: o.TTY, Interactive: o.Interactive,
		Publish: o.Publish, PublishAll: o.PublishAll, NetworkAliases: o.NetworkAliases}
	// Until it is complete the sandbox is this sbxrun's, to be removed
	// when it dies (gc judges it as an attached run's): a create killed
	// half-way leaves nothing that gc keeps. Complete, it is kept until rm.
	remove := o.Remove
	o.Remove = true
	ctr, _, err := o.createPhase(ctx, c, p, &undo, tr, rec)
	o.Remove = remove
	if err != nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if _, err := ctr.SetLabels(ctx, map[string]string{LabelRemove: "false"}); err != nil {
		return fail(fmt.Errorf("creating sandbox %q: %w", o.Name, err))
	}
	undo.disarm()
	fmt.Fprintln(o.Stdout, o.Name)
	return nil
}

// StartOptions says how `sbxrun start` runs a created sandbox.
type StartOptions struct {
	// Name is the sandbox.
	Name string
	// Attach waits for the workload with its output on Stdout and Stderr
	// and returns its exit status; without it the workload runs detached,
	// its output in its log (`sbxrun logs NAME`), and the name is printed.
	Attach bool
	// Interactive attaches Stdin (with Attach).
	Interactive bool
	// Stdin, Stdout and Stderr are the terminal streams; nil are os.Std*.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Start starts a sandbox `sbxrun create` made (or starts an exited one
// again). Its bind sources are opened and checked again, with the rules
// run applies, right before its task is created; its network is attached
// and its published ports reserved now. Attached it returns what Run
// returns; detached it prints the name.
func Start(ctx context.Context, g *Global, so *StartOptions) error {
	o := &RunOptions{Global: *g, Name: so.Name, Stdin: so.Stdin, Stdout: so.Stdout, Stderr: so.Stderr}
	o.defaults()
	tr := newTracer(o.Debug, o.Stderr)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, ctx, ctr, err := g.load(ctx, so.Name)
	if err != nil {
		return err
	}
	defer c.Close() // last: after the teardown the stack below does
	rec, labels, err := recordOf(ctx, ctr, so.Name)
	if err != nil {
		return err
	}
	if running, err := clearTask(ctx, ctr); err != nil {
		return err
	} else if running {
		if so.Attach {
			return fmt.Errorf("sandbox %q is running already: `sbxrun logs -f %s` shows its output", so.Name, so.Name)
		}
		fmt.Fprintln(o.Stdout, so.Name) // Docker: starting a running container does nothing
		return nil
	}
	o.Name, o.Remove, o.TTY = rec.Name, rec.Remove, rec.TTY
	o.Detach = !so.Attach
	o.Interactive = rec.Interactive
	if so.Attach {
		o.Interactive = so.Interactive
	}
	o.SigProxy = true
	o.Publish, o.PublishAll, o.NetworkAliases = rec.Publish, rec.PublishAll, rec.NetworkAliases
	sb := rec.Sandbox
	sb.Mounts = append([]oci.Mount(nil), rec.Sandbox.Mounts...)
	// Published ports are reserved now: those create picked may be taken.
	if err := o.planNetwork(&sb); err != nil {
		return err
	}
	if err := o.publishExposed(ocispec.ImageConfig{ExposedPorts: rec.Exposed}); err != nil {
		return err
	}
	con, err := o.console()
	if err != nil {
		return err
	}
	sig, timeout := stopOf(labels)
	s := o.session(ctx, cancel, con, sig, timeout)
	defer s.listen()()
	var undo cleanups
	defer undo.run()
	fail := func(err error) error {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return err
	}
	mark, err := o.prepareFiles(sb.ID, &undo)
	if err != nil {
		return fail(err)
	}
	// The starter owns the sandbox from now on; gc keeps it while this
	// sbxrun lives (attached) or while it runs (detached).
	set := ownerLabels()
	set[LabelExitCode] = ""
	set[LabelDetached] = ""
	if o.Detach {
		set[LabelDetached] = "true"
	}
	set[LabelPorts] = ""
	if _, ok := network.Resolve(sb.Network); ok && len(o.ports) > 0 {
		set[LabelPorts] = network.FormatPorts(o.ports)
	}
	if _, err := ctr.SetLabels(ctx, set); err != nil {
		return fail(fmt.Errorf("updating sandbox %q: %w", so.Name, err))
	}
	pins, restore, err := repin(ctx, ctr, &sb, rec, o.stateDir())
	if err != nil {
		return fail(err)
	}
	undo.always(pins.release)
	undo.always(restore)
	if warn, err := pins.keepOwned(); err != nil {
		return fail(err)
	} else if warn != "" {
		fmt.Fprintf(o.Stderr, "sbxrun: warning: %s\n", warn)
	}
	l := &launch{o: o, sb: &sb, c: c, ctr: ctr, pins: pins, afterTask: restore, mark: mark, s: s, tr: tr}
	if rec.Remove {
		// A detached --rm sandbox is gc's and stop's to remove once it
		// ran; until its workload runs, it is kept.
		l.onDetached = func() {
			cctx, done := cleanupCtx(ctx)
			defer done()
			_, _ = ctr.SetLabels(cctx, map[string]string{LabelRemove: "true"})
		}
	}
	return l.run(ctx, &undo)
}

// recordOf reads the create record of ctr, and its labels.
func recordOf(ctx context.Context, ctr client.Container, name string) (*createRecord, map[string]string, error) {
	info, err := ctr.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("loading sandbox %q: %w", name, err)
	}
	ext, ok := info.Extensions[createExtension]
	if !ok {
		return nil, nil, fmt.Errorf("sandbox %q was not made by `sbxrun create`, so it cannot be started again: run a new one with `sbxrun run`", name)
	}
	v, err := typeurl.UnmarshalAny(ext)
	if err != nil {
		return nil, nil, fmt.Errorf("reading how sandbox %q was created: %w: remove it (`sbxrun rm %s`) and create it again", name, err, name)
	}
	rec, ok := v.(*createRecord)
	if !ok {
		return nil, nil, fmt.Errorf("reading how sandbox %q was created: unexpected %T: remove it (`sbxrun rm %s`) and create it again", name, v, name)
	}
	return rec, info.Labels, nil
}

// clearTask deletes the ended task of an earlier start, so the sandbox
// can start again; it reports whether the sandbox's task still runs.
func clearTask(ctx context.Context, ctr client.Container) (running bool, err error) {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading the task of %q: %w", ctr.ID(), err)
	}
	if st, err := task.Status(ctx); err == nil && (st.Status == client.Running || st.Status == client.Paused || st.Status == client.Pausing) {
		return true, nil
	}
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return false, fmt.Errorf("deleting the ended task of %q: %w", ctr.ID(), err)
	}
	return false, nil
}

// stopOf is the stop signal and timeout recorded in a sandbox's labels.
func stopOf(labels map[string]string) (syscall.Signal, time.Duration) {
	sig, timeout := syscall.SIGTERM, 10*time.Second
	if v := labels[LabelStopSignal]; v != "" {
		if s, err := parseSignal(v); err == nil {
			sig = s
		}
	}
	if v, err := strconv.Atoi(labels[LabelStopTimeout]); err == nil {
		timeout = time.Duration(v) * time.Second
	}
	return sig, timeout
}

// repin opens, checks and stages sb's bind sources again (pinWith: the
// same checks as run, so a source swapped for a symlink to / since create
// is refused) and points the stored spec at the staged mounts until the
// task exists; restore puts the user's sources back (once).
func repin(ctx context.Context, ctr client.Container, sb *oci.Sandbox, rec *createRecord, stateDir string) (*pinned, func(), error) {
	var keep *keepID
	if rec.Owner != nil {
		// keep-id still applies here (rootful, --userns keep-id): map for
		// the owner and directories create recorded.
		if sb.Userns == oci.UsernsKeepID && !rootless.Active() && os.Geteuid() == 0 {
			keep = &keepID{owner: hostOwner{uid: rec.Owner[0], gid: rec.Owner[1]}, within: rec.Within}
		}
	}
	pins, err := pinWith(sb, stateDir, keep)
	if err != nil {
		return nil, nil, err
	}
	if len(rec.Pins) == 0 {
		return pins, func() {}, nil
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		pins.release()
		return nil, nil, fmt.Errorf("reading the spec of %q: %w", rec.Name, err)
	}
	orig := map[int]string{}
	for _, pi := range rec.Pins {
		i, j := pi[0], pi[1]
		if i < 0 || i >= len(sb.Mounts) || j < 0 || j >= len(spec.Mounts) || spec.Mounts[j].Type != "bind" || sb.Mounts[i].Handle == "" {
			pins.release()
			return nil, nil, fmt.Errorf("the spec of sandbox %q does not match how it was created: remove it (`sbxrun rm %s`) and create it again", rec.Name, rec.Name)
		}
		orig[j] = sb.Mounts[i].Source
		spec.Mounts[j].Source = sb.Mounts[i].Handle
	}
	if err := pins.captureUser()(ctx, nil, nil, spec); err != nil {
		pins.release()
		return nil, nil, err
	}
	if err := ctr.Update(ctx, client.UpdateContainerOpts(client.WithSpec(spec))); err != nil {
		pins.release()
		return nil, nil, fmt.Errorf("updating the spec of %q: %w", rec.Name, err)
	}
	restore := sync.OnceFunc(func() {
		for j, src := range orig {
			spec.Mounts[j].Source = src
		}
		cctx, done := cleanupCtx(ctx)
		defer done()
		_ = ctr.Update(cctx, client.UpdateContainerOpts(client.WithSpec(spec)))
	})
	return pins, restore, nil
}
