package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRPM builds the rpm from a staged tree with the repository's nfpm
// declaration and reads it back with rpm itself: its version, the
// dependencies Fedora names, and the files make install stages.
func TestRPM(t *testing.T) {
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatal("rpm not found: install it with: apt-get install -y rpm (make deps does)")
	}
	root := t.TempDir()
	for name, content := range map[string]string{
		"usr/bin/sbxrun":                                  "#!/bin/sh\n",
		"usr/share/man/man1/sbxrun.1.gz":                  "man",
		"etc/sbxrun/sbxrun.yaml.example":                  "profiles: {}\n",
		"usr/share/fish/vendor_completions.d/sbxrun.fish": "complete -c sbxrun\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wd, _ := os.Getwd()
	repo := filepath.Join(wd, "..", "..")
	out := t.TempDir()
	// The declaration names packaging/copyright relative to the repository.
	t.Chdir(repo)
	path, err := build(root, "packaging/nfpm.yaml", "v1.2.3-4-gabcdef0", out, "rpm")
	if err != nil {
		t.Fatal(err)
	}
	query := func(args ...string) string {
		b, err := exec.Command(rpm, append([]string{"-qp"}, append(args, path)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qp %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	if v := strings.TrimSpace(query("--queryformat", "%{NAME} %{VERSION} %{ARCH}")); v != "sbxrun 1.2.3+git4.abcdef0 x86_64" {
		t.Errorf("rpm says %q, want sbxrun 1.2.3+git4.abcdef0 x86_64", v)
	}
	requires := query("--requires")
	for _, dep := range []string{"containerd", "runc", "glibc"} {
		if !strings.Contains("\n"+requires, "\n"+dep+"\n") {
			t.Errorf("rpm requires\n%s\nlacks %s", requires, dep)
		}
	}
	if strings.Contains(requires, "libc6") || strings.Contains(query("--recommends"), "uidmap") {
		t.Errorf("the rpm carries Debian package names:\n%s", requires)
	}
	files := query("-l")
	for _, f := range []string{"/usr/bin/sbxrun", "/usr/share/man/man1/sbxrun.1.gz", "/etc/sbxrun/sbxrun.yaml.example", "/usr/share/doc/sbxrun/copyright"} {
		if !strings.Contains(files, f+"\n") {
			t.Errorf("rpm -ql lacks %s:\n%s", f, files)
		}
	}
	if cfg := query("-c"); !strings.Contains(cfg, "/etc/sbxrun/sbxrun.yaml.example") {
		t.Errorf("the example profile file is not a config file of the rpm: %q", cfg)
	}
}
