package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitFix(t *testing.T) {
	for _, tc := range []struct{ in, detail, fix string }{
		{"/etc/subuid has no range for bob: `sudo usermod --add-subuids 100000-165535 bob`", "/etc/subuid has no range for bob", "`sudo usermod --add-subuids 100000-165535 bob`"},
		{"cannot reach containerd: socket \"/x\": no such file; start containerd", "cannot reach containerd: socket \"/x\": no such file", "start containerd"},
		{"CNI plugin \"bridge\" not found in /usr/lib/cni: install it (apt-get install containernetworking-plugins)", "CNI plugin \"bridge\" not found in /usr/lib/cni", "install it (apt-get install containernetworking-plugins)"},
		{"plain", "plain", ""},
	} {
		d, f := splitFix(tc.in)
		if d != tc.detail || f != tc.fix {
			t.Errorf("splitFix(%q) = %q, %q; want %q, %q", tc.in, d, f, tc.detail, tc.fix)
		}
	}
}

func TestCheckLine(t *testing.T) {
	c := Check{Name: "runc", Status: CheckFail, Detail: "runc is not installed", Fix: "`apt-get install runc`"}
	if got, want := c.String(), "fail  runc: runc is not installed: `apt-get install runc`"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	if got := (Check{Name: "disk", Status: CheckOK, Detail: "9 GiB"}).String(); got != "ok    disk: 9 GiB" {
		t.Errorf("ok line %q", got)
	}
	if Failed([]Check{{Status: CheckOK}, {Status: CheckWarn}}) || !Failed([]Check{{Status: CheckOK}, {Status: CheckFail}}) {
		t.Error("Failed must be true exactly when a check failed")
	}
}

func TestRuntimeVersionLine(t *testing.T) {
	m := runtimeVersionRE.FindStringSubmatch("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev\n")
	if m == nil || m[1] != "1" || m[2] != "1" {
		t.Fatalf("runc line not parsed: %q", m)
	}
	if m := runtimeVersionRE.FindStringSubmatch("crun version 1.8.1\ncommit: abc\n"); m == nil || m[2] != "8" {
		t.Fatalf("crun line not parsed: %q", m)
	}
}

// TestDoctorWithoutDaemon: no daemon is one failed check with the fix,
// and every other check still runs.
func TestDoctorWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	checks := Doctor(context.Background(), DoctorOptions{Global: Global{Address: filepath.Join(dir, "none.sock"), StateDir: dir}, CDISpecDirs: []string{dir}})
	if len(checks) < 8 {
		t.Fatalf("only %d checks: %v", len(checks), checks)
	}
	c := checks[0]
	if c.Name != "containerd" || c.Status != CheckFail || !strings.Contains(c.Detail, "none.sock") || !strings.Contains(c.Fix, "start containerd") {
		t.Errorf("containerd check %+v, want a fail naming the socket and the fix", c)
	}
	if !Failed(checks) {
		t.Error("Failed is false without a daemon")
	}
	for _, c := range checks {
		if c.Status != CheckOK && c.Fix == "" {
			t.Errorf("%s is %s without a fix: %+v", c.Name, c.Status, c)
		}
	}
}

// TestDoctorStaleCDISpec: an NVIDIA spec naming host files that are gone
// is a warn whose fix is `sbxrun gpu setup`.
func TestDoctorStaleCDISpec(t *testing.T) {
	dir := t.TempDir()
	spec := `{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[{"name":"0","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia-sbxrun-gone0"}]}}],"containerEdits":{}}`
	if err := os.WriteFile(filepath.Join(dir, "nvidia.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range checkGPU([]string{dir}) {
		if c.Name == "nvidia cdi spec" {
			found = true
			if c.Status != CheckWarn || !strings.Contains(c.Detail, "stale") || !strings.Contains(c.Detail, "/dev/nvidia-sbxrun-gone0") || !strings.HasPrefix(c.Fix, "run `sudo sbxrun gpu setup --output ") {
				t.Errorf("stale spec check %+v, want a warn naming the missing file and `sbxrun gpu setup`", c)
			}
		}
	}
	if !found {
		t.Fatalf("no check for the stale spec in %v", checkGPU([]string{dir}))
	}
}

func TestDoctorCredentialHelper(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credHelpers":{"registry.example":"sbxrun-missing"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := checkCredentialHelpers(dir)
	if len(cs) != 1 || cs[0].Status != CheckFail || !strings.Contains(cs[0].Detail, "docker-credential-sbxrun-missing") ||
		!strings.Contains(cs[0].Detail, "registry.example") || !strings.Contains(cs[0].Fix, "install docker-credential-sbxrun-missing") {
		t.Errorf("checks %+v, want one fail naming the helper, its registry and the fix", cs)
	}
	if cs := checkCredentialHelpers(t.TempDir()); len(cs) != 1 || cs[0].Status != CheckOK {
		t.Errorf("no config: %+v, want one ok", cs)
	}
}

func TestDoctorStateDir(t *testing.T) {
	dir := t.TempDir()
	if c := checkStateDir(filepath.Join(dir, "a", "b")); c.Status != CheckOK || !strings.Contains(c.Detail, "created on first run") {
		t.Errorf("missing state dir: %+v", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Error("the check created the state dir")
	}
	if c := checkDisk(filepath.Join(dir, "none")); c.Status == CheckFail || !strings.Contains(c.Detail, "GiB free") {
		t.Errorf("disk: %+v", c)
	}
}
