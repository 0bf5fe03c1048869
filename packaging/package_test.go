//go:build packagetest

package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDebInstallsInDebian12 builds the package with `make deb`, checks it
// with lintian (no errors), installs it with `apt-get install ./DEB` (and
// so its dependencies and recommends from the Debian archive) in a fresh
// mmdebstrap Debian 12 root, and there runs `sbxrun version`, `sbxrun
// doctor --format json` (no daemon: parsable, exit 1, no panic) and `man
// -w sbxrun-run`. It downloads from the Debian mirror apt uses
// (SBXRUN_DEBIAN_MIRROR overrides it), keeping packages in
// bin/sandboxes/apt-cache as `make sandbox-images` does. `make
// package-test` runs it (root, a few minutes).
func TestDebInstallsInDebian12(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the package test needs root (mmdebstrap --mode=root, chroot): run `sudo make package-test`")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	start := time.Now()
	build := exec.Command("make", "deb", "DIST="+dist)
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "sbxrun_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb wrote %v, want one sbxrun_VERSION_amd64.deb", debs)
	}
	deb := debs[0]
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(start).Round(time.Second))

	out, _ := exec.Command("lintian", deb).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") {
			t.Errorf("lintian: %s", l)
		}
	}
	t.Logf("lintian:\n%s", out)

	mirror := os.Getenv("SBXRUN_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	cache := filepath.Join(repo, "bin", "sandboxes", "apt-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	// The checks run in a customize hook, where mmdebstrap has mounted
	// /proc, /sys and /dev in the root; their output stays in /results.
	checks := `set -u; mkdir -p /results; cd /results
sbxrun version >version.out 2>version.err; echo $? >version.rc
sbxrun doctor --format json >doctor.json 2>doctor.err; echo $? >doctor.rc
man -w sbxrun-run >man.out 2>man.err; echo $? >man.rc
sbxrun completion zsh >/dev/null; echo $? >completion.rc`
	start = time.Now()
	cmd := exec.Command("mmdebstrap", "--variant=apt", "--mode=root", "--format=directory", "--quiet",
		"--include=man-db",
		"--setup-hook=mkdir -p \"$1/var/cache/apt/archives\"",
		"--setup-hook=sync-in "+cache+" /var/cache/apt/archives/",
		"--customize-hook=copy-in "+deb+" /tmp",
		"--customize-hook=chroot \"$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/"+filepath.Base(deb),
		"--customize-hook=chroot \"$1\" sh -c '"+checks+"'",
		"--customize-hook=sync-out /var/cache/apt/archives "+cache,
		"bookworm", root, "deb "+mirror+" bookworm main")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap with the package: %v\n%s", err, out)
	}
	t.Logf("mmdebstrap and apt-get install ./%s: %v", filepath.Base(deb), time.Since(start).Round(time.Second))

	result := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "results", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// No containerd runs in the root: version prints sbxrun's own version,
	// exits 0 and says on stderr that the daemon is not reachable.
	if v := result("version.out"); !strings.HasPrefix(v, "sbxrun ") {
		t.Errorf("sbxrun version printed %q (stderr %q)", v, result("version.err"))
	}
	if rc := result("version.rc"); rc != "0" || !strings.Contains(result("version.err"), "containerd") {
		t.Errorf("sbxrun version exit %s: %s", rc, result("version.err"))
	}
	var doctor []struct{ Name, Status, Detail, Fix string }
	if err := json.Unmarshal([]byte(result("doctor.json")), &doctor); err != nil {
		t.Errorf("sbxrun doctor --format json is not JSON (%v): %s\nstderr: %s", err, result("doctor.json"), result("doctor.err"))
	}
	if rc := result("doctor.rc"); rc != "0" && rc != "1" {
		t.Errorf("sbxrun doctor exit %s, want 0 or 1; stderr: %s", rc, result("doctor.err"))
	}
	if e := result("doctor.err"); strings.Contains(e, "panic") || strings.Contains(e, "internal error") {
		t.Errorf("sbxrun doctor: %s", e)
	}
	if len(doctor) == 0 || doctor[0].Name != "containerd" || doctor[0].Status != "fail" || doctor[0].Fix == "" {
		t.Errorf("doctor without a daemon: %+v, want containerd failed with a fix first", doctor)
	}
	if m := result("man.out"); result("man.rc") != "0" || m != "/usr/share/man/man1/sbxrun-run.1.gz" {
		t.Errorf("man -w sbxrun-run: %q, exit %s: %s", m, result("man.rc"), result("man.err"))
	}
	if rc := result("completion.rc"); rc != "0" {
		t.Errorf("sbxrun completion zsh exit %s", rc)
	}
	for _, f := range []string{"usr/share/bash-completion/completions/sbxrun", "usr/share/zsh/vendor-completions/_sbxrun",
		"usr/share/fish/vendor_completions.d/sbxrun.fish", "usr/lib/systemd/user/sbxrun-containerd.service", "etc/sbxrun/sbxrun.yaml.example"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("the package did not install /%s: %v", f, err)
		}
	}
	t.Logf("doctor in the root: %d checks", len(doctor))
}
