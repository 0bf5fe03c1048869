package integration

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/sbxrun/sbxrun/internal/ctrdconfig"
)

// baseRef is the image of the built-in "base" profile; the harness imports
// the locally built busybox image under this name so no registry is needed.
const baseRef = "ghcr.io/sbxrun/base:latest"

// plainRef is the same busybox image under a name that is no profile, with
// its own workdir and user, for runs by image reference.
const plainRef = "localhost/sbxrun-test/plain:1"

// Environment of the base test image (image < profile < flags).
var baseImageEnv = []string{
	"SBXRUN_TEST_IMAGE=yes",
	"PYTHONPATH=/from-image",
	"NODE_ENV=from-image",
}

// harness is what TestMain set up, shared by every test.
var harness struct {
	// err is why setup failed; every test fails with it.
	err error
	// root is the temporary root holding everything below.
	root string
	// sbxrun is the binary under test.
	sbxrun string
	// address is the private containerd's socket.
	address string
	// baseImage and plainImage are the OCI archives to load.
	baseImage, plainImage string
	// client talks to the private containerd for leak checks.
	client *client.Client
	// runtimeSpecDir is the runtime-spec module's directory (its JSON
	// schema), found before the tests change HOME.
	runtimeSpecDir string
	// links are the host's sbxrun network links before the tests.
	links map[string]bool
}

func TestMain(m *testing.M) {
	// containerd is started with Pdeathsig; keep the thread that forks it
	// alive for the whole run so the signal only fires when the test dies.
	runtime.LockOSThread()
	raiseParallelism()
	ctd, err := setup()
	if err != nil {
		harness.err = err
		fmt.Fprintf(os.Stderr, "integration setup failed: %v\n", err)
	}
	code := m.Run()
	if err := teardown(ctd); err != nil {
		fmt.Fprintf(os.Stderr, "integration teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// raiseParallelism runs up to 8 tests at once unless -test.parallel was
// given: the tests mostly wait on containerd and runc, so more than
// GOMAXPROCS of them fit on a small machine.
func raiseParallelism() {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && runtime.GOMAXPROCS(0) < 8 {
		_ = flag.Set("test.parallel", "8")
	}
}

// requireHarness fails t when TestMain could not set up the environment.
func requireHarness(t *testing.T) {
	t.Helper()
	if harness.err != nil {
		t.Fatalf("integration environment not available: %v", harness.err)
	}
}

// setup checks preconditions, builds the binaries, starts a private
// containerd and builds the test images. It returns the containerd process
// (nil when it was not started).
func setup() (*exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the integration tests start their own containerd and need root: run them as root (sudo -E go test ./integration/)")
	}
	for _, bin := range []string{"containerd", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found in PATH: install it with: apt-get install -y containerd runc", bin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return nil, errors.New("/bin/busybox not found: install it with: apt-get install -y busybox-static")
	}

	harness.links = sbxLinks()
	root, err := os.MkdirTemp("", "sbxrun-it-")
	if err != nil {
		return nil, err
	}
	harness.root = root
	for _, d := range []string{"bin", "home", "state", "images"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}

	modRoot, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	harness.sbxrun = filepath.Join(root, "bin", "sbxrun")
	mkimage := filepath.Join(root, "bin", "mkimage")
	// sbxrun finds its compose loader beside itself.
	loader := filepath.Join(root, "bin", "sbxrun-compose-load")
	// and its kube helper (sbxrun built with -tags kube).
	kubeHelper := filepath.Join(root, "bin", "sbxrun-kube")
	builds := map[string]string{harness.sbxrun: "./cmd/sbxrun", mkimage: "./hack/mkimage", loader: "./cmd/sbxrun-compose-load", kubeHelper: "-tags kube ./cmd/sbxrun"}
	// SBXRUN_TEST_BINARY tests an sbxrun built elsewhere (with the loader
	// beside it when there is one, else this tree's).
	if bin := os.Getenv("SBXRUN_TEST_BINARY"); bin != "" {
		if harness.sbxrun, err = filepath.Abs(bin); err != nil {
			return nil, err
		}
		builds = map[string]string{mkimage: "./hack/mkimage"}
		if !fileExists(filepath.Join(filepath.Dir(harness.sbxrun), "sbxrun-compose-load")) {
			builds[loader] = "./cmd/sbxrun-compose-load"
			os.Setenv("SBXRUN_COMPOSE_LOADER", loader)
		}
		if !fileExists(filepath.Join(filepath.Dir(harness.sbxrun), "sbxrun-kube")) {
			builds[kubeHelper] = "-tags kube ./cmd/sbxrun"
			os.Setenv("SBXRUN_KUBE_HELPER", kubeHelper)
		}
	}
	for out, pkg := range builds {
		// pkg is the package, after build flags if any.
		cmd := exec.Command(goTool(), append([]string{"build", "-o", out}, strings.Fields(pkg)...)...)
		cmd.Dir = modRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
	}

	cmd := exec.Command(goTool(), "list", "-m", "-f", "{{.Dir}}", "github.com/opencontainers/runtime-spec")
	cmd.Dir = modRoot
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locating the runtime-spec module (go list -m): %w", err)
	}
	harness.runtimeSpecDir = strings.TrimSpace(string(out))

	harness.baseImage = filepath.Join(root, "images", "base.tar")
	harness.plainImage = filepath.Join(root, "images", "plain.tar")
	baseArgs := []string{"-o", harness.baseImage, "-ref", baseRef, "-workdir", "/"}
	for _, e := range baseImageEnv {
		baseArgs = append(baseArgs, "-env", e)
	}
	for _, args := range [][]string{
		baseArgs,
		{"-o", harness.plainImage, "-ref", plainRef, "-workdir", "/home/dev", "-user", "dev",
			"-env", "PLAIN_IMAGE=yes", "-label", "org.example.test=plain", "-expose", "8000/tcp", "-expose", "9000/udp"},
	} {
		if b, err := exec.Command(mkimage, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mkimage %q: %w\n%s", args, err, b)
		}
	}

	ctd, err := startContainerd(filepath.Join(root, "containerd"))
	if err != nil {
		return ctd, err
	}

	home := filepath.Join(root, "home")
	// A developer's machine usually has a git config; the base profile
	// mounts it read-only.
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[user]\n\tname = sbxrun test\n"), 0o644); err != nil {
		return ctd, err
	}
	for k, v := range map[string]string{
		"SBXRUN_ADDRESS":       harness.address,
		"CONTAINERD_ADDRESS":   harness.address,
		"SBXRUN_STATE_DIR":     filepath.Join(root, "state"),
		"SBXRUN_CNI_CONF_DIR":  filepath.Join(root, "cni"),
		"HOME":                 home,
		"XDG_CONFIG_HOME":      filepath.Join(home, ".config"),
		"SBXRUN_SYSTEM_CONFIG": filepath.Join(root, "no-such-sbxrun.yaml"),
	} {
		os.Setenv(k, v)
	}

	c, err := client.New(harness.address)
	if err != nil {
		return ctd, fmt.Errorf("connecting to the private containerd: %w", err)
	}
	harness.client = c
	return ctd, nil
}

// goTool returns the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// containerdConfig is the private daemon's configuration: the one every
// private daemon of sbxrun uses (internal/ctrdconfig), laid out under dir.
func containerdConfig(dir string) string {
	return ctrdconfig.Under(dir).TOML()
}

// startContainerd starts a private containerd under dir and waits up to 10 s
// for its socket.
func startContainerd(dir string) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(containerdConfig(dir)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	bin, _ := exec.LookPath("containerd")
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting containerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The goroutine above owns Wait; teardown waits on exitedCh.
	exitedCh = exited
	sock := filepath.Join(dir, "containerd.sock")
	deadline := time.After(10 * time.Second)
	for {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			exitedCh = nil
			return nil, fmt.Errorf("containerd exited (%v); log:\n%s", err, tail(string(b), 20))
		case <-deadline:
			return cmd, fmt.Errorf("containerd did not create %q within 10s; see %q", sock, logf.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
	harness.address = sock
	return cmd, nil
}

// exitedCh receives containerd's exit.
var exitedCh chan error

// teardown removes every container the tests left in the private daemon,
// stops it, unmounts anything under the temporary root and removes it.
func teardown(ctd *exec.Cmd) error {
	var errs []error
	if harness.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		nss, err := harness.client.NamespaceService().List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing namespaces: %w", err))
		}
		for _, ns := range nss {
			if err := removeAll(namespaces.WithNamespace(ctx, ns)); err != nil {
				errs = append(errs, fmt.Errorf("namespace %q: %w", ns, err))
			}
		}
		cancel()
		harness.client.Close()
	}
	// The networks the tests left, the default one at least (created on
	// first use and kept, as Docker keeps its bridge), go with their
	// bridges and firewall rules; then no link of the tests may be left.
	if harness.root != "" {
		errs = append(errs, removeNetworks())
		var left []string
		for l := range sbxLinks() {
			if !harness.links[l] {
				left = append(left, l)
			}
		}
		if len(left) > 0 {
			sort.Strings(left)
			errs = append(errs, fmt.Errorf("the tests left network links %q: a test or `sbxrun network rm` leaks them", left))
		}
	}
	if ctd != nil && ctd.Process != nil {
		_ = ctd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exitedCh:
		case <-time.After(10 * time.Second):
			_ = ctd.Process.Kill()
			<-exitedCh
		}
	}
	if harness.root != "" {
		if err := unmountUnder(harness.root); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(harness.root); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeAll kills and deletes every task and container of the namespace in
// ctx, with their snapshots.
func removeAll(ctx context.Context) error {
	cs, err := harness.client.Containers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if task, err := c.Task(ctx, nil); err == nil {
			_ = task.Kill(ctx, syscall.SIGKILL)
			if ch, err := task.Wait(ctx); err == nil {
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
				}
			}
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
				errs = append(errs, fmt.Errorf("deleting task %q: %w", c.ID(), err))
			}
		}
		if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			errs = append(errs, fmt.Errorf("deleting container %q: %w", c.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder returns the mount points below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, sc.Err()
}

// unmountUnder unmounts everything below dir.
func unmountUnder(dir string) error {
	ms, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		if err := syscall.Unmount(m, 0); err != nil {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmounting %q: %w", m, err))
			}
		}
	}
	return errors.Join(errs...)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sbxLinks are the names of the host's links sbxrun networks make: their
// bridges (sbx-*, sbxrun0) and veths (sbx* host ends).
func sbxLinks() map[string]bool {
	links := map[string]bool{}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "sbx") {
			links[i.Name] = true
		}
	}
	return links
}

// removeNetworks removes every network of the harness' sbxrun, through
// sbxrun itself.
func removeNetworks() error {
	out, err := exec.Command(harness.sbxrun, "network", "ls", "-q").Output()
	if err != nil {
		return fmt.Errorf("sbxrun network ls -q: %w", err)
	}
	var errs []error
	for _, name := range strings.Fields(string(out)) {
		if b, err := exec.Command(harness.sbxrun, "network", "rm", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("sbxrun network rm %s: %w: %s", name, err, strings.TrimSpace(string(b))))
		}
	}
	return errors.Join(errs...)
}
