package integration

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// keepIDUser is a real unprivileged host user (uid not 1000) whose files
// the keep-id tests keep, as if they ran `sudo sbxrun ...`.
const keepIDUser = "sbxrun-keepid"

// hostUser creates keepIDUser when missing and returns its uid, gid and
// home.
func hostUser(t *testing.T) (uid, gid int, home string) {
	t.Helper()
	u, err := user.Lookup(keepIDUser)
	if err != nil {
		if _, err := exec.LookPath("useradd"); err != nil {
			t.Fatal("useradd not found: install it with: apt-get install -y passwd")
		}
		if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", keepIDUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v: %s", keepIDUser, err, out)
		}
		if u, err = user.Lookup(keepIDUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if uid == 1000 {
		t.Fatalf("%s has uid 1000, the image user's: the test needs another uid (userdel %s, then rerun)", keepIDUser, keepIDUser)
	}
	return uid, gid, u.HomeDir
}

// project makes a project directory owned by uid:gid with a file
// "existing" (0644) that only its owner may write.
func project(t *testing.T, uid, gid int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "project")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "existing")
	if err := os.WriteFile(f, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, f} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func owner(t *testing.T, path string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// TestKeepID: with the default --userns keep-id, what a sandbox writes to
// its workspace and caches belongs to the workspace's owner on the host (the
// sudo user, or root), existing files there are writable, the image's user
// keeps its name, HOME and the tools in it; --userns host is today's
// behaviour and -u 0 is root.
func TestKeepID(t *testing.T) {
	t.Parallel()
	useNamespace(t, true)
	uid, gid, home := hostUser(t)
	sudo := []string{"SUDO_UID=" + strconv.Itoa(uid), "SUDO_GID=" + strconv.Itoa(gid), "SUDO_USER=" + keepIDUser}

	tests := []struct {
		name      string
		asUser    bool // as if run with sudo by keepIDUser
		image     string
		args      []string
		wantName  string
		wantOwner int
		tool      bool
	}{
		{name: "sudo-user dev-image", asUser: true, image: plainRef, wantName: "dev", wantOwner: uid, tool: true},
		{name: "sudo-user root-image", asUser: true, image: baseRef, wantName: "root", wantOwner: uid},
		{name: "root dev-image", image: plainRef, wantName: "dev", wantOwner: 0, tool: true},
		{name: "root root-image", image: baseRef, wantName: "root", wantOwner: 0},
		{name: "sudo-user -u 0", asUser: true, image: plainRef, args: []string{"-u", "0"}, wantName: "root", wantOwner: uid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := opts{}
			pu, pg := 0, 0
			if tt.asUser {
				o.env, pu, pg = sudo, uid, gid
			}
			dir := project(t, pu, pg)
			o.dir = dir
			script := `set -e; touch /workspace/new; echo more >> /workspace/existing; touch "$HOME/probe"; id -un`
			if tt.tool {
				script += `; "$HOME/.local/bin/dev-tool"`
			}
			args := append([]string{"run", "--pull", "never", "-v", dir + ":/workspace"}, tt.args...)
			args = append(args, tt.image, "--", "sh", "-c", script)
			stdout, stderr, code := runWith(t, o, args...)
			expect(t, "keep-id run", code, 0, stdout, stderr)
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) == 0 || lines[0] != tt.wantName {
				t.Errorf("id -un printed %q, want %q", stdout, tt.wantName)
			}
			if tt.tool && (len(lines) < 2 || lines[1] != "dev-tool runs as dev") {
				t.Errorf("the tool in the image user's HOME printed %q, want %q", stdout, "dev-tool runs as dev")
			}
			if u, _ := owner(t, filepath.Join(dir, "new")); u != tt.wantOwner {
				t.Errorf("/workspace/new is owned by uid %d on the host, want %d", u, tt.wantOwner)
			}
			if u, _ := owner(t, filepath.Join(dir, "existing")); u != pu {
				t.Errorf("/workspace/existing changed owner to %d, want %d", u, pu)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "existing")); string(b) != "old\nmore\n" {
				t.Errorf("existing holds %q, want the sandbox's line appended", b)
			}
		})
	}

	t.Run("cache", func(t *testing.T) {
		t.Parallel()
		cache := filepath.Join(home, ".cache", "sbxrun-keepid-test")
		_ = os.RemoveAll(cache)
		t.Cleanup(func() { _ = os.RemoveAll(cache) })
		cfg := filepath.Join(t.TempDir(), "sbxrun.yaml")
		yaml := "profiles:\n  cachetest:\n    image: " + plainRef + "\n    mounts:\n      - {source: ~/.cache/sbxrun-keepid-test, target: ~/.cache/models, create: true}\n"
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		o := opts{dir: project(t, uid, gid), env: append(append([]string{}, sudo...), "HOME="+home)}
		stdout, stderr, code := runWith(t, o, "--config", cfg, "run", "--pull", "never", "cachetest", "--", "sh", "-c", "touch $HOME/.cache/models/weights && id -un")
		expect(t, "keep-id cache run", code, 0, stdout, stderr)
		for _, p := range []string{cache, filepath.Join(cache, "weights")} {
			if u, g := owner(t, p); u != uid || g != gid {
				t.Errorf("%s is owned by %d:%d on the host, want the sudo user's %d:%d", p, u, g, uid, gid)
			}
		}
	})

	// exec joins the keep-id sandbox as its user; the sandbox's passwd is
	// the image's (no host user added), so two users' sandboxes of one
	// image share nothing.
	t.Run("exec and passwd", func(t *testing.T) {
		t.Parallel()
		dir := project(t, uid, gid)
		name := nameFor(t)
		o := opts{dir: dir, env: sudo}
		stdout, stderr, code := runWith(t, o, "run", "-d", "--pull", "never", "--name", name, "-v", dir+":/workspace", plainRef, "--", "sleep", "60")
		expect(t, "run -d", code, 0, stdout, stderr)
		t.Cleanup(func() { run(t, "rm", "-f", name) })
		stdout, stderr, code = run(t, "exec", name, "--", "sh", "-c", "touch /workspace/from-exec; id -un; grep -c "+keepIDUser+" /etc/passwd || true")
		expect(t, "exec", code, 0, stdout, stderr)
		if got := strings.Fields(stdout); len(got) != 2 || got[0] != "dev" || got[1] != "0" {
			t.Errorf("exec printed %q, want dev and 0 (the host user is not in the sandbox's /etc/passwd)", stdout)
		}
		if u, _ := owner(t, filepath.Join(dir, "from-exec")); u != uid {
			t.Errorf("a file exec wrote is owned by %d on the host, want %d", u, uid)
		}
	})

	t.Run("userns host", func(t *testing.T) {
		t.Parallel()
		dir := project(t, uid, gid)
		stdout, stderr, code := runWith(t, opts{dir: dir, env: sudo}, "run", "--pull", "never", "--userns", "host", "-v", dir+":/workspace",
			plainRef, "--", "sh", "-c", "id -u; touch /workspace/new")
		if code == 0 || !strings.Contains(stderr+stdout, "Permission denied") {
			t.Errorf("--userns host: exit %d, output %q %q; want dev (1000) refused in a directory of uid %d, as before keep-id", code, stdout, stderr, uid)
		}
		if _, err := os.Lstat(filepath.Join(dir, "new")); err == nil {
			t.Error("--userns host created a file in a directory its user may not write")
		}
	})

	t.Run("spec and bad value", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := run(t, "spec", "--pull", "never", "-u", "1000", plainRef)
		expect(t, "sbxrun spec", code, 0, stdout, stderr)
		if !strings.Contains(stdout, `"sbxrun.userns": "keep-id"`) {
			t.Errorf("sbxrun spec does not show the userns choice:\n%s", stdout)
		}
		stdout, stderr, code = run(t, "run", "--pull", "never", "--userns", "keepid", plainRef, "--", "true")
		if code != 125 || !strings.Contains(stderr, "keep-id") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("--userns keepid: exit %d, stderr %q; want 125 and one line naming keep-id", code, stderr)
		}
	})
}

// TestKeepIDNoLeftovers: keep-id's idmapped staging leaves no mount and
// no staging directory behind. Not parallel: it counts host-wide.
func TestKeepIDNoLeftovers(t *testing.T) {
	useNamespace(t, true)
	uid, gid, _ := hostUser(t)
	stageDir := filepath.Join(os.Getenv("SBXRUN_STATE_DIR"), "mounts")
	staged := func() int { e, _ := os.ReadDir(stageDir); return len(e) }
	mountsBefore, stagedBefore := stagingMounts(t), staged()
	dir := project(t, uid, gid)
	env := []string{"SUDO_UID=" + strconv.Itoa(uid), "SUDO_GID=" + strconv.Itoa(gid)}
	for i := 0; i < 5; i++ {
		stdout, stderr, code := runWith(t, opts{dir: dir, env: env}, "run", "--pull", "never", "-v", dir+":/workspace", plainRef, "--", "touch", "/workspace/f"+strconv.Itoa(i))
		expect(t, "keep-id run", code, 0, stdout, stderr)
		if u, _ := owner(t, filepath.Join(dir, "f"+strconv.Itoa(i))); u != uid {
			t.Errorf("f%d is owned by %d, want %d", i, u, uid)
		}
	}
	if after := stagingMounts(t); after != mountsBefore {
		t.Errorf("staging mounts: %d before, %d after 5 keep-id runs", mountsBefore, after)
	}
	if after := staged(); after != stagedBefore {
		t.Errorf("staging directories: %d before, %d after 5 keep-id runs", stagedBefore, after)
	}
}

// stagingMounts is the number of mounts under the state dir's staging
// directory (STATE/mounts) in this mount namespace.
func stagingMounts(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(os.Getenv("SBXRUN_STATE_DIR"), "mounts") + "/"
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			n++
		}
	}
	return n
}
