package gpu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi"
	"github.com/NVIDIA/nvidia-container-toolkit/pkg/nvcdi/transform"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/hooks"
)

const (
	// Kind is the CDI kind of NVIDIA GPUs.
	Kind = "nvidia.com/gpu"
	// DefaultSpecPath is where Setup writes the spec: a CDI spec directory
	// on tmpfs, so a reboot (often the moment of a driver upgrade) starts
	// without a stale spec.
	DefaultSpecPath = "/var/run/cdi/nvidia.yaml"

	// AnnotationDriverVersion records, in a spec sbxrun generated, the
	// driver version it was generated for.
	AnnotationDriverVersion = "sbxrun.driver-version"
	// AnnotationDriverRoot records the driver root it was generated with.
	AnnotationDriverRoot = "sbxrun.driver-root"
	// AnnotationGenerator marks a spec sbxrun generated.
	AnnotationGenerator = "sbxrun.generator"
)

// Options configure Generate and Setup.
type Options struct {
	// Output is the file Setup writes; empty is DefaultSpecPath.
	Output string
	// DriverRoot is the root the driver is installed under: "/" (the
	// default) or, on some GPU hosts, /usr/local/nvidia or
	// /run/nvidia/driver.
	DriverRoot string
	// DevRoot is the root of the device nodes; empty is DriverRoot when
	// DriverRoot/dev/nvidiactl exists, else "/".
	DevRoot string
	// HookPath is the sbxrun binary the spec's hooks run as
	// nvidia-cdi-hook; empty is this executable.
	HookPath string
	// NVML is the NVML library to ask; nil loads libnvidia-ml.so.1 (from
	// DriverRoot when it is not "/"). Tests pass go-nvml's mock servers.
	NVML nvml.Interface
	// Log receives the generator's messages; nil discards them.
	Log io.Writer
}

// defaults fills the empty fields.
func (o *Options) defaults() error {
	if o.Output == "" {
		o.Output = DefaultSpecPath
	}
	if o.DriverRoot == "" {
		o.DriverRoot = "/"
		// A host whose driver lives only under /run/nvidia/driver or
		// /usr/local/nvidia, unknown to the dynamic loader, needs no
		// --driver-root: after a reboot nothing remembers one.
		if o.NVML == nil && systemNVML() == "" {
			for _, alt := range alternateRoots {
				if _, err := findNVML(alt); err == nil {
					o.DriverRoot = alt
					break
				}
			}
		}
	}
	if !filepath.IsAbs(o.DriverRoot) {
		return fmt.Errorf("--driver-root %q is not an absolute path: give one such as /usr/local/nvidia", o.DriverRoot)
	}
	o.DriverRoot = filepath.Clean(o.DriverRoot)
	if fi, err := os.Stat(o.DriverRoot); err != nil || !fi.IsDir() {
		return fmt.Errorf("--driver-root %q is not a directory: give the directory the NVIDIA driver is installed under", o.DriverRoot)
	}
	if o.DevRoot == "" {
		o.DevRoot = "/"
		if _, err := os.Stat(filepath.Join(o.DriverRoot, "dev", "nvidiactl")); err == nil {
			o.DevRoot = o.DriverRoot
		}
	}
	if o.HookPath == "" {
		exe, err := Executable()
		if err != nil {
			return err
		}
		o.HookPath = exe
	}
	if !filepath.IsAbs(o.HookPath) {
		return fmt.Errorf("hook path %q is not absolute", o.HookPath)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Executable is the absolute, symlink-free path of the running sbxrun
// binary: what the spec's hooks run.
func Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating the sbxrun binary for the CDI hooks: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	return exe, nil
}

// Result is what Setup did.
type Result struct {
	// Path is the spec file written.
	Path string
	// Devices are the device names of the spec (all, 0, UUIDs, ...).
	Devices []string
	// DriverVersion is the driver the spec was generated for.
	DriverVersion string
	// HookPath is the binary the spec's hooks run.
	HookPath string
	// DriverRoot is the driver root it was generated with.
	DriverRoot string
	// Took is how long generating and writing took.
	Took time.Duration
}

// Setup generates the spec and writes it to o.Output atomically (mode
// 0644, in a directory created 0755 when missing).
func Setup(o Options) (*Result, error) {
	start := time.Now()
	if err := o.defaults(); err != nil {
		return nil, err
	}
	raw, err := Generate(o)
	if err != nil {
		return nil, err
	}
	if err := writeSpec(o.Output, raw); err != nil {
		return nil, err
	}
	return &Result{Path: o.Output, Devices: deviceNames(raw), DriverVersion: raw.Annotations[AnnotationDriverVersion],
		HookPath: o.HookPath, DriverRoot: o.DriverRoot, Took: time.Since(start)}, nil
}

// deviceNames lists a spec's device names, "all" first, then indices in
// numeric order, then the rest sorted.
func deviceNames(raw *cdispecs.Spec) []string {
	var names []string
	for _, d := range raw.Devices {
		names = append(names, d.Name)
	}
	sort.Slice(names, func(i, j int) bool { return nameLess(names[i], names[j]) })
	return names
}

// nameLess orders device names: all, then GPU indices and MIG indices
// numerically, then the rest (UUIDs) alphabetically.
func nameLess(a, b string) bool {
	ra, rb := nameRank(a), nameRank(b)
	if ra != rb {
		return ra < rb
	}
	if ra == 1 {
		ia, ib := indexKey(a), indexKey(b)
		if ia != ib {
			return ia < ib
		}
	}
	return a < b
}

func nameRank(n string) int {
	switch {
	case n == "all":
		return 0
	case migIndex.MatchString(n) || gpuIndex.MatchString(n):
		return 1
	}
	return 2
}

// indexKey makes "2", "10" and "1:0" sort numerically.
func indexKey(n string) string {
	gpu, mig, _ := strings.Cut(n, ":")
	return fmt.Sprintf("%08s:%08s", gpu, mig)
}

var (
	gpuIndex = regexp.MustCompile(`^[0-9]+$`)
	migIndex = regexp.MustCompile(`^[0-9]+:[0-9]+$`)
)

// Generate asks NVML for the GPUs and the driver and returns the CDI spec
// nvcdi generates in NVML mode: kind nvidia.com/gpu, a device per GPU
// under its index and its UUID, MIG devices ("0:1", MIG-UUID) where MIG is
// enabled, and "all"; hooks that run o.HookPath as nvidia-cdi-hook; and
// annotations recording the driver version and root. No driver or no GPU
// is a one-line error that says so; nothing the generator does can crash
// sbxrun.
func Generate(o Options) (raw *cdispecs.Spec, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			raw, err = nil, fmt.Errorf("generating the CDI spec failed unexpectedly (%v): please report it with the output of `sbxrun gpu status`", r)
		}
	}()
	lib := o.NVML
	if lib == nil {
		lib, err = loadNVML(o.DriverRoot)
		if err != nil {
			return nil, err
		}
	}
	version, count, err := probe(lib, o.DriverRoot)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "driver %s, %d GPU(s)\n", version, count)

	log := logrus.New()
	log.SetOutput(o.Log)
	log.SetLevel(logrus.InfoLevel)
	index, err := nvcdi.NewDeviceNamer(nvcdi.DeviceNameStrategyIndex)
	if err != nil {
		return nil, fmt.Errorf("generating the CDI spec: %w", err)
	}
	uuid, err := nvcdi.NewDeviceNamer(nvcdi.DeviceNameStrategyUUID)
	if err != nil {
		return nil, fmt.Errorf("generating the CDI spec: %w", err)
	}
	opts := []nvcdi.Option{
		nvcdi.WithMode(nvcdi.ModeNvml),
		nvcdi.WithNvmlLib(lib),
		nvcdi.WithLogger(log),
		nvcdi.WithDriverRoot(o.DriverRoot),
		nvcdi.WithDevRoot(o.DevRoot),
		nvcdi.WithNVIDIACDIHookPath(o.HookPath),
		nvcdi.WithDeviceNamers(index, uuid),
		// nvcdi makes per-device entries only; "all" is every GPU.
		nvcdi.WithMergedDeviceOptions(transform.WithName("all"), transform.WithSkipIfExists(true)),
	}
	if o.NVML != nil {
		// A mock NVML: do not ask the host's driver utilities.
		opts = append(opts, nvcdi.WithFeatureFlags(nvcdi.FeatureDisableNvsandboxUtils))
	}
	defer withDriverPath(o.DriverRoot)()
	cdilib, err := nvcdi.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("generating the CDI spec: %w", err)
	}
	spec, err := cdilib.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("generating the CDI spec: %w", err)
	}
	raw = spec.Raw()
	if len(raw.Devices) == 0 {
		return nil, errors.New("no NVIDIA GPU found: the generated CDI spec has no devices")
	}
	asHook(raw, o.HookPath)
	if raw.Annotations == nil {
		raw.Annotations = map[string]string{}
	}
	raw.Annotations[AnnotationDriverVersion] = version
	raw.Annotations[AnnotationDriverRoot] = o.DriverRoot
	raw.Annotations[AnnotationGenerator] = "sbxrun"
	if raw.Version, err = cdispecs.MinimumRequiredVersion(raw); err != nil {
		return nil, fmt.Errorf("generating the CDI spec: %w", err)
	}
	return raw, nil
}

// asHook makes every hook that runs hookPath run it as nvidia-cdi-hook
// (argv[0]), which is how the sbxrun binary knows to serve the hook.
func asHook(raw *cdispecs.Spec, hookPath string) {
	edits := []*cdispecs.ContainerEdits{&raw.ContainerEdits}
	for i := range raw.Devices {
		edits = append(edits, &raw.Devices[i].ContainerEdits)
	}
	for _, e := range edits {
		for _, h := range e.Hooks {
			if h.Path == hookPath && len(h.Args) > 0 {
				h.Args[0] = hooks.Name
			}
		}
	}
}

// probe initialises NVML and returns the driver version and GPU count, or
// the reason there are none.
func probe(lib nvml.Interface, driverRoot string) (string, int, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return "", 0, noDriver(driverRoot)
		}
		if ret == nvml.ERROR_LIB_RM_VERSION_MISMATCH {
			// The usual state between a driver upgrade and a reboot.
			loaded, _ := LoadedDriverVersion()
			if loaded == "" {
				loaded = "another version"
			}
			return "", 0, fmt.Errorf("the loaded NVIDIA kernel module (%s) does not match the installed driver libraries (NVML: %v), as after a driver upgrade without a reboot: reboot (or reload the nvidia kernel modules), then run `sudo sbxrun gpu setup`", loaded, ret)
		}
		return "", 0, fmt.Errorf("the NVIDIA driver does not answer (NVML: %v): check that its kernel module is loaded (nvidia-smi)", ret)
	}
	defer lib.Shutdown()
	version, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return "", 0, fmt.Errorf("asking NVML for the driver version: %v", ret)
	}
	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return "", 0, fmt.Errorf("asking NVML for the GPUs: %v", ret)
	}
	if count == 0 {
		return "", 0, fmt.Errorf("no NVIDIA GPU found: driver %s sees none", version)
	}
	return version, count, nil
}

// noDriver is the error for a host without libnvidia-ml.
func noDriver(driverRoot string) error {
	if driverRoot == "/" {
		for _, alt := range alternateRoots {
			if _, err := findNVML(alt); err == nil {
				return fmt.Errorf("no NVIDIA driver under /, but one is under %s: run `sudo sbxrun gpu setup --driver-root %s`", alt, alt)
			}
		}
		return errors.New("no NVIDIA driver found (libnvidia-ml.so.1 is not installed): install the driver, or give its location with --driver-root")
	}
	return fmt.Errorf("no NVIDIA driver under %q (no libnvidia-ml.so.1 there): give the directory the driver is installed under with --driver-root", driverRoot)
}

// systemNVML is where the dynamic loader finds libnvidia-ml.so.1 ("" for
// nowhere); tests replace it.
var systemNVML = sync.OnceValue(func() string { return nvmlPath("/") })

// alternateRoots are where some GPU hosts keep the driver.
var alternateRoots = []string{"/usr/local/nvidia", "/run/nvidia/driver"}

// libDirs are where libnvidia-ml.so.1 is looked for under a driver root.
var libDirs = []string{"usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu", "usr/lib64", "usr/lib", "lib64", "lib/x86_64-linux-gnu", "lib"}

// findNVML returns libnvidia-ml.so.1 under root.
func findNVML(root string) (string, error) {
	for _, d := range libDirs {
		p := filepath.Join(root, d, "libnvidia-ml.so.1")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// loadNVML returns the host's NVML: the dynamic loader's libnvidia-ml.so.1
// for root "/", the one under the driver root otherwise.
func loadNVML(driverRoot string) (nvml.Interface, error) {
	if driverRoot == "/" {
		return nvml.New(), nil
	}
	p, err := findNVML(driverRoot)
	if err != nil {
		return nil, noDriver(driverRoot)
	}
	return nvml.New(nvml.WithLibraryPath(p)), nil
}

// writeSpec writes raw to path through a temporary file and a rename, so a
// reader never sees half a spec.
func writeSpec(path string, raw *cdispecs.Spec) error {
	data, err := yaml.Marshal(raw)
	if err != nil {
		return fmt.Errorf("encoding the CDI spec: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return writeError(path, err)
	}
	tmp, err := os.CreateTemp(dir, ".nvidia-*.tmp")
	if err != nil {
		return writeError(path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append([]byte("---\n"), data...)); err != nil {
		tmp.Close()
		return writeError(path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return writeError(path, err)
	}
	if err := tmp.Close(); err != nil {
		return writeError(path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return writeError(path, err)
	}
	return nil
}

// writeError names the file and the fix.
func writeError(path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("writing the CDI spec %q: %w: run it as root (sudo sbxrun gpu setup) or write elsewhere with --output", path, os.ErrPermission)
	}
	return fmt.Errorf("writing the CDI spec %q: %w", path, err)
}
