package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInputRefused: input that sbxrun used to accept and then lose, or
// leave to runc to refuse late, is one line, exit 125 and nothing created:
// two mounts at one target on one command line, a --mount key given twice,
// a NUL byte in an --env-file, a stop signal outside 1..64.
func TestInputRefused(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	envFile := filepath.Join(dir, "nul.env")
	if err := os.WriteFile(envFile, []byte("A=1\nB=x\x00y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"two-volumes-one-target", []string{"-v", a + ":/data", "-v", b + ":/data"}, `-v/--mount /data: two mounts at "/data": keep one`},
		{"volume-and-mount-one-target", []string{"-v", a + ":/data", "--mount", "type=bind,source=" + b + ",target=/data/"}, `two mounts at "/data": keep one`},
		{"volume-and-tmpfs-one-target", []string{"-v", a + ":/data", "--mount", "type=tmpfs,target=/data"}, `two mounts at "/data": keep one`},
		{"bind-propagation-twice", []string{"--mount", "type=bind,source=" + a + ",target=/x,bind-propagation=rslave,bind-propagation=rshared"}, `key "bind-propagation" given twice: keep one`},
		{"src-and-source", []string{"--mount", "type=bind,src=" + a + ",source=" + b + ",target=/x"}, `keys "src" and "source" are one key given twice: keep one`},
		{"nul-in-env-file", []string{"--env-file", envFile}, envFile + ":2: a NUL byte"},
		{"stop-signal-65", []string{"--stop-signal", "65"}, `unknown signal "65"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			args := append(append([]string{"run", "--pull", "never", "--name", name}, tt.args...), "base", "--", "echo", "workload-ran")
			stdout, stderr, code := runWith(t, opts{dir: dir}, args...)
			expect(t, tt.name, code, 125, stdout, stderr)
			if msg := strings.TrimSpace(stderr); strings.Contains(msg, "\n") || !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q: want one line containing %q", msg, tt.want)
			}
			if strings.Contains(stdout, "workload-ran") {
				t.Errorf("the workload ran: %q", stdout)
			}
			assertGone(t, name)
		})
	}

	// Layers still merge by target: a mount of a --config file is replaced
	// by the command line's at the same target.
	t.Run("layers-merge-by-target", func(t *testing.T) {
		t.Parallel()
		if err := os.WriteFile(filepath.Join(b, "from-b"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "sbxrun.yaml")
		if err := os.WriteFile(cfg, []byte("profiles:\n  base:\n    mounts:\n      - "+a+":/data\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := runWith(t, opts{dir: dir}, "--config", cfg, "run", "--pull", "never", "-v", b+":/data", "base", "--", "ls", "/data")
		expect(t, "run", code, 0, stdout, stderr)
		if strings.TrimSpace(stdout) != "from-b" {
			t.Errorf("/data holds %q, want the command line's mount (from-b)", stdout)
		}
	})
}

// TestKillSignalRange: kill refuses a signal number outside 1..64 in one
// line, before it looks for the sandbox, and the sandbox keeps running.
func TestKillSignalRange(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	name := nameFor(t)
	stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--name", name, "base", "--", "sleep", "600")
	expect(t, "run -d", code, 0, stdout, stderr)
	defer func() {
		stdout, stderr, code := run(t, "rm", "-f", name)
		expect(t, "rm -f", code, 0, stdout, stderr)
		assertGone(t, name)
	}()
	for _, sig := range []string{"65", "-1", "-9999", "0", "99999999999999999999", "SIGNOPE"} {
		for _, target := range []string{name, "no-such-sandbox"} {
			stdout, stderr, code := run(t, "kill", "-s", sig, target)
			expect(t, "kill -s "+sig+" "+target, code, 125, stdout, stderr)
			want := `invalid signal "` + sig + `": use a name such as TERM or KILL, or a number from 1 to 64`
			if msg := strings.TrimSpace(stderr); strings.Contains(msg, "\n") || !strings.Contains(msg, want) {
				t.Errorf("kill -s %s %s: stderr %q, want one line containing %q", sig, target, msg, want)
			}
		}
	}
	if e, ok := psFind(t, name); !ok || e.Status != "running" {
		t.Fatalf("after the refused kills: %+v (found %v), want %s running", e, ok, name)
	}
	stdout, stderr, code = run(t, "kill", "-s", "64", name)
	expect(t, "kill -s 64", code, 0, stdout, stderr)
}

// mkimage builds a busybox image with hack/mkimage's extra args and loads
// it into t's namespace as ref; it is removed when t ends.
func mkimage(t *testing.T, ref string, args ...string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.tar")
	bin := filepath.Join(harness.root, "bin", "mkimage")
	if b, err := exec.Command(bin, append([]string{"-o", out, "-ref", ref, "-workdir", "/"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v\n%s", err, b)
	}
	stdout, stderr, code := run(t, "load", "-i", out)
	expect(t, "load", code, 0, stdout, stderr)
	t.Cleanup(func() {
		stdout, stderr, code := run(t, "rmi", ref)
		expect(t, "rmi", code, 0, stdout, stderr)
	})
}

// TestLongImageName: a run by an image reference longer than a hostname
// gets a generated name cut to a valid length, not an error about --name.
func TestLongImageName(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	repo := strings.Repeat("a-very-long-image-name-", 6) + "end"
	ref := "localhost/sbxrun-test/" + repo + ":1"
	mkimage(t, ref)
	stdout, stderr, code := run(t, "run", "--pull", "never", ref, "--", "hostname")
	expect(t, "run", code, 0, stdout, stderr)
	host := strings.TrimSpace(stdout)
	if len(host) > 64 || !strings.HasPrefix(host, "a-very-long-image-name-a-very") {
		t.Errorf("hostname %q (%d characters): want the image's name cut to at most 64", host, len(host))
	}
}

// TestLinkedMountTarget: runc resolves mount targets through the image's
// symlinks. An image with /workspace -> /etc would put the host directory
// at /etc, and runc would then create hosts and resolv.conf in it for the
// /etc binds; the run is refused in one line and the directory stays
// empty. A link that no other mount meets is followed, as Docker does.
func TestLinkedMountTarget(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	const ref = "localhost/sbxrun-test/linked:1"
	mkimage(t, ref, "-symlink", "workspace=/etc", "-symlink", "data=/srv/data")

	t.Run("into-etc", func(t *testing.T) {
		for _, args := range [][]string{
			{"-v", ".:/workspace"},
			{"--mount", "type=bind,source=.,target=/workspace,readonly"},
		} {
			host := t.TempDir()
			name := nameFor(t)
			stdout, stderr, code := runWith(t, opts{dir: host}, append(append([]string{"run", "--pull", "never", "--name", name}, args...), ref, "--", "echo", "workload-ran")...)
			expect(t, strings.Join(args, " "), code, 125, stdout, stderr)
			want := `mount target "/workspace" is a symlink to "/etc" in image ` + ref
			if msg := strings.TrimSpace(stderr); strings.Contains(msg, "\n") || !strings.Contains(msg, want) || !strings.HasSuffix(msg, "mount at a target that is no symlink in the image, or fix the image") {
				t.Errorf("stderr %q: want one line containing %q and the fix", msg, want)
			}
			if entries, _ := os.ReadDir(host); len(entries) != 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("the refused run created %q in the host directory", names)
			}
			assertGone(t, name)
		}
	})
	t.Run("followed", func(t *testing.T) {
		host := t.TempDir()
		if err := os.WriteFile(filepath.Join(host, "marker"), []byte("from-the-host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := runWith(t, opts{dir: host}, "run", "--pull", "never", "-v", host+":/data", ref, "--", "cat", "/data/marker", "/srv/data/marker")
		expect(t, "run", code, 0, stdout, stderr)
		if stdout != "from-the-host\nfrom-the-host\n" {
			t.Errorf("stdout %q: want the marker through /data and /srv/data", stdout)
		}
		if entries, _ := os.ReadDir(host); len(entries) != 1 {
			t.Errorf("the host directory holds %d entries, want only the marker", len(entries))
		}
	})
}
