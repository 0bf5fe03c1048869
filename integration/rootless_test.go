package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rootlessUser is the unprivileged user the rootless tests run as; the
// test creates it (with subordinate id ranges) when it is missing.
const rootlessUser = "sbxrun-it"

// rootlessEnv is one unprivileged user's world for the rootless tests.
type rootlessEnv struct {
	t         *testing.T
	uid, gid  int
	home, xdg string
	data      string // XDG_DATA_HOME: the daemon's root and sbxrun's state
	config    string // XDG_CONFIG_HOME: the user's networks (sbxrun/cni)
	dir       string // world-readable: the sbxrun binary and the image
	project   string // owned by the user: the sandbox's /workspace
	sbxrun    string
	image     string
	extraEnv  []string
	dropXDG   bool
}

func newRootlessEnv(t *testing.T) *rootlessEnv {
	t.Helper()
	requireHarness(t)
	for _, bin := range []string{"rootlesskit", "newuidmap", "nsenter", "useradd", "pasta"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install it with: apt-get install -y rootlesskit uidmap util-linux passwd passt", bin)
		}
	}
	usableTun(t)
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v: %s", rootlessUser, err, out)
		}
		if u, err = user.Lookup(rootlessUser); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), rootlessUser+":") {
			if out, err := exec.Command("usermod", "--add-subuids", "300000-365535", "--add-subgids", "300000-365535", rootlessUser).CombinedOutput(); err != nil {
				t.Fatalf("usermod --add-subuids: %v: %s", err, out)
			}
			break
		}
	}
	e := &rootlessEnv{t: t, home: u.HomeDir}
	e.uid, _ = strconv.Atoi(u.Uid)
	e.gid, _ = strconv.Atoi(u.Gid)

	dir, err := os.MkdirTemp("", "sbxrun-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	e.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.sbxrun = filepath.Join(dir, "sbxrun")
	e.image = filepath.Join(dir, "base.tar")
	copyFile(t, harness.sbxrun, e.sbxrun, 0o755)
	for _, helper := range []string{"sbxrun-compose-load", "sbxrun-kube"} {
		if src := filepath.Join(filepath.Dir(harness.sbxrun), helper); fileExists(src) {
			copyFile(t, src, filepath.Join(dir, helper), 0o755)
		}
	}
	copyFile(t, harness.baseImage, e.image, 0o644)
	e.xdg = filepath.Join(dir, "run")
	e.project = filepath.Join(dir, "project")
	// A data directory of this test's own: another run of the suite (another
	// worktree) may use the same user at the same time.
	e.data = filepath.Join(dir, "data")
	e.config = filepath.Join(dir, "config")
	for _, d := range []string{e.xdg, e.project, e.data, e.config} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, e.uid, e.gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Stop the user's containerd (it ends its sandboxes), then remove
		// everything the test made, as root.
		_, _, _ = e.run("rootless", "stop")
		_ = os.RemoveAll(dir)
		_ = os.RemoveAll(filepath.Join(e.home, ".local", "share", "sbxrun"))
	})
	return e
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// run runs sbxrun as the unprivileged user, in its project directory, with
// a clean environment (no SBXRUN_ADDRESS: sbxrun must find its daemon).
func (e *rootlessEnv) run(args ...string) (stdout, stderr string, code int) {
	return e.runIn(nil, args...)
}

// env is the environment of the user's sbxrun: HOME, USER and PATH
// first, then the XDG directories of this test's own (another run of the
// suite may use the same user at the same time; the networks rootless
// sbxrun creates are configured in XDG_CONFIG_HOME/sbxrun/cni).
func (e *rootlessEnv) env() []string {
	return []string{"HOME=" + e.home, "USER=" + rootlessUser, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"XDG_RUNTIME_DIR=" + e.xdg, "XDG_DATA_HOME=" + e.data, "XDG_CONFIG_HOME=" + e.config}
}

func (e *rootlessEnv) runIn(stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.sbxrun, args...)
	cmd.Dir = e.project
	cmd.Env = e.env()
	if e.dropXDG {
		cmd.Env = cmd.Env[:3]
	}
	cmd.Env = append(cmd.Env, e.extraEnv...)
	cmd.Stdin = stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.uid), Gid: uint32(e.gid), Groups: []uint32{}}}
	var o, eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &eb
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Errorf("sbxrun %v as %s timed out\nstderr: %s", args, rootlessUser, eb.String())
	}
	return o.String(), eb.String(), exitCode(err, cmd)
}

// TestRootless runs sbxrun end to end as an unprivileged user: setup,
// start, status, load, runs with exit codes, stdio, bind mounts and file
// ownership, the limits this host supports, and stop.
func TestRootless(t *testing.T) {
	t.Parallel()
	e := newRootlessEnv(t)

	t.Run("prerequisite: XDG_RUNTIME_DIR", func(t *testing.T) {
		e.dropXDG = true
		defer func() { e.dropXDG = false }()
		_, stderr, code := e.run("rootless", "setup")
		if code != 125 || !strings.Contains(stderr, "XDG_RUNTIME_DIR is not set") || !strings.Contains(stderr, "mkdir") {
			t.Errorf("setup without XDG_RUNTIME_DIR: exit %d, stderr %q; want 125 and a message naming the fix", code, stderr)
		}
	})

	t.Run("prerequisite: subuid", func(t *testing.T) {
		restore := withoutSubIDs(t)
		_, stderr, code := e.run("rootless", "setup")
		restore()
		if code != 125 || !strings.Contains(stderr, "/etc/subuid has no range for "+rootlessUser) || !strings.Contains(stderr, "usermod --add-subuids") {
			t.Errorf("setup without a subuid range: exit %d, stderr %q; want 125 and the usermod command", code, stderr)
		}
	})

	if out, stderr, code := e.run("rootless", "setup"); code != 0 {
		t.Fatalf("rootless setup: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if out, stderr, code := e.run("rootless", "start"); code != 0 {
		t.Fatalf("rootless start: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	status, stderr, code := e.run("rootless", "status")
	if code != 0 || !strings.Contains(status, "running: yes") {
		t.Fatalf("rootless status: exit %d, stdout %q, stderr %q; want running", code, status, stderr)
	}
	if out, stderr, code := e.run("load", "-i", e.image); code != 0 {
		t.Fatalf("load as %s: exit %d\nstdout: %s\nstderr: %s", rootlessUser, code, out, stderr)
	}

	t.Run("exit codes and stdio", func(t *testing.T) {
		out, stderr, code := e.run("base", "--pull", "never", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
		if code != 3 || out != "out\n" || !strings.Contains(stderr, "err") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3, out, err", code, out, stderr)
		}
		_, _, code = e.run("base", "--pull", "never", "--", "no-such-command")
		if code != 127 {
			t.Errorf("missing command: exit %d, want 127", code)
		}
		out, _, code = e.runIn(strings.NewReader("piped\n"), "base", "--pull", "never", "-i", "--", "cat")
		if code != 0 || out != "piped\n" {
			t.Errorf("stdin: exit %d, stdout %q", code, out)
		}
	})

	t.Run("network", func(t *testing.T) { testRootlessNetwork(t, e) })

	t.Run("workspace ownership", func(t *testing.T) {
		out, stderr, code := e.run("base", "--pull", "never", "--", "sh", "-c", "echo made > /workspace/made.txt && id -u")
		if code != 0 || out != "0\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		fi, err := os.Stat(filepath.Join(e.project, "made.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != e.uid || int(st.Gid) != e.gid {
			t.Errorf("file written in /workspace is owned by %d:%d on the host, want the user %d:%d", st.Uid, st.Gid, e.uid, e.gid)
		}
	})

	t.Run("host files the user cannot write stay unwritable", func(t *testing.T) {
		ro := filepath.Join(e.dir, "root-owned")
		if err := os.Mkdir(ro, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ro, "f"), []byte("root's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, code := e.run("base", "--pull", "never", "-v", ro+":/ro", "--", "sh", "-c", "cat /ro/f; echo changed >> /ro/f && echo WROTE")
		if strings.Contains(out, "WROTE") || code == 0 {
			t.Errorf("a root-owned host file was writable from the rootless sandbox: exit %d, stdout %q", code, out)
		}
		if b, _ := os.ReadFile(filepath.Join(ro, "f")); string(b) != "root's\n" {
			t.Errorf("root-owned file changed: %q", b)
		}
	})

	t.Run("limits", func(t *testing.T) {
		if strings.Contains(status, "limits: enforced") {
			t.Logf("this host delegates cgroups to %s: checking enforcement", rootlessUser)
			out, stderr, code := e.run("base", "--pull", "never", "-m", "64m", "--", "cat", "/sys/fs/cgroup/memory.max")
			if code != 0 || strings.TrimSpace(out) != "67108864" {
				t.Errorf("memory.max inside: exit %d, stdout %q, stderr %q; want 67108864", code, out, stderr)
			}
			return
		}
		t.Logf("this host cannot enforce rootless limits (%s): checking the refusal and --best-effort-limits", strings.TrimSpace(status))
		out, stderr, code := e.run("base", "--pull", "never", "-m", "64m", "--", "echo", "ran")
		if code != 125 || out != "" || !strings.Contains(stderr, "cannot enforce --memory") || !strings.Contains(stderr, "--best-effort-limits") {
			t.Errorf("a limit that cannot hold: exit %d, stdout %q, stderr %q; want 125, no run, the reason and the fix", code, out, stderr)
		}
		out, stderr, code = e.run("base", "--pull", "never", "-m", "64m", "--pids-limit", "50", "--best-effort-limits", "--", "echo", "ran")
		if code != 0 || out != "ran\n" || strings.Count(stderr, "warning") != 1 || !strings.Contains(stderr, "--memory, --pids-limit not enforced") {
			t.Errorf("best effort: exit %d, stdout %q, stderr %q; want it to run after one warning line", code, out, stderr)
		}
	})

	t.Run("pull from a registry on the host's loopback", func(t *testing.T) {
		reg := startRegistry(t, registryOpts{})
		reg.push(t, "oci-archive:"+harness.baseImage, "rootless/base", "v1")
		ref := reg.host + "/rootless/base:v1"
		out, stderr, code := e.run("pull", ref)
		if code != 0 {
			t.Fatalf("rootless pull of %s: exit %d\nstdout: %s\nstderr: %s", ref, code, out, stderr)
		}
		out, stderr, code = e.run("run", "--pull", "never", ref, "--", "echo", "pulled")
		if code != 0 || out != "pulled\n" {
			t.Errorf("running the pulled image: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		if _, stderr, code := e.run("rmi", ref); code != 0 {
			t.Errorf("rmi %s: exit %d, stderr %q", ref, code, stderr)
		}
	})

	t.Run("CDI spec written after the daemon started", func(t *testing.T) {
		// The default spec directory, as a GPU host's `sbxrun gpu setup`
		// would write it after the user's containerd came up.
		dir := "/etc/cdi"
		made := false
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			made = true
		}
		spec := filepath.Join(dir, "sbxrun-it-rootless.json")
		t.Cleanup(func() {
			_ = os.Remove(spec)
			if made {
				_ = os.Remove(dir)
			}
		})
		content := `{"cdiVersion":"0.6.0","kind":"sbxrun-it.example.com/late","devices":[{"name":"x","containerEdits":{"env":["SBXRUN_LATE_DEVICE=seen"]}}]}`
		if err := os.WriteFile(spec, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := e.run("base", "--pull", "never", "--device", "sbxrun-it.example.com/late=x", "--", "sh", "-c", "echo $SBXRUN_LATE_DEVICE")
		if code != 0 || out != "seen\n" {
			t.Errorf("device from a spec written after start: exit %d, stdout %q, stderr %q; want seen", code, out, stderr)
		}
	})

	t.Run("nothing left", func(t *testing.T) {
		out, stderr, code := e.run("ps", "-a", "--format", "json")
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("ps -a after the runs: exit %d, stdout %q, stderr %q; want []", code, out, stderr)
		}
	})

	// A detached sandbox with a published port when the daemon stops: its
	// pasta goes too, and the port is free.
	port := freeHostPort(t)
	if out, stderr, code := e.run("run", "-d", "--name", "kept", "--pull", "never", "-p", strconv.Itoa(port)+":8000", "base", "--", "sh", "-c", httpdScript("kept")); code != 0 {
		t.Errorf("run -d -p: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if out, stderr, code := e.run("rootless", "stop"); code != 0 || !strings.Contains(out, "stopped rootless containerd") {
		t.Errorf("rootless stop: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(e.xdg, "sbxrun", "containerd.sock")); err == nil {
		t.Error("the rootless socket is still there after stop")
	}
	e.assertNoNetworkLeft(t, "after rootless stop with a detached sandbox")
	if l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Errorf("port %d of the detached sandbox is still held after rootless stop: %v", port, err)
	} else {
		l.Close()
	}
}

// testRootlessNetwork: a rootless sandbox gets a network namespace of its
// own, with pasta as its uplink: published ports reachable from the host
// on 127.0.0.1 from two sandboxes at once, the host's loopback services
// unreachable, working DNS, a taken port refused, named networks refused
// in one line, --net host and none unchanged, and no pasta, namespace or
// state file left after --rm runs, rm -f, or a SIGKILLed run and gc.
func testRootlessNetwork(t *testing.T, e *rootlessEnv) {
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	e.assertNoNetworkLeft(t, "before")
	run := func(args ...string) (string, string, int) {
		return e.run(append([]string{"run", "--pull", "never"}, args...)...)
	}

	t.Run("own namespace", func(t *testing.T) {
		out, stderr, code := run("base", "--", "sh", "-c", "readlink /proc/self/ns/net; ip -4 -o addr show; ip route; grep -c ^nameserver /etc/resolv.conf")
		if code != 0 || strings.Contains(out, hostNS) || !strings.Contains(out, "default via") || !strings.Contains(out, ": eth0") {
			t.Errorf("default network: exit %d, stdout %q, stderr %q; want a namespace other than the host's %s, with an eth0 and a default route", code, out, stderr, hostNS)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); lines[len(lines)-1] == "0" {
			t.Errorf("no nameserver in the sandbox's /etc/resolv.conf:\n%s", out)
		}
		out, stderr, code = run("--net", "host", "base", "--", "readlink", "/proc/self/ns/net")
		if code != 0 || strings.TrimSpace(out) != hostNS {
			t.Errorf("--net host: exit %d, namespace %q, stderr %q; want the host's %s", code, out, stderr, hostNS)
		}
		out, stderr, code = run("--net", "none", "base", "--", "sh", "-c", "ls /sys/class/net")
		if code != 0 || strings.TrimSpace(out) != "lo" {
			t.Errorf("--net none: exit %d, interfaces %q, stderr %q; want lo only", code, out, stderr)
		}
	})

	t.Run("add-host and dns flags", func(t *testing.T) {
		out, stderr, code := run("--add-host", "db.internal:10.1.2.3", "--dns", "192.0.2.53", "--dns-search", "example.test",
			"base", "--", "cat", "/etc/hosts", "/etc/resolv.conf")
		if code != 0 || !strings.Contains(out, "10.1.2.3") || !strings.Contains(out, "db.internal") ||
			!strings.Contains(out, "nameserver 192.0.2.53") || !strings.Contains(out, "example.test") {
			t.Errorf("--add-host, --dns and --dns-search rootless: exit %d, stderr %q; want them in /etc/hosts and /etc/resolv.conf:\n%s", code, stderr, out)
		}
	})

	t.Run("dns", func(t *testing.T) {
		const name = "deb.debian.org"
		if _, err := net.LookupHost(name); err != nil {
			t.Skipf("the host itself cannot resolve %s (%v): nothing to compare with", name, err)
		}
		out, stderr, code := run("base", "--", "nslookup", name)
		if code != 0 || !strings.Contains(out, "Address") || strings.Count(out, "Address") < 2 {
			t.Errorf("nslookup %s in the sandbox: exit %d, stdout %q, stderr %q; want an answer, as on the host", name, code, out, stderr)
		}
	})

	t.Run("published ports, side by side", func(t *testing.T) {
		ports := []int{freeHostPort(t), freeHostPort(t)}
		for ports[1] == ports[0] {
			ports[1] = freeHostPort(t)
		}
		names := []string{"web1", "web2"}
		for i, n := range names {
			out, stderr, code := run("-d", "--name", n, "-p", fmt.Sprintf("%d:8000", ports[i]), "base", "--", "sh", "-c", httpdScript(n))
			if code != 0 {
				t.Fatalf("run -d %s: exit %d, stdout %q, stderr %q", n, code, out, stderr)
			}
			if !strings.Contains(stderr, fmt.Sprintf("127.0.0.1:%d->8000/tcp", ports[i])) {
				t.Errorf("run -d %s: stderr %q does not show the published port", n, stderr)
			}
		}
		// One pasta each (what the leak checks look for is there).
		if procs := pastaProcs(e.uid, e.data); len(procs) != 2 {
			t.Errorf("pasta processes of the two sandboxes: %q, want 2", procs)
		}
		for i, n := range names {
			body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/", ports[i]), 10*time.Second)
			if err != nil || strings.TrimSpace(body) != "hello-"+n {
				t.Errorf("GET 127.0.0.1:%d: %q, %v; want hello-%s", ports[i], body, err, n)
			}
		}
		// Published on 127.0.0.1 by default, not on the host's other addresses.
		if out, err := exec.Command("ss", "-Htln", fmt.Sprintf("sport = :%d", ports[0])).Output(); err == nil && !strings.Contains(string(out), "127.0.0.1:") {
			t.Errorf("port %d is not bound to 127.0.0.1 only: %q", ports[0], out)
		}
		out, stderr, code := e.run("port", "web1", "8000")
		if code != 0 || strings.TrimSpace(out) != fmt.Sprintf("127.0.0.1:%d", ports[0]) {
			t.Errorf("port web1 8000: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		// A third that asks for a taken port.
		out, stderr, code = run("-p", fmt.Sprintf("%d:8000", ports[0]), "base", "--", "true")
		if code != 125 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, fmt.Sprintf("127.0.0.1:%d/tcp is already in use", ports[0])) {
			t.Errorf("a taken port: exit %d, stdout %q, stderr %q; want 125 and one line naming the port", code, out, stderr)
		}
		// Taken by a host process.
		held := serveOnce(t, "127.0.0.1:0", "held")
		out, stderr, code = run("-p", fmt.Sprintf("%d:8000", held), "base", "--", "true")
		if code != 125 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, fmt.Sprintf("127.0.0.1:%d/tcp is already in use", held)) {
			t.Errorf("a port a host process holds: exit %d, stdout %q, stderr %q; want 125 and one line naming the port", code, out, stderr)
		}
		if out, stderr, code := e.run("rm", "-f", "web1", "web2"); code != 0 {
			t.Errorf("rm -f: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		// rm returns once pasta is gone: the ports are free at once.
		for _, p := range ports {
			if l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
				t.Errorf("port %d still held after rm -f: %v", p, err)
			} else {
				l.Close()
			}
		}
		e.assertNoNetworkLeft(t, "after rm -f of two detached sandboxes")
	})

	t.Run("host loopback unreachable", func(t *testing.T) {
		secret := serveOnce(t, "127.0.0.1:0", "secret")
		// Not the gateway: with --no-map-gw (TestPastaArgs) pasta sends
		// what goes to it to the host's real gateway, another machine,
		// which a test must not send traffic to.
		script := fmt.Sprintf(`me=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
for h in 127.0.0.1 $me; do nc -w 2 $h %d </dev/null; done; echo done`, secret)
		out, stderr, code := run("base", "--", "sh", "-c", script)
		if code != 0 || !strings.Contains(out, "done") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		if strings.Contains(out, "secret") {
			t.Errorf("the rootless sandbox reached a service bound to the host's 127.0.0.1:\n%s", out)
		}
		// Control: on the host's network the same service answers.
		out, stderr, _ = run("--net", "host", "base", "--", "sh", "-c", fmt.Sprintf("nc -w 2 127.0.0.1 %d </dev/null", secret))
		if !strings.Contains(out, "secret") {
			t.Errorf("--net host did not reach the test's service (the check above would prove nothing): stdout %q, stderr %q", out, stderr)
		}
	})

	t.Run("named networks", func(t *testing.T) { testRootlessNamed(t, e, run) })

	t.Run("compose project", func(t *testing.T) { testRootlessCompose(t, e) })

	t.Run("pasta missing", func(t *testing.T) {
		// A PATH with what sbxrun needs to enter the namespace, but no pasta.
		bin := filepath.Join(e.dir, "bin-without-pasta")
		if err := os.Mkdir(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		nsenter, err := exec.LookPath("nsenter")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(nsenter, filepath.Join(bin, "nsenter")); err != nil {
			t.Fatal(err)
		}
		e.extraEnv = []string{"PATH=" + bin}
		defer func() { e.extraEnv = nil }()
		out, stderr, code := run("-p", "8000", "base", "--", "true")
		if code != 125 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "needs pasta") || !strings.Contains(stderr, "apt-get install passt") {
			t.Errorf("without pasta: exit %d, stdout %q, stderr %q; want 125 and one line naming pasta and its package", code, out, stderr)
		}
		out, stderr, code = run("--net", "host", "base", "--", "echo", "ok")
		if code != 0 || out != "ok\n" {
			t.Errorf("without pasta, --net host: exit %d, stdout %q, stderr %q; want it to work", code, out, stderr)
		}
		out, _, _ = e.run("doctor")
		if !strings.Contains(out, "fail  rootless pasta:") || !strings.Contains(out, "apt-get install passt") {
			t.Errorf("doctor without pasta does not name it and the fix:\n%s", out)
		}
	})

	t.Run("SIGKILLed run, then gc", func(t *testing.T) {
		port := freeHostPort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, e.sbxrun, "run", "--rm", "--pull", "never", "--name", "killed", "-p", fmt.Sprintf("%d:8000", port), "base", "--", "sh", "-c", httpdScript("killed"))
		cmd.Dir = e.project
		cmd.Env = e.env()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.uid), Gid: uint32(e.gid), Groups: []uint32{}}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/", port), 20*time.Second)
		// sbxrun replaced itself with nsenter, which exec'd sbxrun: the pid is sbxrun's.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil || strings.TrimSpace(body) != "hello-killed" {
			t.Fatalf("GET before the kill: %q, %v", body, err)
		}
		if out, stderr, code := e.run("gc"); code != 0 {
			t.Errorf("gc: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		e.assertNoNetworkLeft(t, "after a SIGKILLed run and gc")
	})

	t.Run("many runs", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			if out, stderr, code := run("--rm", "-p", "8000", "base", "--", "true"); code != 0 {
				t.Fatalf("run %d: exit %d, stdout %q, stderr %q", i, code, out, stderr)
			}
		}
		e.assertNoNetworkLeft(t, "after 5 --rm runs with -p")
	})
}

// usableTun makes /dev/net/tun usable by the test user while rootless
// tests run: these machines create it mode 0600, where udev's usual mode
// is 0666, which pasta (a rootless sandbox's network) needs. The mode is
// restored when the last test that asked for it ends, in this process and
// in any other test process on the machine (other worktrees run the suite
// at the same time): each holds a shared lock on tunUsersFile while it
// needs the device, and the first one records the original mode in
// tunModeFile; both files are under /run, so a killed run's record goes
// with the next boot at the latest.
func usableTun(t *testing.T) {
	tunMu.Lock()
	defer tunMu.Unlock()
	if tunUsers == 0 {
		modeF, err := os.OpenFile(tunModeFile, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer modeF.Close()
		if err := syscall.Flock(int(modeF.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat("/dev/net/tun")
		if err != nil {
			t.Fatalf("/dev/net/tun: %v: load the tun module (modprobe tun)", err)
		}
		if b, _ := io.ReadAll(modeF); len(b) == 0 {
			if _, err := fmt.Fprintf(modeF, "%o\n", fi.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod("/dev/net/tun", 0o666); err != nil {
			t.Fatal(err)
		}
		// Taken before the mode file's lock is released: a test process
		// ending now sees this one.
		if tunUsersF, err = os.OpenFile(tunUsersFile, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(tunUsersF.Fd()), syscall.LOCK_SH); err != nil {
			t.Fatal(err)
		}
	}
	tunUsers++
	t.Cleanup(func() {
		tunMu.Lock()
		defer tunMu.Unlock()
		if tunUsers--; tunUsers > 0 {
			return
		}
		defer tunUsersF.Close()
		modeF, err := os.OpenFile(tunModeFile, os.O_RDWR, 0)
		if err != nil {
			t.Errorf("restoring the mode of /dev/net/tun: %v", err)
			return
		}
		defer modeF.Close()
		if err := syscall.Flock(int(modeF.Fd()), syscall.LOCK_EX); err != nil {
			t.Error(err)
			return
		}
		if syscall.Flock(int(tunUsersF.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			return // another test process still needs it
		}
		b, _ := io.ReadAll(modeF)
		mode, err := strconv.ParseUint(strings.TrimSpace(string(b)), 8, 32)
		if err != nil {
			t.Errorf("restoring the mode of /dev/net/tun: %s holds %q", tunModeFile, b)
			return
		}
		if err := os.Chmod("/dev/net/tun", os.FileMode(mode)); err != nil {
			t.Errorf("restoring the mode of /dev/net/tun: %v", err)
		}
		_ = modeF.Truncate(0)
	})
}

const (
	tunModeFile  = "/run/sbxrun-it-tun.mode"
	tunUsersFile = "/run/sbxrun-it-tun.users"
)

var (
	tunMu     sync.Mutex
	tunUsers  int
	tunUsersF *os.File
)

// assertNoNetworkLeft checks that the user runs no pasta and that the
// state directory holds no network namespace, record or file of a
// sandbox's network (waiting a little: init reaps pasta).
func (e *rootlessEnv) assertNoNetworkLeft(t *testing.T, when string) {
	t.Helper()
	var procs, files []string
	ok := waitFor(5*time.Second, func() bool {
		procs, files = pastaProcs(e.uid, e.data), e.networkFiles()
		return len(procs) == 0 && len(files) == 0
	})
	if !ok {
		t.Errorf("%s: left behind: pasta processes %q, files %q", when, procs, files)
	}
}

// networkFiles are the files under the user's state directory that belong
// to sandboxes' networks: namespaces, attachment records, hosts and
// resolv.conf files (the lock stays).
func (e *rootlessEnv) networkFiles() []string {
	var out []string
	for _, d := range []string{"netns", "cni"} {
		_ = filepath.WalkDir(filepath.Join(e.data, "sbxrun", d), func(p string, de fs.DirEntry, err error) error {
			// host-local's bookkeeping of a network that exists is no
			// sandbox's (network rm removes it).
			if err == nil && !de.IsDir() && de.Name() != ".lock" && de.Name() != "lock" && !strings.HasPrefix(de.Name(), "last_reserved_ip") {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// pastaProcs are the pasta processes of uid for namespaces under dir
// (pasta's comm is passt or passt.avx2; its command line names the
// namespace); zombies, which hold nothing, are not counted.
func pastaProcs(uid int, dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, de := range entries {
		if _, err := strconv.Atoi(de.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "status"))
		if err != nil {
			continue
		}
		var name, state, puid string
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			switch k {
			case "Name":
				name = strings.TrimSpace(v)
			case "State":
				state = strings.TrimSpace(v)
			case "Uid":
				if f := strings.Fields(v); len(f) > 0 {
					puid = f[0]
				}
			}
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline"))
		if (strings.HasPrefix(name, "passt") || strings.HasPrefix(name, "pasta")) && !strings.HasPrefix(state, "Z") && puid == strconv.Itoa(uid) &&
			strings.Contains(string(cmdline), dir+"/") {
			out = append(out, de.Name()+" "+name)
		}
	}
	return out
}

// withoutSubIDs removes the test user's lines from /etc/subuid and
// /etc/subgid and returns the function that puts them back.
func withoutSubIDs(t *testing.T) func() {
	t.Helper()
	saved := map[string][]byte{}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		saved[f] = b
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, rootlessUser+":") {
				keep = append(keep, l)
			}
		}
		if err := os.WriteFile(f, []byte(strings.Join(keep, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for f, b := range saved {
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Errorf("restoring %s: %v", f, err)
			}
		}
	}
}

// testRootlessNamed checks named networks under rootless sbxrun: names and
// aliases between the sandboxes of one network, nothing across networks,
// no route out of an internal one, a published port of a named network's
// sandbox on the host, `network rm` refused while in use, and nothing
// left afterwards (no pasta, namespace, record or address; the bridge
// namespace goes with the last sandbox).
func testRootlessNamed(t *testing.T, e *rootlessEnv, run func(args ...string) (string, string, int)) {
	for _, args := range [][]string{{"backend"}, {"other"}, {"--internal", "sealed"}} {
		if out, stderr, code := e.run(append([]string{"network", "create"}, args...)...); code != 0 {
			t.Fatalf("network create %v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	defer e.run("network", "rm", "backend", "other", "sealed")
	out, stderr, code := e.run("network", "ls")
	if code != 0 || !strings.Contains(out, "backend") || !strings.Contains(out, "sealed") {
		t.Errorf("network ls: exit %d, stdout %q, stderr %q; want the user's networks", code, out, stderr)
	}
	port := freeHostPort(t)
	out, stderr, code = run("-d", "--name", "db", "--net", "backend", "--network-alias", "database", "-p", fmt.Sprintf("%d:8000", port),
		"base", "--", "sh", "-c", httpdScript("db"))
	if code != 0 {
		t.Fatalf("run -d --net backend: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	defer e.run("rm", "-f", "db")
	out, stderr, code = e.run("exec", "db", "sh", "-c", "ip -4 -o addr show eth0; ip route")
	m := regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+)/`).FindStringSubmatch(out)
	if code != 0 || m == nil || !regexp.MustCompile(`default via \S+ dev eth1`).MatchString(out) {
		t.Fatalf("exec db: exit %d, stdout %q, stderr %q; want an address on eth0 and the default route through pasta's eth1", code, out, stderr)
	}
	ip := m[1]
	// The published port, from the host.
	if body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/", port), 10*time.Second); err != nil || strings.TrimSpace(body) != "hello-db" {
		t.Errorf("GET 127.0.0.1:%d of a sandbox on a named network: %q, %v; want hello-db", port, body, err)
	}
	// Same network: by name, alias and address.
	out, stderr, code = run("--rm", "--net", "backend", "base", "--", "sh", "-c",
		fmt.Sprintf(hostsLookup+"for h in db database %s; do a=$(lookup $h); [ -n \"$a\" ] || a=$h; get $a || echo FAIL $h; done", ip))
	if code != 0 || out != "hello-db\nhello-db\nhello-db\n" {
		t.Errorf("a sandbox on the same network: exit %d, stdout %q, stderr %q; want hello-db by name, alias and address", code, out, stderr)
	}
	// Another network: neither the name nor the address.
	out, stderr, code = run("--rm", "--net", "other", "base", "--", "sh", "-c",
		fmt.Sprintf(hostsLookup+"[ -n \"$(lookup db)\" ] && echo NAMED; get %s || echo NOROUTE", ip))
	if code != 0 || strings.Contains(out, "hello") || strings.Contains(out, "NAMED") || !strings.Contains(out, "NOROUTE") {
		t.Errorf("a sandbox on another network: exit %d, stdout %q, stderr %q; want neither the name nor the address to answer", code, out, stderr)
	}
	// Internal: the network's names, but no interface or route out.
	out, stderr, code = run("--rm", "--net", "sealed", "base", "--", "sh", "-c", "ls /sys/class/net | tr '\\n' ' '; echo; ip route")
	if code != 0 || strings.Contains(out, "default") || strings.Contains(out, "eth1") || !strings.Contains(out, "eth0") {
		t.Errorf("a sandbox on an internal network: exit %d, stdout %q, stderr %q; want eth0 only and no default route", code, out, stderr)
	}
	out, stderr, code = run("--rm", "--net", "sealed", "-p", "8000", "base", "--", "true")
	if code != 125 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "is internal: it publishes no ports") {
		t.Errorf("-p on an internal network: exit %d, stdout %q, stderr %q; want 125 and one line", code, out, stderr)
	}
	// In use: refused, nothing removed.
	out, stderr, code = e.run("network", "rm", "backend")
	if code != 125 || !strings.Contains(stderr, "in use by") {
		t.Errorf("network rm of a network in use: exit %d, stdout %q, stderr %q; want 125", code, out, stderr)
	}
	// A network that is not there, and an alias on the default network.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--net", "nosuch", "base", "--", "true"}, "sbxrun network create nosuch"},
		{[]string{"--network-alias", "x", "base", "--", "true"}, "--network-alias needs a named network"},
	} {
		out, stderr, code = run(tc.args...)
		if code != 125 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 125 and one line with %q", tc.args, code, out, stderr, tc.want)
		}
	}
	// A SIGKILLed run on a named network, then gc.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.sbxrun, "run", "--rm", "--pull", "never", "--name", "killed", "--net", "backend", "base", "--", "sleep", "60")
	cmd.Dir = e.project
	cmd.Env = e.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.uid), Gid: uint32(e.gid), Groups: []uint32{}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool {
		out, _, _ := e.run("exec", "db", "cat", "/etc/hosts")
		return strings.Contains(out, "killed")
	}) {
		t.Errorf("db's /etc/hosts never listed the sandbox that joined later")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if out, stderr, code := e.run("gc"); code != 0 {
		t.Errorf("gc: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if out, _, _ := e.run("exec", "db", "cat", "/etc/hosts"); strings.Contains(out, "killed") {
		t.Errorf("db's /etc/hosts still lists the killed sandbox after gc:\n%s", out)
	}
	// The daemon stops with db on backend: its pasta, namespace, record and
	// address go (the bridge namespace with RootlessKit's mount
	// namespace); started again, the network works.
	if out, stderr, code := e.run("rootless", "stop"); code != 0 {
		t.Fatalf("rootless stop: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	e.assertNoNetworkLeft(t, "after rootless stop with a sandbox on a named network")
	if out, stderr, code := e.run("rootless", "start"); code != 0 {
		t.Fatalf("rootless start: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	out, stderr, code = run("--rm", "--net", "backend", "base", "--", "sh", "-c", "ip -4 -o addr show eth0 && ip route | grep -c '^default'")
	if code != 0 || !strings.Contains(out, "inet 10.") || !strings.HasSuffix(out, "1\n") {
		t.Errorf("a run on backend after the daemon's restart: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// (rootless stop ended db, and removed it.)
	if out, stderr, code := e.run("network", "rm", "backend", "other", "sealed"); code != 0 {
		t.Errorf("network rm: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	e.assertNoNetworkLeft(t, "after named networks, a SIGKILLed run, gc, rm and network rm")
}

// testRootlessCompose: a compose project under rootless sbxrun, whose
// services find each other by name on the project's network and publish
// a port to the host; `down` leaves nothing (network included).
func testRootlessCompose(t *testing.T, e *rootlessEnv) {
	port := freeHostPort(t)
	dir := filepath.Join(e.project, "proj")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`services:
  web:
    image: %s
    command: ["sh", "-c", %q]
    ports: ["%d:8000"]
    stop_signal: SIGKILL
  client:
    image: %s
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8000/ && break; sleep 0.5; done; sleep 300"]
    depends_on: [web]
    stop_signal: SIGKILL
`, baseRef, httpdScript("web"), port, baseRef)
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, e.uid, e.gid); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) (string, string, int) {
		return e.run(append([]string{"compose", "--project-directory", dir, "-f", filepath.Join(dir, "compose.yaml")}, args...)...)
	}
	if out, stderr, code := compose("up", "-d"); code != 0 {
		t.Fatalf("compose up -d: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	defer compose("down")
	if body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/", port), 10*time.Second); err != nil || strings.TrimSpace(body) != "hello-web" {
		t.Errorf("GET 127.0.0.1:%d of the web service: %q, %v; want hello-web", port, body, err)
	}
	var logs string
	if !waitFor(10*time.Second, func() bool {
		logs, _, _ = compose("logs", "client")
		return strings.Contains(logs, "hello-web")
	}) {
		t.Errorf("the client service never reached web by name; its logs:\n%s", logs)
	}
	if out, stderr, code := compose("down"); code != 0 {
		t.Errorf("compose down: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if out, _, _ := e.run("network", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("networks left after compose down: %q", out)
	}
	e.assertNoNetworkLeft(t, "after compose up and down")
}
