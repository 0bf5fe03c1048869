package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/internal/hostinfo"
	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/profiles"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// RunOptions is everything one `sbxrun run` needs. The CLI fills it from
// flags; nothing here knows about the CLI.
type RunOptions struct {
	Global
	// Target is a profile name or, when no profile has that name, an image
	// reference.
	Target string
	// Args is the command after "--"; empty keeps the profile's or image's.
	Args []string
	// Flags is the command line as the last profile layer (may be nil).
	Flags *profiles.Profile
	// Name is the container ID; empty generates PROFILE-XXXXXX.
	Name string
	// Remove deletes the container when the workload ends (default true).
	Remove bool
	// Detach starts the workload and returns; output goes to the log file.
	Detach bool
	// Interactive attaches stdin.
	Interactive bool
	// TTY allocates a terminal (the CLI turns it on when stdin and stdout
	// are terminals).
	TTY bool
	// SigProxy forwards signals sbxrun receives to the workload.
	SigProxy bool
	// OOMScoreAdj is the workload's oom_score_adj (--oom-score-adj); nil
	// is 0, Docker's default, instead of the shim's 1 (rootless: unset,
	// an unprivileged runc may not lower it).
	OOMScoreAdj *int
	// StopOnTerm makes SIGTERM and SIGINT stop the workload the way `sbxrun
	// stop` does (its stop signal, then SIGKILL after its stop timeout)
	// instead of forwarding them; other signals are still forwarded. This is
	// what a service manager expects of its main process.
	StopOnTerm bool
	// OnStarted, when set, is called once the workload runs, with its host
	// pid (for systemd's READY=1 and MAINPID).
	OnStarted func(pid uint32)
	// OnStopping, when set, is called when sbxrun starts stopping the
	// workload because it was asked to (STOPPING=1).
	OnStopping func()
	// AllowUnsafeMounts lets the host root and daemon sockets be mounted.
	AllowUnsafeMounts bool
	// CDISpecDirs are the CDI spec directories (--cdi-spec-dir); empty
	// resolves through ResolveCDISpecDirs.
	CDISpecDirs []string
	// Load says where profile files are read from.
	Load profiles.LoadOptions
	// Host is the invoking user's home and current directory; zero values
	// are read from the process.
	Host profiles.HostEnv
	// Stdin, Stdout and Stderr are the terminal streams; nil are os.Std*.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Publish are -p values, [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]; they
	// need a CNI network (--net bridge or a name).
	Publish []string
	// NetworkAliases are names the sandbox has on a named network, besides
	// its name and hostname.
	NetworkAliases []string
	// PublishAll is -P: the image's EXPOSEd ports on free host ports.
	PublishAll bool

	consoleSize *console.WinSize
	notes       []string
	// ports are Publish resolved (free host ports picked and checked).
	ports []network.Port
	// net is the network planned (network.go).
	net netPlan
	// readOnlyHost keeps validation from writing the host's CDI spec
	// files (`sbxrun spec`, unit generation): stale or missing specs are
	// generated in memory only.
	readOnlyHost bool
	// manifestOnly resolves the sandbox for somewhere else (a Kubernetes
	// manifest, Resolve): no CDI device resolution (the GPUs are the
	// cluster's), no rootless adjustments, host files or cache
	// directories: nothing is created or read on this host's behalf.
	manifestOnly bool
}

// prepared is a run resolved and validated, before containerd is involved.
type prepared struct {
	res     *profiles.Resolved
	sb      *oci.Sandbox
	image   string
	pull    string
	profile string
}

func (o *RunOptions) defaults() {
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Host.Home == "" {
		o.Host.Home, _ = os.UserHomeDir()
	}
	if o.Host.Cwd == "" {
		o.Host.Cwd, _ = os.Getwd()
	}
	if o.Load.ConfigFile == "" {
		o.Load.ConfigFile = o.ConfigFile
	}
}

// prepare validates the run and prints its notes (warnings).
func (o *RunOptions) prepare() (*prepared, error) {
	p, err := o.validate()
	if err != nil {
		return nil, err
	}
	for _, n := range o.notes {
		fmt.Fprintln(o.Stderr, "sbxrun: "+n)
	}
	o.notes = nil
	return p, nil
}

// validate resolves the profile and validates every input. It creates nothing
// in containerd; it may create the cache directories a profile asks for.
func (o *RunOptions) validate() (*prepared, error) {
	o.defaults()
	if o.Target == "" {
		return nil, errors.New("no profile or image given: try `sbxrun base -- CMD` or `sbxrun run IMAGE -- CMD` (`sbxrun profiles` lists profiles)")
	}
	profs, err := profiles.Load(o.Load)
	if err != nil {
		return nil, err
	}
	var res *profiles.Resolved
	profile := ""
	if profs.Has(o.Target) {
		profile = o.Target
		res, err = profs.Resolve(o.Target, o.Flags)
	} else {
		res, err = profs.ResolveImage(o.Target, o.Flags)
	}
	if err != nil {
		return nil, err
	}
	if err := profiles.CheckTrust(res); err != nil {
		return nil, err
	}
	sb, create, err := res.Expand(o.Host)
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = generateName(o.Target, profile)
	}
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	sb.ID = containerID(o.Name)
	if sb.Hostname == "" {
		sb.Hostname = hostnameFor(o.Name)
	}
	switch {
	case o.OOMScoreAdj != nil:
		if err := checkOOMScoreAdj(*o.OOMScoreAdj); err != nil {
			return nil, err
		}
		sb.OOMScoreAdj = o.OOMScoreAdj
	case !rootless.Active():
		sb.OOMScoreAdj = new(int)
	}
	sb.Namespace = o.namespace()
	o.defaultNetwork(sb)
	if len(o.Args) > 0 {
		sb.Args = o.Args
	}
	sb.AllowUnsafeMounts = sb.AllowUnsafeMounts || o.AllowUnsafeMounts
	if o.manifestOnly {
		// Everything but what this host would add or create.
		if err := withoutMounts(sb, create).Validate(); err != nil {
			return nil, err
		}
		return o.prepared(res, sb, profile)
	}
	if err := o.rootlessLimits(sb, res); err != nil {
		return nil, err
	}
	sb.Terminal = o.TTY
	sb.ProtectedPaths = append(sb.ProtectedPaths, strings.TrimPrefix(ResolveAddress(o.Address), "unix://"))
	applyCgroupFacts(sb)
	if wantsCDI(res) {
		// Everything else is checked before CDI devices are resolved,
		// which as root may write the host's spec (a missing or stale
		// one): bad input must not get that far.
		if err := withoutMounts(sb, create).Validate(); err != nil {
			return nil, err
		}
		if err := o.cdiDevices(res, sb); err != nil {
			return nil, err
		}
	}
	p, err := o.prepared(res, sb, profile)
	if err != nil {
		return nil, err
	}
	if err := o.hostFiles(sb); err != nil {
		return nil, err
	}
	if sb.Userns == oci.UsernsKeepID && rootless.Active() {
		sb.Userns = oci.UsernsHost // the namespace's root is the user already
	}
	// Bad input creates nothing: with caches still to create, validate
	// everything but their existence first, then create them; warnings wait
	// until the run is known to go ahead.
	if len(create) > 0 {
		if err := withoutMounts(sb, create).Validate(); err != nil {
			return nil, err
		}
		var missing []string
		for _, d := range create {
			if _, err := os.Lstat(d); err != nil {
				missing = append(missing, d)
			}
		}
		if err := profiles.CreateDirs(sb, create); err != nil {
			return nil, err
		}
		giveCreated(sb, missing)
	}
	if err := sb.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// prepared is the run's image and pull policy, checked.
func (o *RunOptions) prepared(res *profiles.Resolved, sb *oci.Sandbox, profile string) (*prepared, error) {
	p := &prepared{res: res, sb: sb, profile: profile}
	var err error
	if p.image, err = res.ImageRef(); err != nil {
		return nil, err
	}
	if res.Profile.Pull != nil {
		p.pull = *res.Profile.Pull
	}
	switch p.pull {
	case "", images.PullMissing, images.PullAlways, images.PullNever:
	default:
		return nil, fmt.Errorf("invalid pull policy %q: use missing, always or never", p.pull)
	}
	return p, nil
}

// notef records a line for the user (a warning, a note) that prepare prints
// once the run has been validated.
func (o *RunOptions) notef(format string, a ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, a...))
}

// withoutMounts is a copy of sb without the mounts whose source is one of
// sources.
func withoutMounts(sb *oci.Sandbox, sources []string) *oci.Sandbox {
	c := *sb
	c.Mounts = nil
	for _, m := range sb.Mounts {
		if !slices.Contains(sources, m.Source) {
			c.Mounts = append(c.Mounts, m)
		}
	}
	return &c
}

// hostFiles points /etc/hosts and /etc/resolv.conf at the host's for the host
// network, at a generated loopback-only hosts file for "none", and at the
// files Attach writes for a CNI network (planNetwork).
func (o *RunOptions) hostFiles(sb *oci.Sandbox) error {
	if err := o.planNetwork(sb); err != nil {
		return err
	}
	switch sb.Network {
	case "", "host":
		if _, err := os.Stat("/etc/hosts"); err == nil {
			sb.HostsFile = "/etc/hosts"
		}
		if _, err := os.Stat("/etc/resolv.conf"); err == nil {
			sb.ResolvConf = "/etc/resolv.conf"
		}
	case "none":
		p := filepath.Join(o.stateDir(), "hosts.none")
		if _, err := os.Stat(p); err != nil {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fmt.Errorf("creating state directory: %w", err)
			}
			if err := os.WriteFile(p, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), 0o644); err != nil {
				return fmt.Errorf("writing %q: %w", p, err)
			}
		}
		sb.HostsFile = p
	}
	return nil
}

var nameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func generateName(target, profile string) string {
	base := profile
	if base == "" {
		base = target
		if i := strings.LastIndexByte(base, '/'); i >= 0 {
			base = base[i+1:]
		}
		if i := strings.IndexAny(base, ":@"); i >= 0 {
			base = base[:i]
		}
		base = nameChars.ReplaceAllString(base, "-")
		base = strings.Trim(base, "-._")
		if base == "" {
			base = "sandbox"
		}
	}
	// The name is the hostname too: keep it within the kernel's 64
	// characters, so a long image name still gives a usable one.
	if max := maxHostname - 7; len(base) > max {
		base = strings.TrimRight(base[:max], "-._")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return base + "-" + hex.EncodeToString(b)
}

// specOpts is the one place a run's spec options are put together, for both
// run and spec, so `sbxrun spec` prints exactly what run uses.
func (o *RunOptions) specOpts(p *prepared, img ocispec.ImageConfig) ([]ctrdoci.SpecOpts, error) {
	if err := o.publishExposed(img); err != nil {
		return nil, err
	}
	applyImageHome(p.sb, img)
	opts, err := oci.Build(p.sb, img)
	if err != nil {
		return nil, err
	}
	if o.consoleSize != nil {
		opts = append(opts, ctrdoci.WithTTYSize(int(o.consoleSize.Width), int(o.consoleSize.Height)))
	}
	return opts, nil
}

func (o *RunOptions) labels(p *prepared) map[string]string {
	l := map[string]string{}
	for k, v := range p.res.Profile.Labels {
		l[k] = v
	}
	for k, v := range ownerLabels() {
		l[k] = v
	}
	l[LabelProfile] = p.profile
	l[LabelName] = o.Name
	l[LabelImage] = p.image
	l[LabelRemove] = strconv.FormatBool(o.Remove)
	if o.Detach {
		l[LabelDetached] = "true"
	}
	if s := p.res.Profile.StopSignal; s != nil {
		l[LabelStopSignal] = *s
	}
	if t := p.res.Profile.StopTimeout; t != nil {
		l[LabelStopTimeout] = strconv.Itoa(*t)
	}
	if p.sb.Memory > 0 {
		l[LabelMemory] = strconv.FormatInt(p.sb.Memory, 10)
	}
	o.networkLabels(p.sb, l)
	return l
}

// Spec writes the OCI config.json that Run would use for o.
func Spec(ctx context.Context, o *RunOptions, w io.Writer) error {
	o.readOnlyHost = true
	p, err := o.prepare()
	if err != nil {
		return err
	}
	c, ctx, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	img, err := images.Ensure(ctx, c, p.image, p.pull, o.snapshotter(), o.Stderr)
	if err != nil {
		return err
	}
	opts, err := o.specOpts(p, img.Config.Config)
	if err != nil {
		return err
	}
	spec, err := ctrdoci.GenerateSpec(ctx, nil, &containers.Container{ID: p.sb.ID, Labels: o.labels(p)}, opts...)
	if err != nil {
		return fmt.Errorf("generating spec: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(spec)
}

// Run runs one sandbox to completion (or starts it, with Detach) and returns
// nil for exit 0 or an *ExitError with the status sbxrun must exit with. It
// is the create half (createPhase: image, pinned mounts, container) and the
// start half (launch: network, IO, task, wait, teardown) of one lifecycle,
// which `sbxrun create` and `sbxrun start` run one at a time.
func Run(ctx context.Context, o *RunOptions) error {
	tr := newTracer(o.Debug, o.Stderr)
	p, err := o.prepare()
	if err != nil {
		return err
	}
	tr.mark("prepare")
	con, err := o.console()
	if err != nil {
		return err
	}

	// Signals: before the task exists, a terminating signal cancels the run
	// and everything created so far is removed; while it starts, signals
	// are held; once it runs, they go to the workload.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := o.session(ctx, cancel, con, p.stopSignal(), p.stopTimeout())
	defer s.listen()()
	// Everything the run creates from here on pushes its undo step.
	var undo cleanups
	defer undo.run()
	fail := func(err error) error {
		if e := s.earlyExit(); e != nil {
			return e
		}
		return err
	}
	mark, err := o.prepareFiles(p.sb.ID, &undo)
	if err != nil {
		return fail(err)
	}

	c, ctx, err := o.connect(ctx)
	tr.mark("connect")
	if err != nil {
		return fail(err)
	}
	undo.always(func() { c.Close() })
	// Clear orphans of earlier, killed runs while this one starts.
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		// This run's own name is left to createContainer, which replaces an
		// orphan of that name itself; two removers of one container race.
		_, _ = collectMarked(context.WithoutCancel(ctx), c, o.stateDir(), ResolveAddress(o.Address), p.sb.ID, shimGrace)
	}()
	undo.always(func() { <-gcDone })

	ctr, pins, err := o.createPhase(ctx, c, p, &undo, tr, nil)
	if err != nil {
		return fail(err)
	}
	l := &launch{o: o, sb: p.sb, c: c, ctr: ctr, pins: pins, mark: mark, s: s, tr: tr}
	return l.run(ctx, &undo)
}

// console is the terminal of an attached -t run; its size goes into the
// spec so the first thing the workload sees is already right.
func (o *RunOptions) console() (console.Console, error) {
	if !o.TTY || o.Detach {
		return nil, nil
	}
	con, err := terminal()
	if err != nil {
		return nil, err
	}
	if sz, err := con.Size(); err == nil && sz.Width > 0 {
		o.consoleSize = &sz
	}
	return con, nil
}

// session is the signal routing and stdio of a run's workload: forwarded
// signals (SigProxy), or the sandbox's stop (StopOnTerm, or without
// SigProxy for a terminating signal).
func (o *RunOptions) session(ctx context.Context, cancel context.CancelFunc, con console.Console, sig syscall.Signal, timeout time.Duration) *session {
	s := newSession(ctx, cancel, con, o.SigProxy)
	s.router.stopOnTerm = o.StopOnTerm
	s.router.stop = func(t client.Process) {
		if o.OnStopping != nil {
			o.OnStopping()
		}
		stopTask(context.WithoutCancel(ctx), t, sig, timeout)
	}
	return s
}

// prepareFiles writes the files a run of sandbox id depends on before
// anything exists in containerd (statedir.go): its log's directory, and
// for an attached run the owner marker first, so a kill at any later point
// leaves one.
func (o *RunOptions) prepareFiles(id string, undo *cleanups) (*marker, error) {
	if o.Detach || !o.Remove {
		if err := prepareLog(o.stateDir(), logPath(o.stateDir(), o.namespace(), id)); err != nil {
			return nil, err
		}
	}
	if o.Detach {
		return nil, nil
	}
	mark, err := newMarker(o.stateDir(), o.namespace(), id)
	if err != nil {
		return nil, err
	}
	undo.onFail(mark.remove)
	return mark, nil
}

// cleanupCtx is the context teardown runs under: not cancelled with the
// run (a signal must not stop the cleanup), bounded.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// createPhase makes the container of prepared run p: the image held, the
// bind sources pinned (run) or recorded to be pinned at start (rec, for
// `sbxrun create`), the spec built and the container created, each with
// its undo step on undo. The staged mounts it returns are released once
// the task exists.
func (o *RunOptions) createPhase(ctx context.Context, c *client.Client, p *prepared, undo *cleanups, tr *tracer, rec *createRecord) (client.Container, *pinned, error) {
	img, lctx, release, err := ensureHeld(ctx, c, p.image, p.pull, o.snapshotter(), o)
	if err != nil {
		return nil, nil, o.hintProfile(err, p)
	}
	undo.always(release)
	tr.mark("image")
	var pins *pinned
	if rec == nil {
		// runc mounts the descriptors checked here, not paths that could
		// be swapped until then; they stay open until the task exists.
		if pins, err = pinMounts(p.sb, o.stateDir()); err != nil {
			return nil, nil, err
		}
		undo.always(pins.release)
	} else if pins, err = rec.planPins(p.sb); err != nil {
		return nil, nil, err
	}
	opts, err := o.specOpts(p, img.Config.Config)
	if err != nil {
		return nil, nil, err
	}
	labels := o.labels(p)
	var more []client.NewContainerOpts
	if rec != nil {
		labels[LabelCreated] = "true"
		rec.Exposed = img.Config.Config.ExposedPorts
		opts = append(opts, rec.markPins(p.sb))
		more = append(more, rec.attach(p.sb))
	}
	opts = append(opts, pins.captureUser())
	tr.mark("spec")
	// A detached run killed while containerd started its task leaves a
	// shim (and its bundle) under this id and no marker: stop it first, or
	// the new task fails with "file exists". A stat when there is none.
	reapStaleShim(lctx, c, o.stateDir(), p.sb.ID, ResolveAddress(o.Address))
	ctr, err := createContainer(lctx, c, o.stateDir(), p.sb.ID, img, opts, labels, more...)
	release()
	tr.mark("create")
	if err != nil {
		return nil, nil, runUserError(err, p.sb.User, img.Config.Config.User)
	}
	undo.onFail(func() {
		cctx, done := cleanupCtx(ctx)
		defer done()
		_ = ctr.Delete(cctx, client.WithSnapshotCleanup)
	})
	if rec == nil {
		if warn, err := pins.keepOwned(); err != nil {
			return nil, nil, err
		} else if warn != "" {
			fmt.Fprintf(o.Stderr, "sbxrun: warning: %s\n", warn)
		}
	}
	return ctr, pins, nil
}

// LabelExitCode records a kept container's last exit status.
const LabelExitCode = "sbxrun.exit-code"

// snapshotter is the one sbxrun unpacks into and prepares rootfs on:
// SBXRUN_SNAPSHOTTER, else containerd's default.
func (o *RunOptions) snapshotter() string {
	return os.Getenv("SBXRUN_SNAPSHOTTER")
}

func (p *prepared) stopSignal() syscall.Signal {
	if p.res.Profile.StopSignal != nil {
		if s, err := parseSignal(*p.res.Profile.StopSignal); err == nil {
			return s
		}
	}
	return syscall.SIGTERM
}

func (p *prepared) stopTimeout() time.Duration {
	if p.res.Profile.StopTimeout != nil {
		return time.Duration(*p.res.Profile.StopTimeout) * time.Second
	}
	return 10 * time.Second
}

func terminating(s syscall.Signal) bool {
	return s == syscall.SIGINT || s == syscall.SIGTERM || s == syscall.SIGHUP || s == syscall.SIGQUIT
}

func resize(ctx context.Context, t client.Process, con console.Console) {
	if sz, err := con.Size(); err == nil {
		_ = t.Resize(ctx, uint32(sz.Width), uint32(sz.Height))
	}
}

// closingReader closes the task's stdin once the user's stdin hits EOF, so
// the workload sees end of input, even when EOF comes before the task exists.
type closingReader struct {
	r    io.Reader
	ctx  context.Context
	mu   sync.Mutex
	task client.Process
	eof  bool
}

func (c *closingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err == io.EOF {
		c.mu.Lock()
		c.eof = true
		t := c.task
		c.mu.Unlock()
		if t != nil {
			_ = t.CloseIO(c.ctx, client.WithStdinCloser)
		}
	}
	return n, err
}

func (c *closingReader) setTask(t client.Process) {
	c.mu.Lock()
	c.task = t
	eof := c.eof
	c.mu.Unlock()
	if eof {
		_ = t.CloseIO(c.ctx, client.WithStdinCloser)
	}
}

// createContainer creates the container, replacing an orphan of the same
// name. Exactly one of several concurrent runs with one name wins; the
// others get a conflict error and leave nothing behind.
func createContainer(ctx context.Context, c *client.Client, stateDir, id string, img *images.Image, opts []ctrdoci.SpecOpts, labels map[string]string, more ...client.NewContainerOpts) (client.Container, error) {
	ctr, err := newContainer(ctx, c, id, img, opts, labels, more...)
	if err == nil {
		return ctr, nil
	}
	var targetErr *MountTargetError
	if errors.As(err, &targetErr) {
		return nil, err // names its fix
	}
	if !errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating sandbox %q: %w", id, err)
	}
	if ctr, ok := replaceOrphan(ctx, c, stateDir, id, img, opts, labels, more...); ok {
		return ctr, nil
	}
	name := sandboxName(id, labels)
	return nil, fmt.Errorf("a sandbox named %q already exists: choose another --name, or remove it with `sbxrun rm -f %s`", name, name)
}

// replaceOrphan removes an orphan named id and creates the new container,
// both under the namespace lock, so no gc can judge the old container and
// delete the new one in between.
func replaceOrphan(ctx context.Context, c *client.Client, stateDir, id string, img *images.Image, opts []ctrdoci.SpecOpts, labels map[string]string, more ...client.NewContainerOpts) (client.Container, bool) {
	unlock, err := lockNamespace(ctx, stateDir)
	if err != nil {
		return nil, false
	}
	defer unlock()
	if _, free, err := removeIfOrphan(ctx, c, id, stateDir); err != nil || !free {
		return nil, false
	}
	ctr, err := newContainer(ctx, c, id, img, opts, labels, more...)
	return ctr, err == nil
}

// newContainer creates the container on a snapshot key unique to this
// attempt, and removes that snapshot again when creation fails. more are
// applied after the spec is built.
func newContainer(ctx context.Context, c *client.Client, id string, img *images.Image, opts []ctrdoci.SpecOpts, labels map[string]string, more ...client.NewContainerOpts) (client.Container, error) {
	snap := id + "-" + randHex(4)
	var rootfs []mount.Mount
	ctr, err := c.NewContainer(ctx, id, append([]client.NewContainerOpts{
		client.WithImageName(img.Name()),
		withSnapshot(img, snap, &rootfs),
		client.WithContainerLabels(labels),
		client.WithNewSpec(append(slices.Clip(opts), withMountTargetsChecked(img.Name(), &rootfs))...),
	}, more...)...)
	if err != nil {
		_ = c.SnapshotService(img.Snapshotter).Remove(context.WithoutCancel(ctx), snap)
		return nil, err
	}
	return ctr, nil
}

// withSnapshot prepares the container's rootfs snapshot on the image's
// unpacked chain. It does what containerd's WithNewSnapshot does without
// its extra round trips (default-snapshotter label, capability
// introspection, rereading the image config), which are a visible share of
// a short run. It runs inside NewContainer's lease, and stores the
// snapshot's mounts in rootfs.
func withSnapshot(img *images.Image, key string, rootfs *[]mount.Mount) client.NewContainerOpts {
	return func(ctx context.Context, c *client.Client, ctr *containers.Container) error {
		mounts, err := c.SnapshotService(img.Snapshotter).Prepare(ctx, key, img.ChainID)
		if err != nil {
			return err
		}
		*rootfs = mounts
		ctr.Snapshotter = img.Snapshotter
		ctr.SnapshotKey = key
		ctr.Image = img.Name()
		return nil
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func logPath(stateDir, ns, id string) string {
	return filepath.Join(stateDir, "logs", ns, id+".log")
}

// classifyStart maps a failure to create or start the workload's process to
// 126 (cannot execute) or 127 (not found), with one readable line.
func classifyStart(what string, err error) error {
	msg := err.Error()
	detail := msg
	if i := strings.LastIndex(msg, "exec: "); i >= 0 {
		detail = strings.TrimSuffix(msg[i+len("exec: "):], ": unknown")
	}
	exec := strings.Contains(msg, "exec: ")
	switch {
	case exec && (strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory")):
		return withKind(ErrCommandNotFound, fmt.Errorf("command not found in the sandbox: %s", detail))
	case exec && (strings.Contains(msg, "permission denied") || strings.Contains(msg, "is a directory") || strings.Contains(msg, "exec format error")):
		return cannotExecDetail(detail)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// hintProfile adds the list of profiles to a failed pull of a bare name,
// which is most often a mistyped profile.
func (o *RunOptions) hintProfile(err error, p *prepared) error {
	if p.profile != "" || strings.ContainsAny(o.Target, "/:@.") || errors.Is(err, images.ErrNotPresent) {
		return err
	}
	profs, lerr := profiles.Load(o.Load)
	if lerr != nil {
		return err
	}
	return fmt.Errorf("%q is not a profile (%s) and pulling it as an image failed: %w", o.Target, strings.Join(profs.Names(), ", "), err)
}

// tracer prints how long each phase of a run took, with --debug.
type tracer struct {
	w    io.Writer
	last time.Time
}

func newTracer(on bool, w io.Writer) *tracer {
	if !on {
		return nil
	}
	if w == nil {
		w = os.Stderr
	}
	return &tracer{w: w, last: time.Now()}
}

func (t *tracer) mark(phase string) {
	if t == nil {
		return
	}
	now := time.Now()
	fmt.Fprintf(t.w, "sbxrun: debug: %-12s %6.1fms\n", phase, float64(now.Sub(t.last).Microseconds())/1000)
	t.last = now
}

// cgroup facts of this host, read once per process.
var (
	cgroupV2 = hostinfo.CgroupV2
	// swapAccounting is false on cgroup v1 hosts booted without swap
	// accounting, where runc fails on any swap limit.
	swapAccounting = sync.OnceValue(func() bool {
		if cgroupV2() {
			return true
		}
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		return err == nil
	})
)

// applyCgroupFacts adapts the sandbox to the host's cgroup setup: a private
// cgroup namespace on v2 (Docker's default there), and no swap limit on v1
// hosts without swap accounting.
func applyCgroupFacts(sb *oci.Sandbox) {
	if sb.NoCgroups || sb.CgroupsPath != "" {
		return
	}
	sb.CgroupNamespace = cgroupV2()
	sb.NoSwapLimit = !swapAccounting()
}

// signalRouter decides what a signal sbxrun receives does, by phase: before
// the task exists a terminating signal aborts the run; between create and
// start signals are held; after start they go to the workload (or, without
// sig-proxy, a terminating one stops it).
type signalRouter struct {
	ctx        context.Context
	cancel     context.CancelFunc
	con        console.Console
	proxy      bool
	stopOnTerm bool
	stop       func(client.Process)

	mu       sync.Mutex
	task     client.Process
	running  bool
	pending  []syscall.Signal
	early    syscall.Signal
	stopping bool
}

func (r *signalRouter) handle(sig syscall.Signal) {
	switch sig {
	case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPIPE:
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case sig == syscall.SIGWINCH:
		if r.task != nil && r.con != nil {
			resize(r.ctx, r.task, r.con)
		}
	case r.task == nil:
		if terminating(sig) && r.early == 0 {
			r.early = sig
			r.cancel()
		}
	case !r.running:
		r.pending = append(r.pending, sig)
	default:
		r.deliver(sig)
	}
}

// deliver is called with r.mu held.
func (r *signalRouter) deliver(sig syscall.Signal) {
	if r.proxy && !(r.stopOnTerm && (sig == syscall.SIGTERM || sig == syscall.SIGINT)) {
		_ = r.task.Kill(r.ctx, sig)
		return
	}
	if terminating(sig) && !r.stopping {
		r.stopping = true
		go r.stop(r.task)
	}
}

func (r *signalRouter) created(t client.Process) {
	r.mu.Lock()
	r.task = t
	r.mu.Unlock()
}

func (r *signalRouter) started() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = true
	for _, s := range r.pending {
		r.deliver(s)
	}
	r.pending = nil
}

// process is the task or exec process signals go to, once it exists.
func (r *signalRouter) process() client.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.task
}

// listen routes every signal sbxrun receives until stop is called.
func (r *signalRouter) listen() (stop func()) {
	sigc := make(chan os.Signal, 128)
	signal.Notify(sigc)
	go func() {
		for s := range sigc {
			if sig, ok := s.(syscall.Signal); ok {
				r.handle(sig)
			}
		}
	}()
	return func() {
		signal.Stop(sigc)
		close(sigc)
	}
}

// terminal is the console of stdin, or of stdout, for -t; without one, an
// error that names the fix (Docker: "the input device is not a TTY").
func terminal() (console.Console, error) {
	for _, f := range []*os.File{os.Stdin, os.Stdout} {
		if c, err := console.ConsoleFromFile(f); err == nil {
			return c, nil
		}
	}
	return nil, errors.New("-t needs a terminal and neither stdin nor stdout is one: drop -t (CI jobs have no terminal)")
}

// pipeWatch passes writes through and notices when the reader went away
// (`sbxrun ... | head`): the workload is then killed instead of blocking
// forever on a full pipe, and sbxrun exits 141 as a shell pipeline would.
type pipeWatch struct {
	w       io.Writer
	once    sync.Once
	broken  atomic.Bool
	onBreak func()
}

func (p *pipeWatch) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.broken.Store(true)
		p.once.Do(p.onBreak)
	}
	return n, err
}

func (r *signalRouter) earlySignal() syscall.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.early
}

// drainIO waits (bounded) until the workload's output has been copied out.
// Task.Delete cancels the client's FIFO copies, which closes the FIFOs; under
// load that can happen before the last output of a short-lived workload was
// read, and the output is lost. The copies end by themselves at EOF, once the
// workload and everything holding its stdout have exited.
func drainIO(p client.Process) {
	pio := p.IO()
	if pio == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		pio.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// rootlessLimits applies the rootless cgroup policy: limits are enforced
// under the user's delegated cgroup where the host offers one; elsewhere a
// run that asks for a limit is refused (exit 125, with the reason and the
// fix) unless best-effort limits were asked for, and then it runs without
// them after one warning line. Never silently unlimited.
func (o *RunOptions) rootlessLimits(sb *oci.Sandbox, res *profiles.Resolved) error {
	if !rootless.Active() {
		return nil
	}
	if sb.User == "" {
		// The namespace's root is the invoking user: run as it unless told
		// otherwise, so files written to the workspace are the user's (an
		// image's uid 1000 would be a subordinate id that cannot write
		// them).
		sb.User = "0:0"
	}
	sb.BindSys = sb.Network == "" || sb.Network == "host"
	support := rootless.Limits()
	if support.OK {
		sb.CgroupsPath = support.Parent + "/sbxrun/" + sb.Namespace + "-" + sb.ID
		return nil
	}
	sb.NoCgroups = true
	var asked []string
	if sb.Memory > 0 {
		asked = append(asked, "--memory")
	}
	if sb.MemorySwap > 0 {
		asked = append(asked, "--memory-swap")
	}
	if sb.CPUs > 0 {
		asked = append(asked, "--cpus")
	}
	if sb.PidsLimit > 0 {
		asked = append(asked, "--pids-limit")
	}
	if len(asked) == 0 {
		return nil
	}
	what := strings.Join(asked, ", ")
	if res.Profile.BestEffortLimits == nil || !*res.Profile.BestEffortLimits {
		return fmt.Errorf("rootless sbxrun cannot enforce %s here: %s; or pass --best-effort-limits (profile key best_effort_limits: true) to run without them", what, support.Reason)
	}
	o.notef("warning: %s not enforced (--best-effort-limits): %s", what, firstClause(support.Reason))
	sb.Memory, sb.MemorySwap, sb.CPUs, sb.PidsLimit = 0, 0, 0, 0
	return nil
}

func firstClause(s string) string {
	if i := strings.Index(s, ";"); i >= 0 {
		return s[:i]
	}
	return s
}

// applyImageHome resolves "~" in mount targets and the workdir that the
// profile left to the image (no user and no HOME set): the image's HOME,
// else the home of the image's user (/root for root, /home/NAME for a
// name), else /root.
func applyImageHome(sb *oci.Sandbox, img ocispec.ImageConfig) {
	home := ""
	for _, kv := range img.Env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok && path.IsAbs(v) {
			home = path.Clean(v)
		}
	}
	if home == "" {
		name, _, _ := strings.Cut(img.User, ":")
		switch {
		case name == "" || name == "root" || name == "0" || strings.Trim(name, "0123456789") == "":
			home = "/root"
		default:
			home = "/home/" + name
		}
	}
	swap := func(p string) string {
		if rest, ok := strings.CutPrefix(p, profiles.HomeMarker); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			return path.Join(home, rest)
		}
		return p
	}
	for i := range sb.Mounts {
		sb.Mounts[i].Destination = swap(sb.Mounts[i].Destination)
	}
	sb.Workdir = swap(sb.Workdir)
}
