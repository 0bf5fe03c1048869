package gpu

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/sbxrun/sbxrun/hooks"
	"github.com/sbxrun/sbxrun/oci"
)

// Device is one GPU as NVML reports it.
type Device struct {
	// Index is NVML's index.
	Index int
	// Name is the product name.
	Name string
	// UUID is the GPU's UUID.
	UUID string
}

// ListDevices returns the GPUs NVML reports, with the driver version.
func ListDevices(lib nvml.Interface, driverRoot string) (string, []Device, error) {
	if driverRoot == "" {
		driverRoot = "/"
	}
	if lib == nil {
		var err error
		if lib, err = loadNVML(driverRoot); err != nil {
			return "", nil, err
		}
	}
	version, count, err := probe(lib, driverRoot)
	if err != nil {
		return "", nil, err
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return "", nil, fmt.Errorf("NVML: %v", ret)
	}
	defer lib.Shutdown()
	var devs []Device
	for i := range count {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return version, devs, fmt.Errorf("GPU %d: %v", i, ret)
		}
		name, _ := d.GetName()
		uuid, _ := d.GetUUID()
		devs = append(devs, Device{Index: i, Name: name, UUID: uuid})
	}
	return version, devs, nil
}

// CheckSpecHook checks the binary a hook of the CDI spec at specPath runs
// with the very checks a run makes (oci.CheckHookPath: an absolute path to
// an executable owned by a trusted user, not writable by others, in
// directories nobody else can change; errors name the spec as a run's do)
// and, only when they pass, that it answers the no-op hook
// (`nvidia-cdi-hook noop`) within five seconds, in the explicit hook
// environment.
func CheckSpecHook(path, specPath string, trusted []uint32) error {
	resolved, err := oci.CheckHookPath(path, specPath, trusted)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, resolved, "noop")
	cmd.Args[0] = hooks.Name
	cmd.Env = hooks.Env(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hook %q does not run (`%s noop`: %v): %s: run `sudo sbxrun gpu setup` to point the spec at this sbxrun", path, hooks.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StatusOptions configure Status.
type StatusOptions struct {
	// SpecDirs are the CDI spec directories.
	SpecDirs []string
	// DriverRoot is where the driver is installed ("/" when empty).
	DriverRoot string
	// NVML is the NVML library to ask; nil loads the host's.
	NVML nvml.Interface
}

// Status writes what sbxrun knows about the host's GPUs: the loaded driver,
// the GPUs, every CDI spec file (devices, the driver it was generated for
// and whether it is fresh, or why it was refused) and the health of the
// hook binaries the NVIDIA specs run. It returns an error naming the first
// problem and its fix when GPU sandboxes would not work.
func Status(w io.Writer, o StatusOptions) error {
	problems, err := status(w, o)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("GPU sandboxes will not work: %s", problems[0].Text)
	}
	return nil
}

// Problem is one thing Status found that keeps GPU sandboxes from
// working, for callers (`sbxrun doctor`) that report each on its own.
type Problem struct {
	// Subject is what is wrong: "driver", "gpus", "spec" or "hook".
	Subject string
	// Path is the spec file or hook binary concerned, if any.
	Path string
	// Text says what is wrong and ends with the fix after ": ".
	Text string
	// Fix is that fix alone where Status words it itself; "" where it is
	// part of an error's text.
	Fix string
	// Err is the underlying error where there is one (ErrNoDriver).
	Err error
}

// Problems runs Status's checks without printing and returns every
// problem, not only the first.
func Problems(o StatusOptions) ([]Problem, error) {
	return status(io.Discard, o)
}

func status(w io.Writer, o StatusOptions) ([]Problem, error) {
	var problems []Problem
	add := func(subject, path string, err error, format string, a ...any) {
		problems = append(problems, Problem{Subject: subject, Path: path, Err: err, Text: fmt.Sprintf(format, a...)})
	}

	loaded, lerr := LoadedDriverVersion()
	switch {
	case lerr != nil:
		fmt.Fprintf(w, "driver:    %v\n", lerr)
		add("driver", "", lerr, "%v: %s", lerr, noDriverFix)
		problems[len(problems)-1].Fix = noDriverFix
	default:
		fmt.Fprintf(w, "driver:    %s (loaded)\n", loaded)
	}

	_, devs, derr := ListDevices(o.NVML, o.DriverRoot)
	switch {
	case derr != nil:
		fmt.Fprintf(w, "GPUs:      %v\n", derr)
		if lerr == nil {
			add("gpus", "", derr, "%v", derr)
		}
	default:
		for i, d := range devs {
			label := "GPUs:"
			if i > 0 {
				label = ""
			}
			fmt.Fprintf(w, "%-10s %d  %s  %s\n", label, d.Index, d.Name, d.UUID)
		}
	}

	reg, err := oci.LoadCDI(o.SpecDirs, nil)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "CDI specs: %s\n", strings.Join(o.SpecDirs, ", "))
	var hookPaths []string
	hookSpec := map[string]string{} // the first spec that names each hook
	nvidia := 0
	for _, s := range reg.Specs() {
		kind := s.GetVendor() + "/" + s.GetClass()
		line := fmt.Sprintf("  %s  %s  devices: %s", s.Path, kind, shortNames(deviceNames(s.Spec.Spec)))
		if s.GetVendor() == "nvidia.com" {
			nvidia++
			v := SpecDriverVersion(s.Spec.Spec)
			if v == "" {
				v = "unknown"
			}
			line += "  driver " + v
			if reasons := Stale(s.Spec.Spec, loaded); len(reasons) > 0 {
				line += "  STALE: " + strings.Join(reasons, "; ")
				fix := setupCommand(s.Path, o.DriverRoot, s.Annotations[AnnotationDriverRoot])
				add("spec", s.Path, nil, "CDI spec %q is stale (%s): %s", s.Path, strings.Join(reasons, "; "), fix)
				problems[len(problems)-1].Fix = fix
			} else {
				line += "  fresh"
			}
			for _, e := range allEdits(s.Spec.Spec) {
				for _, h := range e.Hooks {
					if !slices.Contains(hookPaths, h.Path) {
						hookPaths = append(hookPaths, h.Path)
						hookSpec[h.Path] = s.Path
					}
				}
			}
		}
		fmt.Fprintln(w, line)
	}
	for _, rf := range reg.Refused() {
		fmt.Fprintf(w, "  %s  REFUSED: %v\n", rf.Path, rf.Err)
		// Only a file that may be the NVIDIA spec keeps GPUs from working.
		if rf.Kind == Kind || rf.Kind == "" {
			add("spec", rf.Path, rf.Err, "%v", rf.Err)
		}
	}
	if nvidia == 0 {
		if lerr == nil && derr == nil {
			// Not a problem: a GPU run generates the spec (GenerateMissing).
			fmt.Fprintf(w, "  no spec for NVIDIA GPUs: a GPU run generates one (as root %s, otherwise in memory for each run); `sudo sbxrun gpu setup` writes it now\n", DefaultSpecPath)
		} else {
			fmt.Fprintf(w, "  no spec for NVIDIA GPUs\n")
		}
	}
	for _, p := range hookPaths {
		if err := CheckSpecHook(p, hookSpec[p], reg.Trusted()); err != nil {
			fmt.Fprintf(w, "hook:      %v\n", err)
			add("hook", p, err, "%v", err)
			continue
		}
		fmt.Fprintf(w, "hook:      %s ok (trusted owner, runs as %s)\n", p, hooks.Name)
	}
	return problems, nil
}

const noDriverFix = "install or load the NVIDIA driver (nvidia-smi tells whether it works)"

// setupCommand is the command that regenerates the spec at path: with the
// driver root given (status's --driver-root), else the one the spec
// recorded, as Refresh words it.
func setupCommand(path, given, recorded string) string {
	root := given
	if root == "" {
		root = recorded
	}
	if root != "" && root != "/" {
		return fmt.Sprintf("run `sudo sbxrun gpu setup --driver-root %s --output %s`", root, path)
	}
	return fmt.Sprintf("run `sudo sbxrun gpu setup --output %s`", path)
}

// shortNames lists device names with the UUIDs counted, not spelled out.
func shortNames(names []string) string {
	var short []string
	uuids := 0
	for _, n := range names {
		if strings.HasPrefix(n, "GPU-") || strings.HasPrefix(n, "MIG-") {
			uuids++
			continue
		}
		short = append(short, n)
	}
	out := strings.Join(short, ", ")
	if uuids > 0 {
		out += fmt.Sprintf(" (+%d UUIDs)", uuids)
	}
	return out
}
