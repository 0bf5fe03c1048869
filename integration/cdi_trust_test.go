package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/hooks"
)

// otherUser owns the files another local user could have put in the way.
const otherUser = 4242

// TestRootlessCDITrust: in the rootless namespace root's files and any
// other user's show as the same overflow uid; sbxrun tells them apart by
// what it saw on the host before entering. A root-owned spec in /etc/cdi
// (reached through RootlessKit's copy-up) with a root-owned hook binary
// gives the device and runs the hook; a spec or hook of another
// unprivileged user is refused in one line that names the file and the
// fix; and a process that entered a user namespace by itself trusts
// neither.
//
// Not parallel: every rootless test runs the same user's containerd, whose
// data directory newRootlessEnv removes at the end.
func TestRootlessCDITrust(t *testing.T) {
	e := newRootlessEnv(t)
	for _, args := range [][]string{{"rootless", "setup"}, {"rootless", "start"}, {"load", "-i", e.image}} {
		if out, stderr, code := e.run(args...); code != 0 {
			t.Fatalf("%v as %s: exit %d\nstdout: %s\nstderr: %s", args, rootlessUser, code, out, stderr)
		}
	}
	const device = "sbxrun-it.example.com/trust=ok"
	// e.sbxrun is root's, 0755, in root's 0755 directory under /tmp: a
	// hook binary every run may trust.
	writeSpec := func(dir, hook string) string {
		t.Helper()
		spec := cdispecs.Spec{Version: "0.6.0", Kind: "sbxrun-it.example.com/trust", Devices: []cdispecs.Device{{
			Name: "ok",
			ContainerEdits: cdispecs.ContainerEdits{
				Env: []string{"SBXRUN_TRUST=ok"},
				Hooks: []*cdispecs.Hook{{HookName: "createContainer", Path: hook,
					Args: []string{hooks.Name, "create-symlinks", "--link", "trusted::/sbxrun-trust-link"}}},
			},
		}}}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "sbxrun-it-trust.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string) string {
		t.Helper()
		d := filepath.Join(e.dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("root's spec in /etc/cdi and root's hook", func(t *testing.T) {
		made := false
		if _, err := os.Stat("/etc/cdi"); os.IsNotExist(err) {
			if err := os.Mkdir("/etc/cdi", 0o755); err != nil {
				t.Fatal(err)
			}
			made = true
		}
		spec := writeSpec("/etc/cdi", e.sbxrun)
		t.Cleanup(func() {
			_ = os.Remove(spec)
			if made {
				_ = os.Remove("/etc/cdi")
			}
		})
		out, stderr, code := e.run("base", "--pull", "never", "--device", device, "--", "sh", "-c", "echo $SBXRUN_TRUST; readlink /sbxrun-trust-link")
		if code != 0 || out != "ok\ntrusted\n" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want the device's env and the link its hook made", code, out, stderr)
		}
	})

	t.Run("another user's spec is refused", func(t *testing.T) {
		dir := mkdir("their-spec")
		spec := writeSpec(dir, e.sbxrun)
		if err := os.Chown(spec, otherUser, otherUser); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := e.run("--cdi-spec-dir", dir, "base", "--pull", "never", "--device", device, "--", "echo", "ran")
		want := `CDI spec "` + spec + `" is owned by uid 4242, neither root nor you: refusing it (chown root ` + spec + ` if it is yours to trust)`
		t.Logf("stderr: %s", stderr)
		if code != 125 || out != "" || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("exit %d, stdout %q, stderr %q; want 125 and one line with %q", code, out, stderr, want)
		}
	})

	t.Run("another user's hook is refused", func(t *testing.T) {
		hook := filepath.Join(mkdir("their-bin"), "sbxrun")
		copyFile(t, e.sbxrun, hook, 0o755)
		if err := os.Chown(hook, otherUser, otherUser); err != nil {
			t.Fatal(err)
		}
		dir := mkdir("their-hook")
		spec := writeSpec(dir, hook)
		out, stderr, code := e.run("--cdi-spec-dir", dir, "base", "--pull", "never", "--device", device, "--", "echo", "ran")
		want := `hook "` + hook + `" of CDI spec "` + spec + `" is owned by uid 4242, neither root nor you: refusing it (chown root ` + hook + ` if it is yours to trust)`
		t.Logf("stderr: %s", stderr)
		if code != 125 || out != "" || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("exit %d, stdout %q, stderr %q; want 125 and one line with %q", code, out, stderr, want)
		}
	})

	t.Run("a user namespace sbxrun did not enter itself trusts neither", func(t *testing.T) {
		// The reviewer's reproduction: sbxrun started inside a user
		// namespace, with nothing recorded on the host.
		for _, owner := range []int{0, otherUser} {
			dir := filepath.Join(e.dir, "unshared-"+map[int]string{0: "root", otherUser: "other"}[owner])
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			spec := writeSpec(dir, e.sbxrun)
			if err := os.Chown(dir, owner, owner); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(spec, owner, owner); err != nil {
				t.Fatal(err)
			}
			out, code := e.unshared(t, "--cdi-spec-dir", dir, "gpu", "status")
			want := spec + `  REFUSED: CDI spec "` + spec + `": CDI spec directory "` + dir + `" is owned by uid 65534, which in this user namespace stands for root or any other user outside it, and sbxrun did not check which before entering it`
			t.Logf("output: %s", out)
			if code != 1 || !strings.Contains(out, want) {
				t.Errorf("owner %d: exit %d, output %q; want 1 and %q", owner, code, out, want)
			}
		}
	})
}

// unshared runs sbxrun as the test user inside a user namespace of its own
// (`unshare -U -r`), marked as the rootless one as sbxrun marks it, and
// returns its combined output and exit code.
func (e *rootlessEnv) unshared(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-U", "-r", e.sbxrun}, args...)...)
	cmd.Dir = e.project
	cmd.Env = []string{"HOME=" + e.home, "USER=" + rootlessUser, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + e.xdg, "SBXRUN_ROOTLESS=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.uid), Gid: uint32(e.gid), Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sbxrun %v in a user namespace timed out:\n%s", args, out.String())
	}
	return out.String(), exitCode(err, cmd)
}
