package integration

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
	for _, bin := range []string{"rootlesskit", "newuidmap", "nsenter", "useradd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install it with: apt-get install -y rootlesskit uidmap util-linux passwd", bin)
		}
	}
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
	copyFile(t, harness.baseImage, e.image, 0o644)
	e.xdg = filepath.Join(dir, "run")
	e.project = filepath.Join(dir, "project")
	for _, d := range []string{e.xdg, e.project} {
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

func (e *rootlessEnv) runIn(stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.sbxrun, args...)
	cmd.Dir = e.project
	cmd.Env = []string{"HOME=" + e.home, "USER=" + rootlessUser, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if !e.dropXDG {
		cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+e.xdg)
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

	t.Run("network", func(t *testing.T) {
		// No network of its own yet: the default is the host's (the
		// daemon's RootlessKit namespace shares it), --net host works,
		// and --net bridge is one line naming what is missing.
		hostNS, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{nil, {"--net", "host"}} {
			out, stderr, code := e.run(append(append([]string{"base", "--pull", "never"}, args...), "--", "readlink", "/proc/self/ns/net")...)
			if code != 0 || strings.TrimSpace(out) != hostNS {
				t.Errorf("%q: exit %d, namespace %q, stderr %q; want 0 and the host's %s", args, code, out, stderr, hostNS)
			}
		}
		out, stderr, code := e.run("base", "--pull", "never", "--net", "bridge", "--", "true")
		if code != 125 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "without pasta or slirp4netns") || !strings.Contains(stderr, "use --net host") {
			t.Errorf("--net bridge: exit %d, stdout %q, stderr %q; want 125 and one line naming the missing piece and the fix", code, out, stderr)
		}
	})

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

	if out, stderr, code := e.run("rootless", "stop"); code != 0 || !strings.Contains(out, "stopped rootless containerd") {
		t.Errorf("rootless stop: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(e.xdg, "sbxrun", "containerd.sock")); err == nil {
		t.Error("the rootless socket is still there after stop")
	}
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
