package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProjectFileTrust: a cloned repository's ./sbxrun.yaml that asks for
// more than an untrusted file may (here SYS_ADMIN spelt with a leading
// space, which once slipped past a deny list, and a cache directory
// outside the project) is refused with one line, exit 125, no container and no
// directory; `sbxrun trust` makes it the user's choice; a change to the
// file makes it untrusted again; `trust --revoke` forgets it.
func TestProjectFileTrust(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	project := t.TempDir()
	store := filepath.Join(t.TempDir(), "trust.json")
	shm := filepath.Join(t.TempDir(), "outside", "cache")
	file := filepath.Join(project, "sbxrun.yaml")
	write := func(extra string) {
		t.Helper()
		yaml := "profiles:\n  base:\n    cap_add: [\" SYS_ADMIN\"]\n    mounts:\n      - {source: " + shm + ", target: /cache, create: true}\n" + extra
		if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	o := opts{dir: project, env: []string{"SBXRUN_TRUST_FILE=" + store}}

	name := nameFor(t, "untrusted")
	out, stderr, code := sandboxWith(t, o, name, "base", "--", "true")
	if code != 125 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, file+":3: cap_add: SYS_ADMIN is not allowed from an untrusted project file") ||
		!strings.Contains(stderr, "sbxrun trust "+project) {
		t.Fatalf("untrusted: exit %d, stdout %q, stderr %q; want 125 and one line naming %s:3, cap_add and `sbxrun trust`", code, out, stderr, file)
	}
	if _, err := os.Lstat(shm); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run created %s", shm)
	}

	out, stderr, code = runWith(t, o, "trust")
	if code != 0 || !strings.Contains(out, "trusted "+file) {
		t.Fatalf("sbxrun trust: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	out, stderr, code = runWith(t, o, "trust", "--list")
	if code != 0 || !strings.HasPrefix(out, "trusted ") || !strings.Contains(out, file) {
		t.Errorf("sbxrun trust --list: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// Trusted: the capability is granted and the cache created.
	out, stderr, code = sandboxWith(t, o, nameFor(t, "trusted"), "base", "--", "cat", "/proc/self/status")
	expect(t, "trusted run", code, 0, out, stderr)
	capEff, err := strconv.ParseUint(statusField(out, "CapEff"), 16, 64)
	if err != nil || capEff&(1<<capSysAdmin) == 0 {
		t.Errorf("trusted run: CapEff %q lacks CAP_SYS_ADMIN", statusField(out, "CapEff"))
	}
	if fi, err := os.Stat(shm); err != nil || !fi.IsDir() {
		t.Errorf("trusted run did not create %s: %v", shm, err)
	}
	os.RemoveAll(shm)

	// Changed after trust: untrusted again.
	write("    env: {CHANGED: \"1\"}\n")
	out, stderr, code = sandboxWith(t, o, nameFor(t, "changed"), "base", "--", "true")
	if code != 125 || !strings.Contains(stderr, "untrusted project file") {
		t.Errorf("changed file: exit %d, stdout %q, stderr %q; want 125, untrusted", code, out, stderr)
	}
	out, _, _ = runWith(t, o, "trust", "--list")
	if !strings.HasPrefix(out, "changed ") {
		t.Errorf("trust --list after a change: %q, want the file marked changed", out)
	}

	// Trusted anew, then revoked.
	if _, stderr, code := runWith(t, o, "trust", project); code != 0 {
		t.Fatalf("sbxrun trust DIR: exit %d, %s", code, stderr)
	}
	if out, stderr, code := runWith(t, o, "trust", "--revoke", project); code != 0 || !strings.Contains(out, "revoked "+file) {
		t.Fatalf("sbxrun trust --revoke: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if out, stderr, code := sandboxWith(t, o, nameFor(t, "revoked"), "base", "--", "true"); code != 125 || !strings.Contains(stderr, "untrusted project file") {
		t.Errorf("revoked: exit %d, stdout %q, stderr %q; want 125", code, out, stderr)
	}
	if _, err := os.Lstat(shm); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run created %s", shm)
	}

	// Bad input to trust itself.
	if _, stderr, code := runWith(t, o, "trust", t.TempDir()); code != 125 || !strings.Contains(stderr, "no project file") {
		t.Errorf("trust of a directory without sbxrun.yaml: exit %d, stderr %q; want 125", code, stderr)
	}
}

// TestProjectFileMounts: an untrusted project file may mount its own
// directory and files in it (here: its data at /data), and nothing outside
// it, also not through a symlink the repository ships.
func TestProjectFileMounts(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	project := t.TempDir()
	if err := os.MkdirAll(filepath.Join(project, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "data", "in-project"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(project, "etc")); err != nil {
		t.Fatal(err)
	}
	o := opts{dir: project, env: []string{"SBXRUN_TRUST_FILE=" + filepath.Join(t.TempDir(), "trust.json")}}
	write := func(mounts string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(project, "sbxrun.yaml"), []byte("profiles:\n  base:\n    mounts: "+mounts+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write(`["./data:/data:ro"]`)
	out, stderr, code := sandboxWith(t, o, nameFor(t, "inside"), "base", "--", "ls", "/data")
	expect(t, "project data", code, 0, out, stderr)
	if strings.TrimSpace(out) != "in-project" {
		t.Errorf("ls /data = %q, want in-project", out)
	}

	for _, tc := range []struct{ mounts, want string }{
		{`["~/.ssh:/s"]`, "outside the project directory"},
		{`["/var/lib:/v"]`, "outside the project directory"},
		{`["./etc:/e"]`, `bind mount of "/etc" (outside the project directory`},
	} {
		write(tc.mounts)
		out, stderr, code := sandboxWith(t, o, nameFor(t, "outside"), "base", "--", "true")
		if code != 125 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("mounts %s: exit %d, stdout %q, stderr %q; want 125 and one line containing %q", tc.mounts, code, out, stderr, tc.want)
		}
	}
}
