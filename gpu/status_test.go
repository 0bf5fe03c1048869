package gpu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	server := dgx(mockVersion)
	root := fakeDriverRoot(t, mockVersion)
	dir := t.TempDir()
	if _, err := Setup(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t), Output: filepath.Join(dir, "nvidia.yaml")}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("kind: x/y\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "other.yaml"), 0o666); err != nil {
		t.Fatal(err)
	}

	fakeProcVersion(t, procLine(mockVersion))
	var out bytes.Buffer
	err := Status(&out, StatusOptions{SpecDirs: []string{dir}, NVML: server})
	for _, want := range []string{
		"driver:    " + mockVersion + " (loaded)",
		"GPUs:      0  Mock NVIDIA A100-SXM4-40GB  " + uuids(server)[0],
		uuids(server)[7],
		filepath.Join(dir, "nvidia.yaml") + "  nvidia.com/gpu  devices: all, 0, 1, 2, 3, 4, 5, 6, 7 (+8 UUIDs)  driver",
		"driver " + mockVersion + "  fresh",
		filepath.Join(dir, "other.yaml") + "  REFUSED: ",
		"hook:      " + hookBinary(t) + " ok",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	// Another vendor's refused file is listed but does not stop GPUs.
	if err != nil {
		t.Errorf("status error = %v, want none for a refused file of another kind", err)
	}

	// After a driver upgrade the spec is stale, and status says what to run.
	if err := os.Remove(filepath.Join(dir, "other.yaml")); err != nil {
		t.Fatal(err)
	}
	fakeProcVersion(t, procLine("580.159.04"))
	out.Reset()
	err = Status(&out, StatusOptions{SpecDirs: []string{dir}, NVML: dgx("580.159.04")})
	if !strings.Contains(out.String(), "STALE: it was generated for driver "+mockVersion+", the loaded driver is 580.159.04") {
		t.Errorf("status after an upgrade:\n%s", out.String())
	}
	// The command keeps the driver root the spec was generated with.
	if err == nil || !strings.Contains(err.Error(), "sudo sbxrun gpu setup --driver-root "+root+" --output "+filepath.Join(dir, "nvidia.yaml")) {
		t.Errorf("status error = %v, want the command that fixes it", err)
	}
	// Problems (doctor) has the same finding, with the fix apart.
	problems, err := Problems(StatusOptions{SpecDirs: []string{dir}, NVML: dgx("580.159.04")})
	wantFix := "run `sudo sbxrun gpu setup --driver-root " + root + " --output " + filepath.Join(dir, "nvidia.yaml") + "`"
	if err != nil || len(problems) != 1 || problems[0].Subject != "spec" || problems[0].Fix != wantFix ||
		!strings.HasSuffix(problems[0].Text, ": "+wantFix) || problems[0].Path != filepath.Join(dir, "nvidia.yaml") {
		t.Errorf("Problems = %+v, %v; want one stale spec with the fix %q", problems, err, wantFix)
	}
}

// TestStatusRefusedFiles: only a refused file that may be the NVIDIA spec
// (its kind, or no readable kind) makes GPU sandboxes fail.
func TestStatusRefusedFiles(t *testing.T) {
	server := dgx(mockVersion)
	root := fakeDriverRoot(t, mockVersion)
	fakeProcVersion(t, procLine(mockVersion))
	tests := []struct {
		name, content string
		fails         bool
	}{
		{"another vendor's", "cdiVersion: \"0.6.0\"\nkind: vendor.example.com/class\ndevices: [{name: a, containerEdits: {env: [A=1]}}]\n", false},
		{"an NVIDIA GPU spec", "cdiVersion: \"0.6.0\"\nkind: nvidia.com/gpu\ndevices: [{name: x, containerEdits: {env: [A=1]}}]\n", true},
		{"of no readable kind", "{not: yaml: at all\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Setup(Options{NVML: dgx(mockVersion), DriverRoot: root, HookPath: hookBinary(t), Output: filepath.Join(dir, "nvidia.yaml")}); err != nil {
				t.Fatal(err)
			}
			refused := filepath.Join(dir, "refused.yaml")
			if err := os.WriteFile(refused, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(refused, 0o666); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := Status(&out, StatusOptions{SpecDirs: []string{dir}, NVML: server})
			if !strings.Contains(out.String(), refused+"  REFUSED: ") {
				t.Errorf("status does not list %s as refused:\n%s", refused, out.String())
			}
			switch {
			case tt.fails && (err == nil || !strings.Contains(err.Error(), refused)):
				t.Errorf("status error = %v, want one naming %s", err, refused)
			case !tt.fails && err != nil:
				t.Errorf("status error = %v, want none", err)
			}
		})
	}
}

// TestCheckSpecHook: gpu status and gpu setup judge a hook with the checks a
// run makes, and never execute one that fails them.
func TestCheckSpecHook(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name string
		// setup makes the directory and hook under base and returns the
		// path to check.
		setup func(t *testing.T, dir, hook string) string
		want  string // in the error; "": accepted and run
	}{
		{"trusted", func(t *testing.T, dir, hook string) string { return hook }, ""},
		{"in a world-writable directory", func(t *testing.T, dir, hook string) string {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return hook
		}, `hook "HOOK" of CDI spec "/etc/cdi/nvidia.yaml": it lies in "DIR", which others can change: install sbxrun in a root-owned directory (e.g. /usr/local/bin) and run ` + "`sbxrun gpu setup`" + ` again`},
		{"owned by another user", func(t *testing.T, dir, hook string) string {
			if err := os.Chown(hook, 4242, 4242); err != nil {
				t.Fatal(err)
			}
			return hook
		}, `hook "HOOK" of CDI spec "/etc/cdi/nvidia.yaml" is owned by uid 4242, not root: refusing it (chown root HOOK if it is yours to trust)`},
		{"relative", func(t *testing.T, dir, hook string) string { return "bin/hook" }, "is not an absolute path"},
		{"through a link", func(t *testing.T, dir, hook string) string {
			link := filepath.Join(filepath.Dir(dir), "link")
			if err := os.Symlink(hook, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "bin")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			ran := filepath.Join(base, "ran")
			hook := filepath.Join(dir, "hook")
			if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$0 $*\" > "+ran+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := tt.setup(t, dir, hook)
			err := CheckSpecHook(path, "/etc/cdi/nvidia.yaml", []uint32{0})
			b, rerr := os.ReadFile(ran)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckSpecHook(%q) = %v, want nil", path, err)
				}
				// It ran, as the no-op hook, the file that was checked.
				if want := hook + " noop\n"; string(b) != want {
					t.Errorf("the hook ran as %q, want %q", b, want)
				}
				return
			}
			want := strings.NewReplacer("HOOK", hook, "DIR", dir).Replace(tt.want)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CheckSpecHook(%q) = %v, want %q", path, err, want)
			}
			if rerr == nil {
				t.Errorf("a hook that failed the checks was executed: %q", b)
			}
		})
	}
}

// TestStatusUntrustedHook: a hook every run refuses fails status with the
// run's message, and status does not execute it.
func TestStatusUntrustedHook(t *testing.T) {
	requireRoot(t)
	fakeProcVersion(t, procLine(mockVersion))
	base := t.TempDir()
	bin := filepath.Join(base, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(base, "ran")
	hook := filepath.Join(bin, "sbxrun")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ntouch "+ran+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o777); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "nvidia.yaml")
	if _, err := Setup(Options{NVML: dgx(mockVersion), DriverRoot: fakeDriverRoot(t, mockVersion), HookPath: hook, Output: spec}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Status(&out, StatusOptions{SpecDirs: []string{dir}, NVML: dgx(mockVersion)})
	want := fmt.Sprintf("GPU sandboxes will not work: hook %q of CDI spec %q: it lies in %q, which others can change", hook, spec, bin)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("status error = %v, want %q", err, want)
	}
	if !strings.Contains(out.String(), "hook:      "+strings.TrimPrefix(want, "GPU sandboxes will not work: ")) {
		t.Errorf("status output lacks the hook's refusal:\n%s", out.String())
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("status executed a hook that fails the checks")
	}
}

// TestStatusNoSpecYet: a driver and GPUs but no spec (as after a reboot) is
// no problem any more, since a GPU run generates the spec; status says so.
func TestStatusNoSpecYet(t *testing.T) {
	fakeProcVersion(t, procLine(mockVersion))
	var out bytes.Buffer
	err := Status(&out, StatusOptions{SpecDirs: []string{t.TempDir()}, NVML: dgx(mockVersion)})
	if err != nil || !strings.Contains(out.String(), "no spec for NVIDIA GPUs: a GPU run generates one") {
		t.Errorf("status without a spec: %v\n%s", err, out.String())
	}
	// Without a driver it is still a problem.
	fakeProcVersion(t, "")
	out.Reset()
	if err := Status(&out, StatusOptions{SpecDirs: []string{t.TempDir()}, NVML: dgx(mockVersion)}); err == nil {
		t.Errorf("status without a driver: no error\n%s", out.String())
	}
}
