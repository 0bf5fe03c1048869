package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

// doctorEnv keeps the host's Docker config out of the checks.
func doctorEnv(t *testing.T) []string {
	return []string{"DOCKER_CONFIG=" + t.TempDir()}
}

func parseDoctor(t *testing.T, stdout string) map[string]doctorCheck {
	t.Helper()
	var checks []doctorCheck
	if err := json.Unmarshal([]byte(stdout), &checks); err != nil {
		t.Fatalf("doctor --format json is not a JSON array: %v\n%s", err, stdout)
	}
	byName := map[string]doctorCheck{}
	for _, c := range checks {
		switch c.Status {
		case "ok":
		case "warn", "fail":
			if c.Fix == "" {
				t.Errorf("%s is %s without a fix: %+v", c.Name, c.Status, c)
			}
		default:
			t.Errorf("check %s has status %q, want ok, warn or fail", c.Name, c.Status)
		}
		byName[c.Name] = c
	}
	return byName
}

func anyFailed(checks map[string]doctorCheck) bool {
	for _, c := range checks {
		if c.Status == "fail" {
			return true
		}
	}
	return false
}

// TestDoctor runs `sbxrun doctor` against the harness's healthy
// containerd, without a daemon, with a stale NVIDIA CDI spec and as a
// user without a subuid range. Not parallel: it takes the rootless test
// user's subuid range away for a moment.
func TestDoctor(t *testing.T) {
	requireHarness(t)
	empty := t.TempDir()

	t.Run("healthy daemon", func(t *testing.T) {
		stdout, stderr, code := runWith(t, opts{env: doctorEnv(t)}, "--cdi-spec-dir", empty, "doctor", "--format", "json")
		checks := parseDoctor(t, stdout)
		if c := checks["containerd"]; c.Status != "ok" || !strings.Contains(c.Detail, harness.address) || !strings.Contains(c.Detail, "namespace "+nsFor(t)) {
			t.Errorf("containerd check %+v, want ok with the version, the socket and the namespace", c)
		}
		for _, name := range []string{"runc", "state dir", "disk", "apparmor", "cgroups", "cni", "registry credentials"} {
			if _, ok := checks[name]; !ok {
				t.Errorf("no %q check in %v", name, checks)
			}
		}
		if c := checks["runc"]; c.Status != "ok" || !strings.Contains(c.Detail, "cgroup v2") {
			t.Errorf("runc check %+v, want ok saying what the version supports", c)
		}
		// What this host truly lacks is stated, not failed: cgroup v1 is
		// a warn naming v2 as the fix.
		if c := checks["cgroups"]; c.Status == "fail" || (strings.HasPrefix(c.Detail, "v1") && !strings.Contains(c.Fix, "cgroup v2")) {
			t.Errorf("cgroups check %+v", c)
		}
		want := 0
		if anyFailed(checks) {
			want = 1
		}
		expect(t, "doctor", code, want, stdout, stderr)

		// The text form: one line per check, the status first, the fix last.
		text, stderr, code := runWith(t, opts{env: doctorEnv(t)}, "--cdi-spec-dir", empty, "doctor")
		expect(t, "doctor (text)", code, want, text, stderr)
		lines := strings.Split(strings.TrimSpace(text), "\n")
		if len(lines) != len(checks) {
			t.Errorf("%d lines for %d checks:\n%s", len(lines), len(checks), text)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "ok    ") && !strings.HasPrefix(l, "warn  ") && !strings.HasPrefix(l, "fail  ") {
				t.Errorf("line %q does not start with its status", l)
			}
		}
	})

	t.Run("no daemon", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "containerd.sock")
		stdout, stderr, code := runWith(t, opts{env: doctorEnv(t)}, "--address", sock, "--cdi-spec-dir", empty, "doctor")
		expect(t, "doctor without a daemon", code, 1, stdout, stderr)
		first, _, _ := strings.Cut(stdout, "\n")
		if !strings.HasPrefix(first, "fail  containerd: ") || !strings.Contains(first, sock) || !strings.HasSuffix(first, "or point --address/SBXRUN_ADDRESS at its socket") {
			t.Errorf("first line %q, want containerd failed, naming the socket, with the fix last", first)
		}
		if strings.Contains(stderr, "panic") || strings.Contains(stderr, "internal error") {
			t.Errorf("stderr: %s", stderr)
		}
		if n := strings.Count(stdout, "\n"); n < 8 {
			t.Errorf("only %d checks without a daemon, want the others to run too:\n%s", n, stdout)
		}
	})

	t.Run("stale CDI spec", func(t *testing.T) {
		dir := t.TempDir()
		spec := `{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[{"name":"0","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia-sbxrun-it-gone"}]}}],"containerEdits":{}}`
		if err := os.WriteFile(filepath.Join(dir, "nvidia.json"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := runWith(t, opts{env: doctorEnv(t)}, "--cdi-spec-dir", dir, "doctor", "--format", "json")
		checks := parseDoctor(t, stdout)
		c := checks["nvidia cdi spec"]
		if c.Status != "warn" || !strings.Contains(c.Detail, filepath.Join(dir, "nvidia.json")) || !strings.Contains(c.Detail, "/dev/nvidia-sbxrun-it-gone") || !strings.Contains(c.Fix, "sbxrun gpu setup") {
			t.Errorf("stale spec check %+v, want a warn naming the spec, the missing file and `sbxrun gpu setup`", c)
		}
		if code != 0 && !anyFailed(checks) {
			t.Errorf("a stale spec alone made doctor exit %d: %s", code, stderr)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, args := range [][]string{{"doctor", "--format", "yaml"}, {"doctor", "extra"}} {
			stdout, stderr, code := run(t, args...)
			expect(t, strings.Join(args, " "), code, 125, stdout, stderr)
			if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "doctor") {
				t.Errorf("%v: stdout %q, stderr %q; want one line naming the problem", args, stdout, stderr)
			}
		}
	})

	t.Run("user without subuid", func(t *testing.T) {
		e := newRootlessEnv(t)
		restore := withoutSubIDs(t)
		stdout, stderr, code := e.run("doctor")
		restore()
		expect(t, "doctor without a subuid range", code, 1, stdout, stderr)
		var line string
		for _, l := range strings.Split(stdout, "\n") {
			if strings.Contains(l, "/etc/subuid") {
				line = l
			}
		}
		want := "fail  rootless /etc/subuid: /etc/subuid has no range for " + rootlessUser + ": `sudo usermod --add-subuids"
		if !strings.HasPrefix(line, want) {
			t.Errorf("subuid line %q, want it to start with %q\n%s", line, want, stdout)
		}
		// With the range back, the check passes.
		stdout, _, _ = e.run("doctor", "--format", "json")
		if c := parseDoctor(t, stdout)["rootless /etc/subuid"]; c.Status != "ok" {
			t.Errorf("with a subuid range: %+v", c)
		}

		// With the user's rootless containerd running, doctor reaches it
		// and still checks the host as the user (not as the namespace's root).
		for _, args := range [][]string{{"rootless", "setup"}, {"rootless", "start"}} {
			if out, stderr, code := e.run(args...); code != 0 {
				t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, stderr)
			}
		}
		stdout, stderr, code = e.run("--debug", "doctor", "--format", "json")
		checks := parseDoctor(t, stdout)
		if c := checks["containerd"]; c.Status != "ok" || !strings.Contains(c.Detail, filepath.Join(e.xdg, "sbxrun", "containerd.sock")) {
			t.Errorf("containerd check %+v, want ok at the user's socket (stderr %s)", c, stderr)
		}
		if c, ok := checks["rootless non-root user"]; ok || checks["rootless /etc/subuid"].Status != "ok" {
			t.Errorf("doctor ran as root inside the namespace: %+v, %+v", c, checks["rootless /etc/subuid"])
		}
		if !anyFailed(checks) && code != 0 {
			t.Errorf("exit %d with no check failed", code)
		}
	})
}
