package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// originalHome is HOME before TestMain points it at a temporary directory:
// the local image build runs "go build" with the real module and build caches.
var originalHome = os.Getenv("HOME")

// TestLocalSandboxImage builds a small base sandbox without Docker the way
// "make sandbox-images" builds base (mmdebstrap from the Debian mirror, the
// Dockerfiles' sandbox-setup, hack/ocipack writing the Dockerfile's config),
// loads it with "sbxrun load" and runs the built-in base profile on it.
// Downloaded packages are kept in bin/sandboxes/apt-cache, which
// "make sandbox-images" shares.
func TestLocalSandboxImage(t *testing.T) {
	t.Parallel()
	requireHarness(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Fatal("mmdebstrap not found: install it with: apt-get install -y mmdebstrap")
	}
	ns := nsFor(t)
	t.Cleanup(func() { assertNamespaceClean(t, ns) })

	out := filepath.Join(harness.root, "sandbox-images")
	cache, err := filepath.Abs(filepath.Join("..", "bin", "sandboxes", "apt-cache"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, filepath.Join("..", "sandboxes", "local", "build.sh"), "-o", out, "--cache", cache, "--minimal", "base")
	build.Env = append(os.Environ(), "HOME="+originalHome)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("sandboxes/local/build.sh --minimal base: %v\n%s", err, b)
	}
	built := time.Since(start)
	archive := filepath.Join(out, "base.tar")
	if stdout, stderr, code := run(t, "load", "-i", archive); code != 0 {
		t.Fatalf("sbxrun load -i %s: exit %d\n%s%s", archive, code, stdout, stderr)
	}
	t.Logf("built in %s, loaded in %s", built.Round(time.Second), (time.Since(start) - built).Round(time.Second))

	cctx, ccancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 30*time.Second)
	defer ccancel()
	img, err := harness.client.GetImage(cctx, baseRef)
	if err != nil {
		t.Fatalf("the loaded image: %v", err)
	}
	spec, err := img.Spec(cctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := spec.Config
	if cfg.User != "1000:1000" || cfg.WorkingDir != "/workspace" || cfg.Labels["io.github.sbxrun.profile"] != "base" ||
		!slices.Equal(cfg.Entrypoint, []string{"/usr/bin/tini", "--", "/usr/local/bin/sandbox-entrypoint"}) {
		t.Errorf("image config %+v: want base's user, workdir, label and entrypoint from sandboxes/base/Dockerfile", cfg)
	}

	// The sandbox user (uid 1000) must be able to enter /workspace.
	work := filepath.Join(harness.root, "sandbox-images-work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		prefix string
		want   string
	}{
		{name: "git", args: []string{"git", "--version"}, prefix: "git version 2."},
		{name: "pytest", args: []string{"pytest", "--version"}, prefix: "pytest 7."},
		{name: "user-workdir-init", args: []string{"sh", "-c",
			`id -u; pwd; echo "$HOME"; cat /proc/1/comm; . /etc/sbxrun-sandbox; echo "$SANDBOX $SANDBOX_BUILD"; stat -c %U ~/.cache`},
			want: "1000\n/workspace\n/home/dev\ntini\nbase local-debian\ndev\n"},
		{name: "exit-status", args: []string{"sh", "-c", "exit 7"}, code: 7},
		{name: "killed", args: []string{"sh", "-c", "kill -TERM $$"}, code: 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"base", "--"}, tt.args...)
			stdout, stderr, code := sandboxWith(t, opts{dir: work}, nameFor(t), args...)
			expect(t, "sbxrun base -- "+strings.Join(tt.args, " "), code, tt.code, stdout, stderr)
			if !strings.HasPrefix(stdout, tt.prefix) || (tt.want != "" && stdout != tt.want) {
				t.Errorf("stdout %q, want %q (prefix %q); stderr %q", stdout, tt.want, tt.prefix, stderr)
			}
		})
	}
}
