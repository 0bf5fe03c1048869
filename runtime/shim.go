package runtime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	shimapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
)

// A run SIGKILLed while containerd starts or deletes its task can leave the
// task's shim running with nobody to stop it: containerd 1.6 drops the
// shim's connection when the client goes away without shutting the shim
// down (containerd issues 6860, 7733, 9309), and removes the task's bundle.
// Such a shim is unknown to containerd and holds a process and a socket
// until the host reboots. gc (and every run, for the sandboxes its markers
// name) finds these shims by their command line and shuts them down.

// shimSocketRoot is where containerd's v2 shims create their sockets,
// whatever containerd's own state directory is.
const shimSocketRoot = "/run/containerd/s"

// shimProc is a running containerd shim of one task.
type shimProc struct {
	pid int
	// start identifies pid across reuse (procStart).
	start string
	// ns, id and address are the shim's -namespace, -id and -address.
	ns, id, address string
}

// socket is the path of the shim's ttrpc socket, computed as containerd
// computes it (pkg/shim.SocketAddress).
func (s shimProc) socket() string {
	sum := sha256.Sum256([]byte(filepath.Join(s.address, s.ns, s.id)))
	return filepath.Join(shimSocketRoot, fmt.Sprintf("%x", sum))
}

// sameAddress reports whether two daemon socket paths name one socket.
func sameAddress(a, b string) bool {
	a, b = filepath.Clean(strings.TrimPrefix(a, "unix://")), filepath.Clean(strings.TrimPrefix(b, "unix://"))
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// readShim returns the shim running as pid when it serves namespace ns of
// the daemon at address (any daemon when address is empty) and, when id is
// not empty, task id.
func readShim(pid int, ns, id, address string) (shimProc, bool) {
	start := procStart(pid)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || start == "" {
		return shimProc{}, false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 7 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
		return shimProc{}, false
	}
	s := shimProc{pid: pid, start: start}
	for i := 1; i+1 < len(args); i++ {
		switch args[i] {
		case "-namespace", "--namespace":
			s.ns = args[i+1]
		case "-id", "--id":
			s.id = args[i+1]
		case "-address", "--address":
			s.address = args[i+1]
		}
	}
	if s.ns != ns || s.id == "" || (id != "" && s.id != id) || (address != "" && !sameAddress(s.address, address)) {
		return shimProc{}, false
	}
	return s, true
}

// findShims lists the shims of namespace ns of the daemon at address
// (only task id's when id is not empty).
func findShims(ns, id, address string) []shimProc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []shimProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if s, ok := readShim(pid, ns, id, address); ok {
			out = append(out, s)
		}
	}
	return out
}

// orphanShim reports whether containerd has no task for the shim's id and
// no live sbxrun can still be creating one: the container is gone, or it
// is sbxrun's and its owner is dead. A container sbxrun did not create is
// never judged.
func orphanShim(ctx context.Context, c *client.Client, s shimProc) (bool, error) {
	_, err := c.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: s.id})
	if err == nil {
		return false, nil
	}
	if err = errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
		return false, err
	}
	ctr, err := c.LoadContainer(ctx, s.id)
	if errdefs.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	labels, err := ctr.Labels(ctx)
	if errdefs.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if _, ok := labels[LabelOwnerPID]; !ok {
		return false, nil
	}
	return !ownerAlive(labels), nil
}

// reapShims shuts down the orphaned shims of namespace ns (task id only,
// when id is not empty) of the daemon at address and returns the ids of
// the tasks whose shims it stopped. The caller holds the namespace lock.
func reapShims(ctx context.Context, c *client.Client, ns, id, address string) ([]string, error) {
	if id != "" {
		// A run checks only the sandboxes of dead owners: a stat instead
		// of a walk over /proc when no shim is left.
		s := shimProc{ns: ns, id: id, address: strings.TrimPrefix(address, "unix://")}
		if _, err := os.Stat(s.socket()); err != nil {
			return nil, nil
		}
	}
	shims := findShims(ns, id, address)
	var reaped []string
	var errs []error
	for _, s := range shims {
		orphan, err := orphanShim(ctx, c, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("checking the shim of %q (pid %d): %w", s.id, s.pid, err))
			continue
		}
		if !orphan {
			continue
		}
		if err := stopShim(ctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		removeFIFOs(s.id)
		reaped = append(reaped, s.id)
	}
	return reaped, errors.Join(errs...)
}

// stopShim shuts an orphaned shim down through its own API: it kills and
// deletes the task it may still hold (unmounting its rootfs), then exits.
// A shim that does not answer, or does not exit, is SIGKILLed, after its
// command line was read again to make sure the pid is still that shim.
// The socket and bundle the shim leaves are removed.
func stopShim(ctx context.Context, s shimProc) error {
	sock := s.socket()
	bundle, _ := os.Readlink("/proc/" + strconv.Itoa(s.pid) + "/cwd")
	// containerd may still hold the shim: its create for the dead client
	// hangs where the shim opens the client's stdio FIFOs, which nobody
	// reads any more. Opening them lets it go on; containerd then ends it
	// itself, or the shim answers below.
	held := connected(sock)
	if held {
		fifos := releaseFIFOs(s.id)
		defer closeAll(fifos)
		if waitGone(s, time.Second) {
			settleBundle(bundle, s)
			return nil
		}
	}
	if conn, err := net.DialTimeout("unix", sock, 2*time.Second); err == nil {
		tc := ttrpc.NewClient(conn)
		api := shimapi.NewTTRPCTaskClient(tc)
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if st, err := api.State(sctx, &shimapi.StateRequest{ID: s.id}); err == nil {
			if st.Pid > 0 && st.ExitedAt == nil {
				_, _ = api.Kill(sctx, &shimapi.KillRequest{ID: s.id, Signal: uint32(syscall.SIGKILL), All: true})
				_, _ = api.Wait(sctx, &shimapi.WaitRequest{ID: s.id})
			}
			_, _ = api.Delete(sctx, &shimapi.DeleteRequest{ID: s.id})
		}
		// The shim exits while answering; a closed connection is success.
		_, _ = api.Shutdown(sctx, &shimapi.ShutdownRequest{ID: s.id, Now: true})
		cancel()
		tc.Close()
	}
	if !waitGone(s, 3*time.Second) {
		if cur, ok := readShim(s.pid, s.ns, s.id, s.address); ok && cur.start == s.start {
			_ = syscall.Kill(s.pid, syscall.SIGKILL)
		}
		if !waitGone(s, 3*time.Second) {
			return fmt.Errorf("the orphaned shim of %q (pid %d) did not exit: kill it with `kill -9 %d`", s.id, s.pid, s.pid)
		}
	}
	_ = os.Remove(sock)
	if held {
		settleBundle(bundle, s)
	} else {
		removeBundle(bundle, s)
	}
	return nil
}

// fifoDir is where containerd's client creates a task's stdio FIFOs
// (cio.NewCreator: DIR/RANDOM/ID-stdin, -stdout, -stderr).
const fifoDir = "/run/containerd/fifo"

// fifoAge is how old a killed run's FIFO directory must be before gc
// removes it.
const fifoAge = 2 * time.Second

// releaseFIFOs opens the stdio FIFOs a killed client left for task id, so
// that a shim blocked opening them goes on. O_RDWR never blocks on a FIFO.
func releaseFIFOs(id string) []*os.File {
	var out []*os.File
	for _, kind := range []string{"stdin", "stdout", "stderr"} {
		matches, _ := filepath.Glob(filepath.Join(fifoDir, "*", id+"-"+kind))
		for _, m := range matches {
			if fi, err := os.Lstat(m); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
				continue
			}
			if f, err := os.OpenFile(m, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// removeFIFOs removes the FIFO directories a killed client left for task
// id: directories under fifoDir holding nothing but id's FIFOs, made more
// than fifoAge ago (a live run opens its FIFOs at once, and an open FIFO
// needs no name).
func removeFIFOs(id string) {
	dirs, _ := filepath.Glob(filepath.Join(fifoDir, "*"))
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil || len(entries) == 0 {
			continue
		}
		mine := true
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), id+"-")
			if !ok || (name != "stdin" && name != "stdout" && name != "stderr") || e.Type()&fs.ModeNamedPipe == 0 {
				mine = false
				break
			}
		}
		if fi, err := os.Stat(d); mine && err == nil && time.Since(fi.ModTime()) > fifoAge {
			_ = os.RemoveAll(d)
		}
	}
}

// settleBundle waits for containerd's own cleanup of a shim it held (it
// notices the shim's exit and deletes the bundle), then removes what that
// cleanup could not: containerd 1.6 gives up on a bundle whose runc
// container was never created.
func settleBundle(bundle string, s shimProc) {
	if bundle == "" || strings.HasSuffix(bundle, " (deleted)") {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(bundle); os.IsNotExist(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	removeBundle(bundle, s)
}

// waitGone waits up to d for the shim's process to exit.
func waitGone(s shimProc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for procStart(s.pid) == s.start {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// removeBundle removes what containerd keeps of a task whose shim is gone
// and which containerd no longer knows, as containerd itself does when it
// finds a dead shim's bundle: the rootfs mount, the bundle and its work
// directory. Without this a later run of the same name could not create
// its task ("bundle already exists"). It only touches a directory named
// io.containerd.runtime.v2.task/NS/ID for the shim's own namespace and id.
func removeBundle(bundle string, s shimProc) {
	if bundle == "" || strings.HasSuffix(bundle, " (deleted)") {
		return
	}
	parts := strings.Split(filepath.Clean(bundle), string(filepath.Separator))
	n := len(parts)
	if n < 3 || parts[n-1] != s.id || parts[n-2] != s.ns || !strings.HasPrefix(parts[n-3], "io.containerd.runtime.v2.") {
		return
	}
	rootfs := filepath.Join(bundle, "rootfs")
	// Stacked mounts come off one at a time; a busy one is detached.
	for i := 0; i < 8; i++ {
		if syscall.Unmount(rootfs, 0) != nil {
			break
		}
	}
	_ = syscall.Unmount(rootfs, syscall.MNT_DETACH)
	if mounted(rootfs) {
		return
	}
	if work, err := os.Readlink(filepath.Join(bundle, "work")); err == nil {
		wp := strings.Split(filepath.Clean(work), string(filepath.Separator))
		if k := len(wp); k >= 3 && wp[k-1] == s.id && wp[k-2] == s.ns && slices.Contains(wp, parts[n-3]) {
			_ = os.RemoveAll(work)
		}
	}
	_ = os.RemoveAll(bundle)
}

// connected reports whether a client is connected to the unix socket at
// path: /proc/net/unix lists each accepted connection with the listening
// socket's path, in state 03 (SS_CONNECTED). It says false when it cannot
// tell, and then the other checks decide.
func connected(path string) bool {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path
		if f := strings.Fields(line); len(f) == 8 && f[7] == path && f[5] == "03" {
			return true
		}
	}
	return false
}

// mounted reports whether something is mounted at p.
func mounted(p string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

// runcRoot is where the runc shim of containerd keeps runc's state, one
// directory per namespace.
const runcRoot = "/run/containerd/runc"

// reapRunc deletes the runc containers of namespace ns that nothing
// manages any more: no shim of that namespace and id runs (for any
// daemon), containerd has no task of the id, and the sandbox is gone or
// its owner dead. A shim that died holding a created container leaves its
// `runc init` waiting forever, with the sandbox's rootfs mounted in its
// mount namespace. It returns the ids it deleted.
func reapRunc(ctx context.Context, c *client.Client, ns string) ([]string, error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, nil
	}
	root := filepath.Join(runcRoot, ns)
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil
	}
	var reaped []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		ok, err := reapRuncID(ctx, c, runc, ns, e.Name())
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			reaped = append(reaped, e.Name())
		}
	}
	return reaped, errors.Join(errs...)
}

// reapRuncID deletes runc container id of namespace ns when nothing
// manages it any more (see reapRunc), and says whether it did.
func reapRuncID(ctx context.Context, c *client.Client, runc, ns, id string) (bool, error) {
	root := filepath.Join(runcRoot, ns)
	if identifiers.Validate(id) != nil {
		return false, nil
	}
	if _, err := os.Stat(filepath.Join(root, id, "state.json")); err != nil {
		return false, nil
	}
	if len(findShims(ns, id, "")) > 0 {
		return false, nil
	}
	orphan, err := orphanShim(ctx, c, shimProc{ns: ns, id: id})
	if err != nil || !orphan {
		return false, nil
	}
	if out, err := exec.CommandContext(ctx, runc, "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
		return false, fmt.Errorf("deleting the unmanaged runc container %q: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// reapStaleShim stops the orphaned shim of task id and deletes its
// unmanaged runc container, if either is left, under the namespace lock: a
// detached run killed while containerd started its task leaves a shim and
// its bundle ("file exists"), a shim killed in turn leaves runc's state
// ("container with given ID already exists"). Only what orphanShim judges
// orphaned is touched; two stats when nothing is left.
func reapStaleShim(ctx context.Context, c *client.Client, stateDir, id, address string) {
	ns, ok := namespaceOf(ctx)
	if !ok {
		return
	}
	s := shimProc{ns: ns, id: id, address: strings.TrimPrefix(address, "unix://")}
	_, serr := os.Stat(s.socket())
	_, rerr := os.Stat(filepath.Join(runcRoot, ns, id, "state.json"))
	if serr != nil && rerr != nil {
		return
	}
	unlock, err := lockNamespace(ctx, stateDir)
	if err != nil {
		return
	}
	defer unlock()
	_, _ = reapShims(ctx, c, ns, id, address)
	if runc, err := exec.LookPath("runc"); err == nil {
		_, _ = reapRuncID(ctx, c, runc, ns, id)
	}
}
