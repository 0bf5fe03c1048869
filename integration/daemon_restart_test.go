package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// daemon is a containerd of one test's own, which it may stop and start
// without disturbing the harness's daemon that the other tests share.
type daemon struct {
	dir, address string
	cmd          *exec.Cmd
	exited       chan struct{}
}

// newDaemon starts a private containerd under a directory of the
// harness's root (so teardown unmounts what it leaves), loads the base
// image into it, and stops it, with everything it runs, when t ends.
func newDaemon(t *testing.T) *daemon {
	t.Helper()
	requireHarness(t)
	dir, err := os.MkdirTemp(harness.root, "ctd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{dir: dir, address: filepath.Join(dir, "containerd.sock")}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(containerdConfig(dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	t.Cleanup(func() { d.remove(t) })
	stdout, stderr, code := runWith(t, d.opts(), "load", "-i", harness.baseImage)
	expect(t, "sbxrun load into the test's own containerd", code, 0, stdout, stderr)
	return d
}

// opts points sbxrun at the daemon, with a state directory of its own.
func (d *daemon) opts() opts {
	return opts{env: []string{"SBXRUN_ADDRESS=" + d.address, "CONTAINERD_ADDRESS=" + d.address,
		"SBXRUN_STATE_DIR=" + filepath.Join(d.dir, "sbxrun-state")}}
}

// start starts containerd and waits up to 10 s for its socket.
func (d *daemon) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(d.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	_ = os.Remove(d.address)
	d.cmd = exec.Command("containerd", "--config", filepath.Join(d.dir, "config.toml"))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(d.cmd, d.exited)
	// Serving, not only bound: the socket exists a moment before
	// containerd listens on it ("connection refused").
	if !waitFor(10*time.Second, func() bool {
		conn, err := net.DialTimeout("unix", d.address, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}) {
		t.Fatalf("containerd did not serve %q within 10s; log:\n%s", d.address, tail(readFile(logf.Name()), 20))
	}
}

// stop stops containerd as a service manager does (SIGTERM), which leaves
// the shims and their tasks running.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// client is a client of the daemon and a context for t's namespace.
func (d *daemon) client(t *testing.T) (*client.Client, context.Context, context.CancelFunc) {
	t.Helper()
	c, err := client.New(d.address)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return c, namespaces.WithNamespace(ctx, nsFor(t)), func() { cancel(); c.Close() }
}

// assertClean checks that the daemon holds no container of t's namespace
// and runs no shim for it.
func (d *daemon) assertClean(t *testing.T) {
	t.Helper()
	c, ctx, done := d.client(t)
	defer done()
	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	for _, ctr := range cs {
		t.Errorf("container %q left behind", ctr.ID())
	}
	if !waitFor(5*time.Second, func() bool { return len(d.shims(t)) == 0 }) {
		t.Errorf("shims left: %v", d.shims(t))
	}
	if m, _ := filepath.Glob(filepath.Join(d.dir, "sbxrun-state", "owners", nsFor(t), "*@*")); len(m) > 0 {
		t.Errorf("markers left: %q", m)
	}
}

// shims lists the daemon's shims of t's namespace by pid.
func (d *daemon) shims(t *testing.T) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, "-namespace "+nsFor(t)+" ") &&
			strings.Contains(cmdline, "-address "+d.address) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			out = append(out, pid)
		}
	}
	return out
}

// remove kills what the daemon still runs, stops it and removes its
// directory.
func (d *daemon) remove(t *testing.T) {
	if d.cmd == nil {
		d.start(t)
	}
	c, ctx, done := d.client(t)
	if cs, err := c.Containers(ctx); err == nil {
		for _, ctr := range cs {
			if task, err := ctr.Task(ctx, nil); err == nil {
				_, _ = task.Delete(ctx, client.WithProcessKill)
			}
			_ = ctr.Delete(ctx, client.WithSnapshotCleanup)
		}
	}
	done()
	d.stop(t)
	for _, pid := range d.shims(t) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := unmountUnder(d.dir); err != nil {
		t.Errorf("unmounting under %q: %v", d.dir, err)
	}
	_ = os.RemoveAll(d.dir)
}

// TestDaemonRestart restarts containerd while an attached sandbox runs:
// the run reconnects, waits on the task again and exits with the
// workload's own status, whether the workload ends before containerd is
// back or after; when containerd stays away, the run says so in one line,
// and gc removes the sandbox once containerd is back.
func TestDaemonRestart(t *testing.T) {
	t.Parallel()
	requireHarness(t)
	d := newDaemon(t)
	o := d.opts()

	tests := []struct {
		name   string
		script string
		// down is how long containerd stays stopped.
		down time.Duration
		want int
	}{
		{"exits-after-restart", "echo before; sleep 3; echo after; exit 3", time.Second, 3},
		{"exits-while-down", "echo before; sleep 1; echo after; exit 4", 3 * time.Second, 4},
	}
	// One at a time: they share the daemon they restart.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, o, "run", "--pull", "never", "base", "--", "sh", "-c", tt.script)
			waitOutput(t, p, p.stdout, "before", 30*time.Second)
			d.stop(t)
			time.Sleep(tt.down)
			d.start(t)
			code := p.wait(t, 60*time.Second)
			if code != tt.want {
				t.Errorf("exit %d across a containerd restart, want the workload's %d\nstderr: %q", code, tt.want, p.stderr.String())
			}
			if got := p.stdout.String(); got != "before\nafter\n" {
				t.Errorf("stdout %q, want %q", got, "before\nafter\n")
			}
			d.assertClean(t)
		})
	}

	t.Run("stays-down", func(t *testing.T) {
		so := o
		so.env = append(append([]string{}, o.env...), "SBXRUN_RECONNECT_TIMEOUT=2s")
		name := nameFor(t)
		p := start(t, so, "run", "--pull", "never", "--name", name, "base", "--", "sh", "-c", "echo before; sleep 30")
		waitOutput(t, p, p.stdout, "before", 30*time.Second)
		d.stop(t)
		code := p.wait(t, 30*time.Second)
		d.start(t)
		stderr := p.stderr.String()
		if code != 125 {
			t.Errorf("exit %d with containerd gone, want 125\nstderr: %q", code, stderr)
		}
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 ||
			!strings.Contains(stderr, d.address) || !strings.Contains(stderr, "systemctl start containerd") || !strings.Contains(stderr, "sbxrun gc") {
			t.Errorf("stderr %q, want one line naming the socket %q, `systemctl start containerd` and `sbxrun gc`", stderr, d.address)
		}
		c, ctx, done := d.client(t)
		_, err := c.LoadContainer(ctx, name)
		done()
		if err != nil {
			t.Fatalf("the sandbox is gone before gc (%v): nothing left to test", err)
		}
		stdout, stderr, code := runWith(t, o, "gc")
		expect(t, "sbxrun gc once containerd is back", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "removed "+name) {
			t.Errorf("gc output %q, want it to remove %q", stdout, name)
		}
		d.assertClean(t)
	})
}
