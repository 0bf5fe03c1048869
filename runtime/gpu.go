package runtime

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sbxrun/sbxrun/gpu"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/profiles"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// CDISpecDirsEnv names the variable that lists CDI spec directories,
// colon-separated, when --cdi-spec-dir is not given.
const CDISpecDirsEnv = "SBXRUN_CDI_SPEC_DIRS"

// ResolveCDISpecDirs picks the CDI spec directories: the explicit ones
// (--cdi-spec-dir), then $SBXRUN_CDI_SPEC_DIRS, then /etc/cdi and
// /var/run/cdi. Later directories take priority.
func ResolveCDISpecDirs(explicit []string) []string {
	if len(explicit) > 0 {
		return slices.Clone(explicit)
	}
	if env := os.Getenv(CDISpecDirsEnv); env != "" {
		var dirs []string
		for _, d := range strings.Split(env, ":") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
		if len(dirs) > 0 {
			return dirs
		}
	}
	return slices.Clone(oci.DefaultCDISpecDirs)
}

// gpuRequest is the resolved gpus key, parsed; nil when it asks for no
// GPU (unset, or none). The request is optional with "gpu: optional",
// unless the GPUs were asked for on the command line, which always
// requires them.
func gpuRequest(r *profiles.Resolved) (req *gpu.Request, optional bool, err error) {
	p := &r.Profile
	if p.GPUs == nil {
		return nil, false, nil
	}
	parsed, err := gpu.ParseRequest(*p.GPUs)
	if err != nil || parsed.None {
		return nil, false, err
	}
	optional = p.GPU != nil && *p.GPU == "optional" && r.Sources["gpus"] != profiles.SourceFlag
	return &parsed, optional, nil
}

// cdiDevices resolves the profile's GPU request and CDI devices into
// sb.CDIDevices and the registry they come from, after making sure the
// NVIDIA specs fit the loaded driver (gpu.Refresh). A device the command
// line or the profile's devices ask for, and GPUs that are not optional,
// are required: unavailable, they are an error with the reason and the
// fix. Optional GPUs that are unavailable leave the sandbox without GPUs
// after one warning line.
func (o *RunOptions) cdiDevices(res *profiles.Resolved, sb *oci.Sandbox) error {
	if !wantsCDI(res) {
		return nil
	}
	req, optional, err := gpuRequest(res)
	if err != nil {
		return badConfigf("%w", err)
	}
	var devices []string
	for _, d := range res.Profile.Devices {
		if !slices.Contains(devices, d) {
			devices = append(devices, d)
		}
	}
	if req == nil && len(devices) == 0 {
		return nil
	}
	dirs := ResolveCDISpecDirs(o.CDISpecDirs)
	reg, err := oci.LoadCDI(dirs, nil)
	if err != nil {
		return err
	}
	// Only root in the host's user namespace writes the host's spec files
	// (inside RootlessKit's namespace, or any other, sbxrun is uid 0 but
	// may not), and only for a run: `sbxrun spec` and unit generation read.
	refresh := gpu.RefreshOptions{Rewrite: os.Geteuid() == 0 && !rootless.InNamespace() && !oci.InUserNamespace() && !o.readOnlyHost}
	say := func(notes []string) {
		for _, n := range notes {
			o.notef("%s", n)
		}
	}
	// No spec for NVIDIA GPUs yet (/var/run/cdi is emptied at boot) but a
	// driver is loaded: generate one, as `sbxrun gpu setup` would.
	var genErr error
	nvidiaDevice := slices.ContainsFunc(devices, func(d string) bool { return strings.HasPrefix(d, gpu.Kind+"=") })
	if req != nil || nvidiaDevice {
		var note string
		reg, note, genErr = gpu.GenerateMissing(reg, refresh)
		if note != "" {
			say([]string{note})
		}
	}

	if len(devices) > 0 {
		if genErr != nil && nvidiaDevice {
			return fmt.Errorf("--device: %w", genErr)
		}
		var notes []string
		reg, notes, err = gpu.Refresh(reg, devices, refresh)
		say(notes)
		if err == nil {
			err = reg.Resolve(devices)
		}
		if err != nil {
			return fmt.Errorf("--device: %w", withFix(err, reg))
		}
	}
	if req != nil {
		what := "--gpus " + req.String()
		if src := res.Sources["gpus"]; src != profiles.SourceFlag {
			what = fmt.Sprintf("gpus: %s (%s)", req.String(), src)
		}
		names, err := req.Devices(reg.Devices(gpu.Kind))
		if genErr != nil {
			err = genErr
		}
		if err == nil {
			var notes []string
			var fresh *oci.CDIRegistry
			fresh, notes, err = gpu.Refresh(reg, names, refresh)
			say(notes)
			if err == nil {
				reg = fresh
				err = reg.Resolve(names)
			}
		}
		switch {
		case err == nil:
			devices = append(devices, names...)
		case optional:
			o.notef("warning: running without GPUs: %v (--gpus none skips the request)", withFix(err, reg))
		default:
			return fmt.Errorf("%s: %w", what, withFix(err, reg))
		}
	}
	if len(devices) == 0 {
		return nil
	}
	sb.CDIDevices = devices
	sb.CDISpecDirs = reg.Dirs()
	sb.CDI = reg
	return nil
}

// withFix adds the fix to an unavailable NVIDIA device when no spec file
// for NVIDIA GPUs exists or was refused: load the driver, or generate the
// spec.
func withFix(err error, reg *oci.CDIRegistry) error {
	if !errors.Is(err, oci.ErrCDIUnavailable) || len(reg.Devices(gpu.Kind)) > 0 || !strings.Contains(err.Error(), gpu.Kind) {
		return err
	}
	for _, rf := range reg.Refused() {
		if rf.Kind == gpu.Kind {
			return err
		}
	}
	if _, derr := gpu.LoadedDriverVersion(); errors.Is(derr, gpu.ErrNoDriver) {
		return fmt.Errorf("%w, and no NVIDIA driver is loaded on this host: install or load it (modprobe nvidia; nvidia-smi tells whether it works)", err)
	}
	return fmt.Errorf("%w: run `sudo sbxrun gpu setup` to generate it (or name the directory that holds it with --cdi-spec-dir)", err)
}

// wantsCDI reports whether the profile asks for any CDI device: GPUs (even
// a request that fails to parse, which cdiDevices reports) or devices.
func wantsCDI(r *profiles.Resolved) bool {
	return len(r.Profile.Devices) > 0 || (r.Profile.GPUs != nil && strings.TrimSpace(*r.Profile.GPUs) != "none")
}
