package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// runTimeout bounds every sbxrun invocation.
const runTimeout = 90 * time.Second

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// sanitize lowercases s and turns every run of characters outside [a-z0-9]
// into one "-", so it is a valid containerd namespace and container ID.
func sanitize(s string) string {
	return strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// shorten keeps s at most n characters, replacing the tail by a hash.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return strings.TrimRight(s[:n-9], "-") + "-" + fmt.Sprintf("%x", sum[:4])
}

// topName is the top-level test's name of t.
func topName(t *testing.T) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	return name
}

// nsFor is the containerd namespace of t's top-level test.
func nsFor(t *testing.T) string {
	return shorten("it-"+sanitize(topName(t)), 60)
}

// nameFor is a container name derived from t.Name() and suffix.
func nameFor(t *testing.T, suffix ...string) string {
	return shorten(sanitize(strings.Join(append([]string{t.Name()}, suffix...), "-")), 60)
}

var (
	nsMu    sync.Mutex
	nsReady = map[string]bool{}
)

// useNamespace prepares the namespace of the top-level test t: it loads the
// base image (and the plain image when plain is true) with "sbxrun load" and
// checks, when the test and all its subtests are done, that nothing is left
// in the namespace. Call it first in every top-level test.
func useNamespace(t *testing.T, plain bool) string {
	t.Helper()
	requireHarness(t)
	ns := nsFor(t)
	images := []string{harness.baseImage}
	if plain {
		images = append(images, harness.plainImage)
	}
	for _, img := range images {
		stdout, stderr, code := runWith(t, opts{}, "load", "-i", img)
		if code != 0 {
			t.Fatalf("sbxrun --namespace %s load -i %s: exit %d\nstdout: %s\nstderr: %s", ns, img, code, stdout, stderr)
		}
	}
	nsMu.Lock()
	nsReady[ns] = true
	nsMu.Unlock()
	t.Cleanup(func() { assertNamespaceClean(t, ns) })
	return ns
}

// opts are the less common settings of one sbxrun invocation.
type opts struct {
	// stdin is fed to sbxrun's standard input (nil: no input, /dev/null).
	stdin io.Reader
	// dir is the working directory; empty is a fresh temporary directory
	// (base mounts it at /workspace).
	dir string
	// env is added to the environment.
	env []string
	// timeout replaces runTimeout.
	timeout time.Duration
}

// run runs "sbxrun --namespace NS args..." with a timeout in a fresh
// temporary directory and returns its output and exit status (128+N when it
// was killed by signal N).
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runWith(t, opts{}, args...)
}

// runWith is run with options.
func runWith(t *testing.T, o opts, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	timeout := o.timeout
	if timeout == 0 {
		timeout = runTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := sbxrunCmd(t, o, args...)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sbxrun: %v", err)
	}
	startedIn.Store(cmd.Process.Pid, nsFor(t))
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	code = exitCode(err, cmd)
	if ctx.Err() != nil {
		t.Errorf("sbxrun %s: timed out after %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), timeout, outBuf.String(), errBuf.String())
	}
	return outBuf.String(), errBuf.String(), code
}

// startedIn maps the pid of each sbxrun the tests started to the
// namespace of its test: what a test may judge of state files named by pid.
var startedIn sync.Map

// sbxrunCmd returns the command for "sbxrun --namespace NS args...".
func sbxrunCmd(t *testing.T, o opts, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(harness.sbxrun, append([]string{"--namespace", nsFor(t)}, args...)...)
	cmd.Dir = o.dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Stdin = o.stdin
	return cmd
}

// exitCode is the exit status of a finished command: its code, or 128+N
// when it was killed by signal N.
func exitCode(err error, cmd *exec.Cmd) int {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// sandbox runs "sbxrun run --pull never --name NAME args..." and checks
// afterwards that the sandbox left nothing behind.
func sandbox(t *testing.T, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return sandboxWith(t, opts{}, name, args...)
}

// sandboxWith is sandbox with options.
func sandboxWith(t *testing.T, o opts, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	full := append([]string{"run", "--pull", "never", "--name", name}, args...)
	stdout, stderr, code = runWith(t, o, full...)
	assertGone(t, name)
	return stdout, stderr, code
}

// expect fails t when code is not want, showing the invocation's output.
func expect(t *testing.T, what string, code, want int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Errorf("%s: exit %d, want %d\nstdout: %q\nstderr: %q", what, code, want, stdout, stderr)
	}
}

// psEntry is one element of "sbxrun ps --format json".
type psEntry struct {
	Name    string `json:"name"`
	Image   string `json:"image"`
	Profile string `json:"profile"`
	Status  string `json:"status"`
	PID     int    `json:"pid"`
}

// ps runs "sbxrun ps -a --format json" in t's namespace.
func ps(t *testing.T) []psEntry {
	t.Helper()
	stdout, stderr, code := run(t, "ps", "-a", "--format", "json")
	if code != 0 {
		t.Fatalf("sbxrun ps -a --format json: exit %d\nstderr: %s", code, stderr)
	}
	var entries []psEntry
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil {
		t.Fatalf("sbxrun ps -a --format json printed no JSON array: %v\n%s", err, stdout)
	}
	return entries
}

// psFind returns the ps entry named name.
func psFind(t *testing.T, name string) (psEntry, bool) {
	t.Helper()
	for _, e := range ps(t) {
		if e.Name == name {
			return e, true
		}
	}
	return psEntry{}, false
}

// nsCtx is a context in t's namespace for the containerd client.
func nsCtx(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return namespaces.WithNamespace(ctx, nsFor(t)), cancel
}

// assertGone checks that the sandbox name left no container, task, active
// snapshot or mount, and that "sbxrun ps -a" does not list it.
func assertGone(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	if _, err := harness.client.LoadContainer(ctx, name); !errdefs.IsNotFound(err) {
		t.Errorf("container %q still exists after the run (err %v)", name, err)
	}
	if keys := activeSnapshots(t, ctx, name); len(keys) > 0 {
		t.Errorf("active snapshots of %q left: %q", name, keys)
	}
	if ms := leftMounts(t, nsFor(t), name); len(ms) > 0 {
		t.Errorf("mounts of %q left: %q", name, ms)
	}
	if e, ok := psFind(t, name); ok {
		t.Errorf("sbxrun ps -a still lists %q: %+v", name, e)
	}
}

// snapshotOf reports whether snapshot key belongs to container id: it is the
// id, or the id followed by "-" and a hex suffix.
func snapshotOf(key, id string) bool {
	if key == id {
		return true
	}
	rest, ok := strings.CutPrefix(key, id+"-")
	return ok && rest != "" && strings.Trim(rest, "0123456789abcdef") == ""
}

// activeSnapshots returns the keys of the active (container) snapshots in
// ctx's namespace that belong to container id ("" for all of them).
func activeSnapshots(t *testing.T, ctx context.Context, id string) []string {
	t.Helper()
	var keys []string
	err := harness.client.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted && (id == "" || snapshotOf(info.Name, id)) {
			keys = append(keys, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Errorf("listing snapshots: %v", err)
	}
	return keys
}

// leftMounts returns the mounts under the private containerd's state for the
// container id in namespace ns (id "" for every container of ns).
func leftMounts(t *testing.T, ns, id string) []string {
	t.Helper()
	dir := filepath.Join(harness.root, "containerd", "state", "io.containerd.runtime.v2.task", ns)
	if id != "" {
		dir = filepath.Join(dir, id)
	}
	ms, err := mountsUnder(dir)
	if err != nil {
		t.Errorf("reading mounts: %v", err)
	}
	return ms
}

// assertNamespaceClean checks that namespace ns holds no container, task,
// active snapshot or mount and that "sbxrun ps -a" is empty there.
func assertNamespaceClean(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, ns)
	cs, err := harness.client.Containers(ctx)
	if err != nil {
		t.Errorf("listing containers of %q: %v", ns, err)
	}
	for _, c := range cs {
		t.Errorf("namespace %q: container %q left behind", ns, c.ID())
	}
	if keys := activeSnapshots(t, ctx, ""); len(keys) > 0 {
		t.Errorf("namespace %q: active snapshots left: %q", ns, keys)
	}
	if ms := leftMounts(t, ns, ""); len(ms) > 0 {
		t.Errorf("namespace %q: mounts left: %q", ns, ms)
	}
	if entries := ps(t); len(entries) > 0 {
		t.Errorf("namespace %q: sbxrun ps -a lists %+v", ns, entries)
	}
	if len(cs) > 0 {
		// Leave the daemon clean for the other tests' checks.
		_ = removeAll(ctx)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is an sbxrun process running in the background.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int
}

// start starts "sbxrun --namespace NS args..." in the background; the
// process is killed when the test ends.
func start(t *testing.T, o opts, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: sbxrunCmd(t, o, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	if p.cmd.Stdout == nil {
		p.cmd.Stdout = p.stdout
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting sbxrun: %v", err)
	}
	startedIn.Store(p.cmd.Process.Pid, nsFor(t))
	go func() {
		err := p.cmd.Wait()
		p.code = exitCode(err, p.cmd)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to d for p to exit and returns its exit status.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("sbxrun %s did not exit within %s\nstdout: %q\nstderr: %q", strings.Join(p.cmd.Args[1:], " "), d, p.stdout.String(), p.stderr.String())
		return -1
	}
}

// waitFor polls cond every 50 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitOutput waits up to d for s to contain want.
func waitOutput(t *testing.T, p *proc, s interface{ String() string }, want string, d time.Duration) {
	t.Helper()
	waitFor(d, func() bool {
		select {
		case <-p.done:
			return true
		default:
			return strings.Contains(s.String(), want)
		}
	})
	ok := strings.Contains(s.String(), want)
	if !ok {
		exited := "still running"
		select {
		case <-p.done:
			exited = fmt.Sprintf("exited %d", p.code)
		default:
		}
		t.Fatalf("sbxrun %s (%s): output %q never contained %q\nstderr: %q", strings.Join(p.cmd.Args[1:], " "), exited, s.String(), want, p.stderr.String())
	}
}

// endsOnBrokenPipe starts cmd, whose command writes "y" lines forever,
// reads one line and closes the pipe, as `| head -1` does: cmd must end
// with 141 (128+SIGPIPE).
func endsOnBrokenPipe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "y\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	out.Close() // what head does after one line
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err, cmd); code != 141 {
			t.Errorf("%v: exit %d after the reader went away, want 141 (128+SIGPIPE)", cmd.Args[1:], code)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v kept running after its stdout reader went away", cmd.Args[1:])
	}
}
