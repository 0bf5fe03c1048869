package packaging

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMakeInstallUninstall runs `make install` into a DESTDIR with the
// default PREFIX, checks every file lands in its standard place (binary,
// bash/zsh/fish completions, a gzipped man page per command, the rootless
// user unit running the installed binary, the example profile file), and
// that `make uninstall` removes them all again.
func TestMakeInstallUninstall(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	vars := []string{"DESTDIR=" + dest, "BIN=" + filepath.Join(tmp, "sbxrun"), "LOADER=" + filepath.Join(tmp, "sbxrun-compose-load"), "KUBE=" + filepath.Join(tmp, "sbxrun-kube"), "GEN=" + filepath.Join(tmp, "gen")}
	mk := func(target string) {
		t.Helper()
		cmd := exec.Command("make", append([]string{"--no-print-directory", target}, vars...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	mk("install")
	var files []string
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, dest))
		}
		return nil
	})
	for _, want := range []string{
		"/usr/local/bin/sbxrun",
		"/usr/local/libexec/sbxrun/sbxrun-compose-load",
		"/usr/local/libexec/sbxrun/sbxrun-kube",
		"/usr/local/share/bash-completion/completions/sbxrun",
		"/usr/local/share/zsh/site-functions/_sbxrun",
		"/usr/local/share/fish/vendor_completions.d/sbxrun.fish",
		"/usr/local/share/man/man1/sbxrun.1.gz",
		"/usr/local/share/man/man1/sbxrun-run.1.gz",
		"/usr/local/share/man/man1/sbxrun-doctor.1.gz",
		"/usr/local/lib/systemd/user/sbxrun-containerd.service",
		"/etc/sbxrun/sbxrun.yaml.example",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("make install did not install %s; it installed %v", want, files)
		}
	}
	if slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, ".1") }) {
		t.Errorf("uncompressed man pages installed: %v", files)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/user/sbxrun-containerd.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/local/bin/sbxrun rootless start --foreground") {
		t.Errorf("the unit does not run the installed binary (%v):\n%s", err, unit)
	}

	mk("uninstall")
	var left []string
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
}
