package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sbxrun/sbxrun/compose"
	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// A compose project is a set of sandboxes run by the same path as `sbxrun
// run`: each service becomes RunOptions (its Flags the service's keys, as
// flags would be) and goes through Run. What a project adds is ordering,
// health, restart policies, its network and volumes, and a record of what
// it created so that `down` removes exactly that.

// ProjectOptions is one compose command on a planned project.
type ProjectOptions struct {
	Global
	// Plan is the project, mapped (compose.Project.Plan).
	Plan *compose.Plan
	// CDISpecDirs are --cdi-spec-dir.
	CDISpecDirs []string
	// Stdout and Stderr are where the command writes; nil are os.Std*.
	Stdout, Stderr io.Writer
}

func (o *ProjectOptions) out() io.Writer {
	if o.Stdout == nil {
		return os.Stdout
	}
	return o.Stdout
}

func (o *ProjectOptions) errw() io.Writer {
	if o.Stderr == nil {
		return os.Stderr
	}
	return o.Stderr
}

// ProjectVolumesDir is where named volumes live: $SBXRUN_VOLUMES_DIR, else
// beside the state directory (/var/lib/sbxrun-volumes for root). Not inside
// it: sbxrun's own state is never a bind source (oci's unsafe sources).
func ProjectVolumesDir(g *Global) string {
	if d := os.Getenv("SBXRUN_VOLUMES_DIR"); d != "" {
		return d
	}
	sd := filepath.Clean(g.stateDir())
	return sd + "-volumes"
}

// ServiceRunOptions are the run options of service s, as up runs it:
// what `kube generate --compose` resolves.
func (o *ProjectOptions) ServiceRunOptions(s *compose.Service) *RunOptions { return o.runOptions(s) }

// runOptions is the `sbxrun run` a service is.
func (o *ProjectOptions) runOptions(s *compose.Service) *RunOptions {
	flags := *s.Flags
	return &RunOptions{
		Global:         o.Global,
		Target:         s.Image,
		Args:           s.Args,
		Flags:          &flags,
		Name:           s.Container,
		Remove:         false,
		Detach:         true,
		OOMScoreAdj:    s.OOMScoreAdj,
		CDISpecDirs:    o.CDISpecDirs,
		Host:           profiles.HostEnv{Cwd: o.Plan.Dir},
		Stdin:          strings.NewReader(""),
		Stdout:         io.Discard,
		Stderr:         o.errw(),
		Publish:        s.Publish,
		NetworkAliases: s.Aliases,
	}
}

// projectRecord is what a project created, written before it is created,
// so that a killed `up` leaves nothing `down` does not know of.
type projectRecord struct {
	Project  string   `json:"project"`
	Dir      string   `json:"dir"`
	Networks []string `json:"networks,omitempty"`
	Volumes  []string `json:"volumes,omitempty"`
}

func (o *ProjectOptions) recordPath() string {
	return filepath.Join(o.stateDir(), "compose", o.namespace(), o.Plan.Project+".json")
}

func (o *ProjectOptions) readRecord() (*projectRecord, error) {
	r := &projectRecord{Project: o.Plan.Project, Dir: o.Plan.Dir}
	b, err := os.ReadFile(o.recordPath())
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("project record %q: %w: remove it and the project's sandboxes (`sbxrun ps -a`)", o.recordPath(), err)
	}
	return r, nil
}

func (o *ProjectOptions) writeRecord(r *projectRecord) error {
	p := o.recordPath()
	if len(r.Networks) == 0 && len(r.Volumes) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// lock serializes the commands that change one project.
func (o *ProjectOptions) lock() (func(), error) {
	p := filepath.Join(o.stateDir(), "compose", o.namespace(), o.Plan.Project+".lock")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("creating compose state directory: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }) }, nil
}

// members are the project's sandboxes, by container name.
func (o *ProjectOptions) members(ctx context.Context) (map[string]Sandbox, error) {
	list, err := List(ctx, &o.Global, true)
	if err != nil {
		return nil, err
	}
	out := map[string]Sandbox{}
	for _, s := range list {
		if s.Labels[compose.LabelProject] == o.Plan.Project {
			out[s.Name] = s
		}
	}
	return out, nil
}

// Preflight validates every service as the run it will be, before
// anything is created: a bad service is refused with nothing made. Named
// volumes and directories still to be created are checked as tmpfs (their
// directories come with the run), the network as none (it comes with up).
func (o *ProjectOptions) Preflight(services []*compose.Service) error {
	for _, s := range services {
		ro := o.runOptions(s)
		f := *ro.Flags
		f.Mounts = nil
		for _, m := range s.Flags.Mounts {
			if m.Create {
				if _, err := os.Stat(m.Source); err != nil {
					m = profiles.MountSpec{Type: "tmpfs", Target: m.Target}
				}
			}
			f.Mounts = append(f.Mounts, m)
		}
		if f.Network != nil && *f.Network != "host" {
			none := "none"
			f.Network = &none
			// Written into the files the network comes with (checked
			// when the service was mapped): not for the stand-in.
			f.AddHosts, f.DNS, f.DNSSearch, f.DNSOptions = nil, nil, nil, nil
		}
		for _, p := range s.Publish {
			if _, err := network.ParsePublish(p); err != nil {
				return fmt.Errorf("service %q: ports: %w", s.Name, err)
			}
		}
		for _, a := range s.Aliases {
			if err := network.CheckAlias(a); err != nil {
				return fmt.Errorf("service %q: %w", s.Name, err)
			}
		}
		ro.Flags = &f
		ro.Publish, ro.NetworkAliases = nil, nil
		if _, err := ro.ServiceFacts(); err != nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
	}
	return nil
}

// UpOptions are `compose up`'s.
type UpOptions struct {
	// Services limits up to these and their dependencies (the plan
	// already holds only those).
	Services []string
	// Detach returns once the services are started.
	Detach bool
	// Wait (with Detach) returns once every service runs and is healthy.
	Wait bool
	// WaitTimeout bounds Wait; 0 is no bound.
	WaitTimeout time.Duration
}

// ProjectUp creates the project's network and volumes and starts its
// services in dependency order, each with runtime.Run. A service whose
// sandbox already runs with the same configuration is left as it is;
// another one of the project's is replaced. In the foreground it prints the
// services' output, honours their restart policies, and stops them on
// SIGINT or SIGTERM.
func ProjectUp(ctx context.Context, o *ProjectOptions, u UpOptions) error {
	plan := o.Plan
	for _, w := range plan.Warnings {
		fmt.Fprintln(o.errw(), "sbxrun: warning: "+w)
	}
	unlock, members, err := o.begin(ctx, plan.Services)
	if err != nil {
		return err
	}
	defer unlock()
	// A name taken by a sandbox of no project, or of another, is refused
	// before anything is created.
	all, err := List(ctx, &o.Global, true)
	if err != nil {
		return err
	}
	for _, s := range plan.Services {
		for _, x := range all {
			if x.Name == s.Container && x.Labels[compose.LabelProject] != plan.Project {
				return fmt.Errorf("service %q: a sandbox named %q exists and is not this project's: remove it (`sbxrun rm -f %s`) or set container_name", s.Name, s.Container, s.Container)
			}
		}
	}
	if err := o.ensureResources(); err != nil {
		return err
	}
	if u.Detach || u.Wait {
		for _, s := range plan.Services {
			if r := s.Restart; r != "" && r != "no" {
				fmt.Fprintf(o.errw(), "sbxrun: service %q: restart: %s is honoured while `sbxrun compose up` runs in the foreground; with -d nothing restarts it (see README, Compose)\n", s.Name, r)
			}
		}
	}
	h := newHealth()
	for _, s := range plan.Services {
		if err := o.waitDeps(ctx, s, h); err != nil {
			return err
		}
		if err := o.converge(ctx, s, members[s.Container]); err != nil {
			return err
		}
		if s.Health != nil {
			h.watch(ctx, o, s)
		}
	}
	if u.Wait {
		wctx := ctx
		if u.WaitTimeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, u.WaitTimeout)
			defer cancel()
		}
		for _, s := range plan.Services {
			if err := o.waitReady(wctx, s, h); err != nil {
				return err
			}
		}
	}
	if u.Detach || u.Wait {
		return nil
	}
	unlock()
	return o.foreground(ctx, h)
}

// begin checks services as up would run them (Preflight), then takes the
// project's lock and lists its sandboxes by name. unlock may be called
// more than once.
func (o *ProjectOptions) begin(ctx context.Context, services []*compose.Service) (unlock func(), members map[string]Sandbox, err error) {
	if err := o.Preflight(services); err != nil {
		return nil, nil, err
	}
	if unlock, err = o.lock(); err != nil {
		return nil, nil, err
	}
	if members, err = o.members(ctx); err != nil {
		unlock()
		return nil, nil, err
	}
	return unlock, members, nil
}

// ensureResources records, then creates, the project's networks; named
// volume directories are created by the runs that mount them (create).
func (o *ProjectOptions) ensureResources() error {
	rec, err := o.readRecord()
	if err != nil {
		return err
	}
	changed := false
	for _, n := range o.Plan.Networks {
		if n.External || slices.Contains(rec.Networks, n.Name) {
			continue
		}
		if _, _, err := InspectNetwork(NetworkOptions{Global: o.Global, Name: n.Name}); err == nil {
			continue // someone else's: used, never removed by this project
		}
		rec.Networks = append(rec.Networks, n.Name)
		changed = true
	}
	for _, v := range o.Plan.Volumes {
		if !v.External && !slices.Contains(rec.Volumes, v.Dir) {
			rec.Volumes = append(rec.Volumes, v.Dir)
			changed = true
		}
	}
	if changed {
		if err := o.writeRecord(rec); err != nil {
			return fmt.Errorf("recording the project: %w", err)
		}
	}
	for _, n := range o.Plan.Networks {
		if _, _, err := InspectNetwork(NetworkOptions{Global: o.Global, Name: n.Name}); err == nil {
			continue
		}
		if n.External {
			return fmt.Errorf("network %q is external and does not exist: create it with `sbxrun network create %s`", n.Name, n.Name)
		}
		if _, err := CreateNetwork(NetworkOptions{Global: o.Global, Name: n.Name, Subnet: n.Subnet, Internal: n.Internal}); err != nil {
			return fmt.Errorf("network %q: %w", n.Key, err)
		}
		fmt.Fprintf(o.errw(), "sbxrun: network %s created\n", n.Name)
	}
	for _, v := range o.Plan.Volumes {
		if v.External {
			if _, err := os.Stat(v.Dir); err != nil {
				return fmt.Errorf("volume %q is external and %q does not exist: create that directory", v.Key, v.Dir)
			}
		}
	}
	return nil
}

// converge makes service s run with its configuration: kept when its
// sandbox runs with the same config hash, else (re)created.
func (o *ProjectOptions) converge(ctx context.Context, s *compose.Service, have Sandbox) error {
	if have.Name != "" {
		if have.Status == "running" && have.Labels[compose.LabelConfigHash] == s.ConfigHash {
			fmt.Fprintf(o.errw(), "sbxrun: %s running\n", s.Container)
			return nil
		}
		if err := Remove(ctx, &o.Global, []string{s.Container}, true); err != nil {
			return fmt.Errorf("service %q: replacing %s: %w", s.Name, s.Container, err)
		}
	}
	return o.start(ctx, s)
}

// start runs service s detached, through Run.
func (o *ProjectOptions) start(ctx context.Context, s *compose.Service) error {
	ro := o.runOptions(s)
	if err := Run(ctx, ro); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && ee.Err != nil {
			return &ExitError{Code: ee.Code, Err: fmt.Errorf("service %q: %w", s.Name, ee.Err)}
		}
		if ee == nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
		return err
	}
	fmt.Fprintf(o.errw(), "sbxrun: %s started\n", s.Container)
	return nil
}

// status is a service's sandbox now: "" when there is none.
func (o *ProjectOptions) status(ctx context.Context, s *compose.Service) (Sandbox, error) {
	list, err := List(ctx, &o.Global, true)
	if err != nil {
		return Sandbox{}, err
	}
	for _, x := range list {
		if x.Name == s.Container && x.Labels[compose.LabelProject] == o.Plan.Project {
			return x, nil
		}
	}
	return Sandbox{}, nil
}

// waitDeps waits for the conditions of s's depends_on.
func (o *ProjectOptions) waitDeps(ctx context.Context, s *compose.Service, h *health) error {
	for _, name := range sortedDeps(s.DependsOn) {
		d := s.DependsOn[name]
		dep := o.Plan.Service(name)
		if dep == nil {
			continue
		}
		switch d.Condition {
		case "service_healthy":
			fmt.Fprintf(o.errw(), "sbxrun: %s waits for %s to be healthy\n", s.Name, name)
			if err := h.waitHealthy(ctx, o, dep); err != nil {
				return fmt.Errorf("service %q depends on %q: %w", s.Name, name, err)
			}
		case "service_completed_successfully":
			fmt.Fprintf(o.errw(), "sbxrun: %s waits for %s to complete\n", s.Name, name)
			for {
				st, err := o.status(ctx, dep)
				if err != nil {
					return err
				}
				if st.Status == "stopped" && st.Exit != nil {
					if *st.Exit != 0 {
						return fmt.Errorf("service %q depends on %q completing successfully, and it exited with status %d: `sbxrun compose logs %s` shows why", s.Name, name, *st.Exit, name)
					}
					break
				}
				if st.Name == "" {
					return fmt.Errorf("service %q depends on %q, which has no sandbox", s.Name, name)
				}
				if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sortedDeps(m map[string]compose.Dependency) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// waitReady is up --wait for one service: running, and healthy when it
// has a healthcheck; a service that exits with 0 and that others wait to
// complete counts as ready.
func (o *ProjectOptions) waitReady(ctx context.Context, s *compose.Service, h *health) error {
	if s.Health != nil {
		if err := h.waitHealthy(ctx, o, s); err != nil {
			return fmt.Errorf("service %q is not healthy: %w", s.Name, err)
		}
		return nil
	}
	st, err := o.status(ctx, s)
	if err != nil {
		return err
	}
	switch {
	case st.Status == "running":
		return nil
	case st.Status == "stopped" && st.Exit != nil && *st.Exit == 0 && o.completes(s.Name):
		return nil
	case st.Exit != nil:
		return fmt.Errorf("service %q is not running: it exited with status %d: `sbxrun compose logs %s` shows why", s.Name, *st.Exit, s.Name)
	}
	return fmt.Errorf("service %q is not running (%s): `sbxrun compose logs %s` shows why", s.Name, st.Status, s.Name)
}

// completes reports whether some service waits for name to complete.
func (o *ProjectOptions) completes(name string) bool {
	for _, s := range o.Plan.Services {
		if d, ok := s.DependsOn[name]; ok && d.Condition == "service_completed_successfully" {
			return true
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// health tracks the healthchecks up runs, by service.
type health struct {
	mu    sync.Mutex
	state map[string]*healthState
}

type healthState struct {
	status  string // starting, healthy, unhealthy
	last    string // the last failing check's output
	changed chan struct{}
}

func newHealth() *health { return &health{state: map[string]*healthState{}} }

// watch runs s's healthcheck in the background as Compose does: every
// StartInterval during StartPeriod (failures there do not count), then
// every Interval; Retries failures in a row make it unhealthy, one success
// healthy.
func (h *health) watch(ctx context.Context, o *ProjectOptions, s *compose.Service) {
	h.mu.Lock()
	st := &healthState{status: "starting", changed: make(chan struct{})}
	h.state[s.Name] = st
	h.mu.Unlock()
	go func() {
		start := time.Now()
		fails := 0
		for ctx.Err() == nil {
			inStart := time.Since(start) < s.Health.StartPeriod
			ok, out := RunHealthcheck(ctx, &o.Global, s.Container, s.Health)
			h.mu.Lock()
			prev := st.status
			switch {
			case ok:
				st.status, fails = "healthy", 0
			case !inStart:
				fails++
				st.last = out
				if fails >= max(s.Health.Retries, 1) {
					st.status = "unhealthy"
				}
			}
			if st.status != prev {
				close(st.changed)
				st.changed = make(chan struct{})
			}
			h.mu.Unlock()
			wait := s.Health.Interval
			if inStart {
				wait = s.Health.StartInterval
			}
			if sleepCtx(ctx, wait) != nil {
				return
			}
		}
	}()
}

// waitHealthy waits until s is healthy, or fails when it is unhealthy or
// its sandbox stopped.
func (h *health) waitHealthy(ctx context.Context, o *ProjectOptions, s *compose.Service) error {
	h.mu.Lock()
	st := h.state[s.Name]
	h.mu.Unlock()
	if st == nil {
		// Started by an earlier up: watch it now.
		h.watch(ctx, o, s)
		h.mu.Lock()
		st = h.state[s.Name]
		h.mu.Unlock()
	}
	for {
		h.mu.Lock()
		status, last, ch := st.status, st.last, st.changed
		h.mu.Unlock()
		switch status {
		case "healthy":
			return nil
		case "unhealthy":
			if last != "" {
				return fmt.Errorf("its healthcheck failed %d times, last with: %s", max(s.Health.Retries, 1), last)
			}
			return fmt.Errorf("its healthcheck failed %d times", max(s.Health.Retries, 1))
		}
		if sb, err := o.status(ctx, s); err == nil && sb.Status != "running" {
			code := ""
			if sb.Exit != nil {
				code = fmt.Sprintf(" with status %d", *sb.Exit)
			}
			return fmt.Errorf("its sandbox %s stopped%s before it was healthy", s.Container, code)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy in time (%v)", ctx.Err())
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// RunHealthcheck runs a healthcheck once in sandbox name, bounded by its
// timeout, and returns whether it passed and, when not, its output's last
// line.
func RunHealthcheck(ctx context.Context, g *Global, name string, hc *compose.Health) (bool, string) {
	cmd := hc.Command()
	if len(cmd) == 0 {
		return false, "empty healthcheck test"
	}
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Exec(context.WithoutCancel(ctx), g, &ExecOptions{Name: name, Args: cmd, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out})
	}()
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	select {
	case err := <-done:
		if err == nil {
			return true, ""
		}
		msg := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg == "" {
			msg = errorText(err)
		}
		return false, msg
	case <-time.After(timeout):
		return false, fmt.Sprintf("timed out after %v", timeout)
	case <-ctx.Done():
		return false, ctx.Err().Error()
	}
}

func errorText(err error) string {
	var ee *ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return fmt.Sprintf("exit status %d", ee.Code)
	}
	return err.Error()
}

// foreground prints the services' logs, prefixed, restarts services by
// their policy, and stops them all when ctx ends (SIGINT, SIGTERM).
func (o *ProjectOptions) foreground(ctx context.Context, h *health) error {
	out := &lockedWriter{w: o.out()}
	var wg sync.WaitGroup
	lctx, cancelLogs := context.WithCancel(context.WithoutCancel(ctx))
	width := 0
	for _, s := range o.Plan.Services {
		width = max(width, len(s.Container))
	}
	follow := func(s *compose.Service) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.followLog(lctx, s, width, out)
		}()
	}
	for _, s := range o.Plan.Services {
		follow(s)
	}
	restarts := map[string]int{}
	for ctx.Err() == nil {
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			break
		}
		running := 0
		for _, s := range o.Plan.Services {
			st, err := o.status(ctx, s)
			if err != nil || st.Name == "" {
				continue
			}
			if st.Status == "running" {
				running++
				continue
			}
			if st.Status != "stopped" || st.Exit == nil {
				continue
			}
			if !shouldRestart(s.Restart, *st.Exit, restarts[s.Name]) {
				continue
			}
			restarts[s.Name]++
			fmt.Fprintf(o.errw(), "sbxrun: %s exited with status %d: restarting (restart: %s)\n", s.Container, *st.Exit, s.Restart)
			if err := Remove(ctx, &o.Global, []string{s.Container}, true); err != nil {
				fmt.Fprintf(o.errw(), "sbxrun: %s: %v\n", s.Container, err)
				continue
			}
			if err := o.start(ctx, s); err != nil {
				fmt.Fprintf(o.errw(), "sbxrun: %s\n", errorText(err))
				continue
			}
			follow(s)
			running++
		}
		if running == 0 {
			break // everything ended and nothing restarts
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(o.errw(), "sbxrun: stopping the project's services")
		stopCtx := context.WithoutCancel(ctx)
		for i := len(o.Plan.Services) - 1; i >= 0; i-- {
			_ = Stop(stopCtx, &o.Global, o.Plan.Services[i].Container, -1)
		}
	}
	time.Sleep(300 * time.Millisecond)
	cancelLogs()
	wg.Wait()
	return nil
}

// shouldRestart applies a restart policy to an exit.
func shouldRestart(policy string, code, restarts int) bool {
	switch {
	case policy == "always" || policy == "unless-stopped":
		return true
	case policy == "on-failure":
		return code != 0
	case strings.HasPrefix(policy, "on-failure:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(policy, "on-failure:"))
		return code != 0 && restarts < n
	}
	return false
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}

// followLog copies a service's log, prefixed with its name, until ctx ends
// or the sandbox stops.
func (o *ProjectOptions) followLog(ctx context.Context, s *compose.Service, width int, w io.Writer) {
	pw := &prefixWriter{prefix: fmt.Sprintf("%-*s | ", width, s.Container), w: w}
	_ = Logs(ctx, &o.Global, s.Container, true, pw)
	pw.flush()
}

// ProjectLogs writes the services' logs (all when services is empty),
// each line prefixed with its sandbox, following them with follow.
func ProjectLogs(ctx context.Context, o *ProjectOptions, services []string, follow bool) error {
	svcs, err := o.selected(services)
	if err != nil {
		return err
	}
	width := 0
	for _, s := range svcs {
		width = max(width, len(s.Container))
	}
	out := &lockedWriter{w: o.out()}
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	for _, s := range svcs {
		pw := &prefixWriter{prefix: fmt.Sprintf("%-*s | ", width, s.Container), w: out}
		if len(svcs) == 1 {
			pw.prefix = ""
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := Logs(ctx, &o.Global, s.Container, follow, pw)
			pw.flush()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("service %q: %w", s.Name, err))
				mu.Unlock()
			}
		}()
		if !follow {
			wg.Wait() // one service after the other
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return withCode(ExitFailed, errors.Join(errs...))
	}
	return nil
}

// selected are the planned services named (all when none).
func (o *ProjectOptions) selected(names []string) ([]*compose.Service, error) {
	if len(names) == 0 {
		return o.Plan.Services, nil
	}
	var out []*compose.Service
	for _, n := range names {
		s := o.Plan.Service(n)
		if s == nil {
			return nil, fmt.Errorf("no service %q in project %q: `sbxrun compose config --services` lists them", n, o.Plan.Project)
		}
		out = append(out, s)
	}
	return out, nil
}

// DownOptions are `compose down`'s.
type DownOptions struct {
	// Volumes removes the project's named volumes too.
	Volumes bool
	// RemoveOrphans removes sandboxes of the project no service of the
	// file describes any more.
	RemoveOrphans bool
}

// ProjectDown stops and removes the project's sandboxes, then the networks
// it created, and with Volumes its volumes: exactly what the project
// created (its labels and its record), never a bind source, an external
// network or volume, or another project's.
func ProjectDown(ctx context.Context, o *ProjectOptions, d DownOptions) error {
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	members, err := o.members(ctx)
	if err != nil {
		return err
	}
	var errs []error
	// Dependents first.
	for i := len(o.Plan.Services) - 1; i >= 0; i-- {
		s := o.Plan.Services[i]
		if _, ok := members[s.Container]; !ok {
			continue
		}
		_ = Stop(ctx, &o.Global, s.Container, -1)
		if err := Remove(ctx, &o.Global, []string{s.Container}, true); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.errw(), "sbxrun: %s removed\n", s.Container)
		delete(members, s.Container)
	}
	for name, m := range members {
		if o.Plan.Service(m.Labels[compose.LabelService]) != nil && m.Labels[compose.LabelOneoff] != "True" {
			continue
		}
		if !d.RemoveOrphans && m.Labels[compose.LabelOneoff] != "True" {
			fmt.Fprintf(o.errw(), "sbxrun: warning: %s is the project's, of a service the file no longer has: `down --remove-orphans` removes it\n", name)
			continue
		}
		if err := Remove(ctx, &o.Global, []string{name}, true); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.errw(), "sbxrun: %s removed\n", name)
	}
	// A killed `up` may have left the lease that held a service's snapshot
	// before its sandbox existed: down leaves nothing of the project.
	if err := dropDeadLeases(ctx, &o.Global); err != nil {
		errs = append(errs, err)
	}
	rec, err := o.readRecord()
	if err != nil {
		return err
	}
	var keepNets []string
	for _, n := range rec.Networks {
		if err := RemoveNetwork(NetworkOptions{Global: o.Global, Name: n}); err != nil {
			if _, _, ierr := InspectNetwork(NetworkOptions{Global: o.Global, Name: n}); ierr != nil {
				continue // gone already
			}
			keepNets = append(keepNets, n)
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.errw(), "sbxrun: network %s removed\n", n)
	}
	rec.Networks = keepNets
	if d.Volumes {
		var keep []string
		for _, v := range rec.Volumes {
			if err := os.RemoveAll(v); err != nil {
				keep = append(keep, v)
				errs = append(errs, fmt.Errorf("removing volume %q: %w", v, err))
				continue
			}
			fmt.Fprintf(o.errw(), "sbxrun: volume %s removed\n", filepath.Base(v))
		}
		rec.Volumes = keep
	}
	if err := o.writeRecord(rec); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return withCode(ExitFailed, errors.Join(errs...))
	}
	return nil
}

// ProjectService is one row of `compose ps`.
type ProjectService struct {
	Name    string `json:"Name"`
	Service string `json:"Service"`
	Image   string `json:"Image"`
	State   string `json:"State"`
	Health  string `json:"Health"`
	// ExitCode is the exit status of a stopped sandbox.
	ExitCode *int   `json:"ExitCode,omitempty"`
	Ports    string `json:"Publishers"`
}

// ProjectPs lists the project's sandboxes, by name, with state, health
// (its healthcheck run once now) and published ports.
func ProjectPs(ctx context.Context, o *ProjectOptions) ([]ProjectService, error) {
	members, err := o.members(ctx)
	if err != nil {
		return nil, err
	}
	rows := []ProjectService{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		r := ProjectService{Name: m.Name, Service: m.Labels[compose.LabelService], Image: m.Image, State: m.Status, ExitCode: m.Exit, Ports: m.Ports}
		if s := o.Plan.Service(r.Service); s != nil && s.Health != nil && m.Status == "running" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _ := RunHealthcheck(ctx, &o.Global, m.Name, s.Health)
				mu.Lock()
				defer mu.Unlock()
				r.Health = map[bool]string{true: "healthy", false: "unhealthy"}[ok]
				rows = append(rows, r)
			}()
			continue
		}
		mu.Lock()
		rows = append(rows, r)
		mu.Unlock()
	}
	wg.Wait()
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows, nil
}

// ProjectStop stops services (all when none), dependents first.
func ProjectStop(ctx context.Context, o *ProjectOptions, services []string) error {
	svcs, err := o.selected(services)
	if err != nil {
		return err
	}
	members, err := o.members(ctx)
	if err != nil {
		return err
	}
	for i := len(svcs) - 1; i >= 0; i-- {
		s := svcs[i]
		if _, ok := members[s.Container]; !ok {
			continue
		}
		if err := Stop(ctx, &o.Global, s.Container, -1); err != nil {
			return err
		}
		fmt.Fprintf(o.errw(), "sbxrun: %s stopped\n", s.Container)
	}
	return nil
}

// ProjectStart starts services (all when none) whose sandboxes are not
// running, in dependency order. A stopped sandbox is created anew from
// its image (volumes and binds keep the data; its root filesystem's
// changes do not survive, unlike Docker's start).
func ProjectStart(ctx context.Context, o *ProjectOptions, services []string) error {
	svcs, err := o.selected(services)
	if err != nil {
		return err
	}
	unlock, members, err := o.begin(ctx, svcs)
	if err != nil {
		return err
	}
	defer unlock()
	if err := o.ensureResources(); err != nil {
		return err
	}
	h := newHealth()
	for _, s := range o.Plan.Services {
		if !slices.Contains(svcs, s) {
			continue
		}
		if err := o.waitDeps(ctx, s, h); err != nil {
			return err
		}
		m := members[s.Container]
		if m.Status == "running" {
			continue
		}
		m.Labels = nil // re-create even with the same config
		if err := o.converge(ctx, s, m); err != nil {
			return err
		}
	}
	return nil
}

// ProjectRestart stops, then starts, services.
func ProjectRestart(ctx context.Context, o *ProjectOptions, services []string) error {
	if err := ProjectStop(ctx, o, services); err != nil {
		return err
	}
	return ProjectStart(ctx, o, services)
}

// ProjectExec runs a command in a service's running sandbox.
func ProjectExec(ctx context.Context, o *ProjectOptions, service string, e *ExecOptions) error {
	s := o.Plan.Service(service)
	if s == nil {
		return fmt.Errorf("no service %q in project %q: `sbxrun compose config --services` lists them", service, o.Plan.Project)
	}
	e.Name = s.Container
	return Exec(ctx, &o.Global, e)
}

// ProjectRunOptions are `compose run`'s.
type ProjectRunOptions struct {
	// Service to run.
	Service string
	// Args replace the service's command when given.
	Args []string
	// Remove deletes the sandbox when it ends (--rm).
	Remove bool
	// TTY and Interactive attach the terminal.
	TTY, Interactive bool
}

// ProjectRun runs a one-off sandbox of a service, attached, with the
// service's configuration but no published ports (as Compose), after
// starting what it depends on.
func ProjectRun(ctx context.Context, o *ProjectOptions, r ProjectRunOptions) error {
	s := o.Plan.Service(r.Service)
	if s == nil {
		return fmt.Errorf("no service %q in project %q: `sbxrun compose config --services` lists them", r.Service, o.Plan.Project)
	}
	var deps []string
	for d := range s.DependsOn {
		deps = append(deps, d)
	}
	if len(deps) > 0 {
		if err := ProjectStart(ctx, o, deps); err != nil {
			return err
		}
	} else if err := o.ensureResources(); err != nil {
		return err
	}
	ro := o.runOptions(s)
	flags := *ro.Flags
	flags.Labels = map[string]string{}
	for k, v := range s.Flags.Labels {
		flags.Labels[k] = v
	}
	flags.Labels[compose.LabelOneoff] = "True"
	ro.Flags = &flags
	ro.Name = fmt.Sprintf("%s-%s-run-%s", o.Plan.Project, s.Name, randHex(6))
	ro.Publish = nil
	ro.Detach = false
	ro.Remove = r.Remove
	ro.TTY, ro.Interactive = r.TTY, r.Interactive
	ro.SigProxy = true
	ro.Stdin, ro.Stdout = nil, o.Stdout
	if len(r.Args) > 0 {
		ro.Args = r.Args
	}
	return Run(ctx, ro)
}

// ProjectPull pulls the services' images.
func ProjectPull(ctx context.Context, o *ProjectOptions, services []string) error {
	svcs, err := o.selected(services)
	if err != nil {
		return err
	}
	var refs []string
	for _, s := range svcs {
		if !slices.Contains(refs, s.Image) {
			refs = append(refs, s.Image)
		}
	}
	return PullImages(ctx, &o.Global, PullOptions{Targets: refs, Stdout: o.out(), Stderr: o.errw()})
}

// ProjectSpec writes the OCI spec a service's sandbox gets, exactly as
// `sbxrun spec` does for the equivalent flags.
func ProjectSpec(ctx context.Context, o *ProjectOptions, service string, w io.Writer) error {
	s := o.Plan.Service(service)
	if s == nil {
		return fmt.Errorf("no service %q in project %q", service, o.Plan.Project)
	}
	ro := o.runOptions(s)
	ro.Detach = false
	return Spec(ctx, ro, w)
}
