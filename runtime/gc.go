package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/oci"
)

// GC removes the sandboxes whose owner is gone: attached runs whose sbxrun
// was killed, and detached --rm sandboxes whose workload has ended. It never
// touches a sandbox whose sbxrun is alive, one kept with --rm=false, nor any
// bind-mount source or cache. It prints one line per removed sandbox.
func GC(ctx context.Context, g *Global, out io.Writer) error {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	addr := ResolveAddress(g.Address)
	removed, err := collect(ctx, c, g.stateDir())
	if more, _ := collectMarked(ctx, c, g.stateDir(), addr, "", 0); len(more) > 0 {
		removed = append(removed, more...)
	}
	for _, id := range removed {
		fmt.Fprintf(out, "removed %s\n", id)
	}
	n, lerr := dropDeadRunLeases(ctx, c)
	if n > 0 {
		fmt.Fprintf(out, "removed %d lease(s) of killed runs\n", n)
	}
	shims, runcs, serr := reapShimsLocked(ctx, c, g.stateDir(), addr)
	for _, id := range shims {
		fmt.Fprintf(out, "stopped the orphaned shim of %s\n", id)
	}
	for _, id := range runcs {
		fmt.Fprintf(out, "removed the unmanaged runc container %s\n", id)
	}
	staged, merr := collectStaged(g.stateDir())
	if staged > 0 {
		fmt.Fprintf(out, "removed the staged bind mounts of %d killed run(s)\n", staged)
	}
	detached, nerr := gcNetworks(ctx, c, g)
	for _, name := range detached {
		fmt.Fprintf(out, "released the network of %s\n", name)
	}
	return errors.Join(err, lerr, serr, merr, nerr)
}

// reapShimsLocked stops the orphaned shims and deletes the unmanaged runc
// containers of the namespace (reapShims, reapRunc) under the namespace
// lock, so a run that replaces an orphan of the same name is never judged
// half-way.
func reapShimsLocked(ctx context.Context, c *client.Client, stateDir, address string) (shims, runcs []string, err error) {
	unlock, err := lockNamespace(ctx, stateDir)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	shims, err = reapShims(ctx, c, mustNamespace(ctx), "", address)
	runcs, rerr := reapRunc(ctx, c, mustNamespace(ctx))
	return shims, runcs, errors.Join(err, rerr)
}

// collect removes orphaned sbxrun containers in the client's namespace and
// returns their IDs.
func collect(ctx context.Context, c *client.Client, stateDir string) ([]string, error) {
	ctrs, err := c.Containers(ctx, `labels."`+LabelOwnerPID+`"`)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	var removed []string
	for _, ctr := range ctrs {
		ok, err := removeIfOrphanContainer(ctx, c, ctr, stateDir)
		if err != nil {
			continue
		}
		if ok {
			removed = append(removed, ctr.ID())
		}
	}
	return removed, nil
}

// removeIfOrphan removes container id when its owner is gone. It reports
// whether it removed it, and whether the name is free now. The caller holds
// the namespace lock.
func removeIfOrphan(ctx context.Context, c *client.Client, id, stateDir string) (removed, free bool, err error) {
	ctr, err := c.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// Removed in between: the name is free again.
			return false, true, nil
		}
		return false, false, err
	}
	removed, err = removeIfOrphanLocked(ctx, c, ctr, stateDir)
	return removed, removed, err
}

// removeIfOrphanContainer takes the namespace lock and removes ctr if it
// is an orphan. The lock makes the decision and the removal one step:
// without it, a gc that judged an old container could delete the new
// container a run created under the same name in between.
func removeIfOrphanContainer(ctx context.Context, c *client.Client, ctr client.Container, stateDir string) (bool, error) {
	unlock, err := lockNamespace(ctx, stateDir)
	if err != nil {
		return false, err
	}
	defer unlock()
	return removeIfOrphanLocked(ctx, c, ctr, stateDir)
}

func removeIfOrphanLocked(ctx context.Context, c *client.Client, ctr client.Container, stateDir string) (bool, error) {
	// Labels are read from the daemon now, under the lock, not from an
	// earlier listing.
	labels, err := ctr.Labels(ctx)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, ok := labels[LabelOwnerPID]; !ok || labels[LabelRemove] != "true" {
		return false, nil
	}
	task, err := ctr.Task(ctx, nil)
	running, exited := false, false
	if err == nil {
		if st, err := task.Status(ctx); err == nil {
			running = st.Status == client.Running || st.Status == client.Paused || st.Status == client.Pausing
			exited = st.Status == client.Stopped
		}
	}
	if labels[LabelDetached] == "true" {
		// A detached sandbox is gc's once its workload ran and ended. Until
		// its task started (no task yet, or one created and not started) it
		// is its run's, while that run lives: judging it earlier removed a
		// sandbox that `run -d` was about to start ("cannot start a
		// container that has stopped").
		if running || (!exited && ownerAlive(labels)) {
			return false, nil
		}
	} else if ownerAlive(labels) {
		return false, nil
	}
	if err := remove(ctx, c, ctr, true); err != nil {
		return false, err
	}
	if stateDir != "" {
		ns, _ := namespaceOf(ctx)
		forgetMarkers(stateDir, ns, ctr.ID())
		if labels[LabelDetached] == "true" {
			_ = os.Remove(logPath(stateDir, ns, ctr.ID()))
		}
	}
	return true, nil
}

// remove kills the container's task (when force), deletes it and the
// container with its snapshot. Bind-mount sources are never touched.
func remove(ctx context.Context, c *client.Client, ctr client.Container, force bool) error {
	if err := endTask(ctx, ctr, force); err != nil {
		return err
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting sandbox %q: %w", ctr.ID(), err)
	}
	return nil
}

// endTask deletes the container's task, killing it first when it runs and
// force is set (a running task without force is an error). SIGKILL to the
// init is enough: the sandbox has its own PID namespace.
func endTask(ctx context.Context, ctr client.Container, force bool) error {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading task of %q: %w", ctr.ID(), err)
	}
	st, err := task.Status(ctx)
	if err == nil && st.Status != client.Stopped && st.Status != client.Created {
		if !force {
			return fmt.Errorf("sandbox %q is running: stop it first (`sbxrun stop %s`) or use `sbxrun rm -f %s`", ctr.ID(), ctr.ID(), ctr.ID())
		}
		_ = task.Kill(ctx, syscall.SIGKILL)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if ch, err := task.Wait(wctx); err == nil {
			select {
			case <-ch:
			case <-wctx.Done():
			}
		}
		cancel()
	}
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting task of %q: %w", ctr.ID(), err)
	}
	return nil
}

// oomKilled reports whether the sandbox's memory cgroup recorded an OOM
// kill. It must be called after the task exited and before it is deleted
// (runc removes the cgroup on delete).
func oomKilled(sb *oci.Sandbox) bool {
	if sb.NoCgroups {
		return false
	}
	rel := sb.CgroupsPath
	if rel == "" {
		rel = filepath.Join("/", sb.Namespace, sb.ID)
	}
	for _, f := range []struct{ path, key string }{
		{filepath.Join("/sys/fs/cgroup", rel, "memory.events"), "oom_kill"},             // cgroup v2
		{filepath.Join("/sys/fs/cgroup/memory", rel, "memory.oom_control"), "oom_kill"}, // cgroup v1
		{filepath.Join("/sys/fs/cgroup/unified", rel, "memory.events"), "oom_kill"},     // hybrid
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, " ")
			if ok && k == f.key && strings.TrimSpace(v) != "0" {
				return true
			}
		}
	}
	return false
}

// A marker is a small file per attached run under STATE/owners/NS/ID@PID
// naming its owner. It is written before the container is created and
// removed when the run ends, so a run killed at any point leaves one behind.
// Runs read these instead of listing containerd: looking for orphans costs
// a directory read when there are none. (Detached sandboxes have none; gc
// and stop handle them.)
type marker struct{ path string }

const markerSep = "@"

func markerDir(stateDir, ns string) string { return filepath.Join(stateDir, "owners", ns) }

// newMarker writes the marker of run id. A run whose marker cannot be
// written must not start: a kill would leave a sandbox nothing points at.
func newMarker(stateDir, ns, id string) (*marker, error) {
	dir := markerDir(stateDir, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, stateDirError(stateDir, err)
	}
	l := ownerLabels()
	content := fmt.Sprintf("%s %s %s\n", l[LabelOwnerPID], l[LabelOwnerStart], l[LabelBootID])
	p := filepath.Join(dir, id+markerSep+l[LabelOwnerPID])
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		// A full disk can leave an empty file behind.
		_ = os.Remove(p)
		return nil, stateDirError(stateDir, err)
	}
	return &marker{path: p}, nil
}

func (m *marker) remove() {
	if m != nil {
		_ = os.Remove(m.path)
	}
}

// forgetMarkers removes every marker of sandbox id.
func forgetMarkers(stateDir, ns, id string) {
	matches, _ := filepath.Glob(filepath.Join(markerDir(stateDir, ns), id+markerSep+"*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// collectMarked removes the orphans that markers point at: sandboxes whose
// sbxrun is gone, and the shim a kill during the task's creation or
// deletion may have left running. A marker whose owner is gone is removed
// either way: its sandbox was collected, is gone, or is kept on purpose
// (--rm=false). A run passes a grace period: the markers of runs younger
// than that are left for a later pass, as containerd may still be starting
// the shim of a run killed a moment ago. gc passes none: it looks for
// every orphaned shim afterwards anyway.
func collectMarked(ctx context.Context, c *client.Client, stateDir, address, skip string, grace time.Duration) ([]string, error) {
	dir := markerDir(stateDir, mustNamespace(ctx))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	var removed []string
	for _, e := range entries {
		id, _, ok := strings.Cut(e.Name(), markerSep)
		if !ok || id == skip {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) != 3 {
			_ = os.Remove(p)
			continue
		}
		if ownerAlive(map[string]string{LabelOwnerPID: f[0], LabelOwnerStart: f[1], LabelBootID: f[2]}) {
			continue
		}
		if info, err := e.Info(); grace > 0 && (err != nil || time.Since(info.ModTime()) < grace) {
			continue
		}
		unlock, err := lockNamespace(ctx, stateDir)
		if err != nil {
			return removed, err
		}
		// The shim first: the marker goes with the container, and a pass
		// killed in between must still find the shim next time.
		var gone bool
		_, err = reapShims(ctx, c, mustNamespace(ctx), id, address)
		if err == nil {
			gone, _, err = removeIfOrphan(ctx, c, id, stateDir)
		}
		unlock()
		if err != nil {
			continue
		}
		removeFIFOs(id)
		_ = os.Remove(p)
		if gone {
			removed = append(removed, id)
		}
	}
	return removed, nil
}

func mustNamespace(ctx context.Context) string {
	ns, _ := namespaceOf(ctx)
	return ns
}

// shimGrace is how old a killed run's marker must be before a run
// collects its sandbox (collectMarked): containerd finishes starting the
// shim of a killed run within moments of the kill, and the shim's socket
// must be there when it is looked for.
const shimGrace = 5 * time.Second

// lockNamespace takes an exclusive lock for the namespace in ctx, shared by
// every sbxrun process using the same state directory. Orphan removal and
// same-name replacement hold it; ordinary runs never wait on it.
func lockNamespace(ctx context.Context, stateDir string) (func(), error) {
	ns, _ := namespaceOf(ctx)
	dir := filepath.Join(stateDir, "owners", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %q: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
