package gpu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/oci"
)

// procVersion is where the loaded kernel driver tells its version.
var procVersion = "/proc/driver/nvidia/version"

// ErrNoDriver means no NVIDIA kernel driver is loaded.
var ErrNoDriver = errors.New("no NVIDIA driver is loaded")

// LoadedDriverVersion returns the version of the NVIDIA kernel driver that
// is loaded, from /proc/driver/nvidia/version; ErrNoDriver when none is.
func LoadedDriverVersion() (string, error) {
	b, err := os.ReadFile(procVersion)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w (no %s)", ErrNoDriver, procVersion)
	}
	if err != nil {
		return "", fmt.Errorf("reading the driver version: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "NVRM version:") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if versionRe.MatchString(f) {
				return f, nil
			}
		}
	}
	return "", fmt.Errorf("no driver version in %s", procVersion)
}

// versionRe matches a driver version such as 580.159.04 or 550.54.
var versionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)

// libVersionRe takes the version from a driver library's file name.
var libVersionRe = regexp.MustCompile(`^lib(?:nvidia-ml|cuda)\.so\.([0-9]+\.[0-9]+(?:\.[0-9]+)?)$`)

// SpecDriverVersion returns the driver version a spec was generated for:
// sbxrun's annotation, else the version in the name of the libnvidia-ml or
// libcuda it mounts (specs from nvidia-ctk); "" when it cannot tell.
func SpecDriverVersion(raw *cdispecs.Spec) string {
	if v := raw.Annotations[AnnotationDriverVersion]; v != "" {
		return v
	}
	for _, e := range allEdits(raw) {
		for _, m := range e.Mounts {
			if sub := libVersionRe.FindStringSubmatch(filepath.Base(m.HostPath)); sub != nil {
				return sub[1]
			}
		}
	}
	return ""
}

// allEdits are a spec's common edits and each device's.
func allEdits(raw *cdispecs.Spec) []*cdispecs.ContainerEdits {
	edits := []*cdispecs.ContainerEdits{&raw.ContainerEdits}
	for i := range raw.Devices {
		edits = append(edits, &raw.Devices[i].ContainerEdits)
	}
	return edits
}

// Stale returns why the spec no longer fits the host: it was generated for
// another driver version than loaded ("" skips that check), or host files
// it names (libraries, device nodes, hooks) are gone. None: it is fresh.
func Stale(raw *cdispecs.Spec, loaded string) []string {
	var reasons []string
	if v := SpecDriverVersion(raw); loaded != "" && v != "" && v != loaded {
		reasons = append(reasons, fmt.Sprintf("it was generated for driver %s, the loaded driver is %s", v, loaded))
	}
	var missing []string
	seen := map[string]bool{}
	check := func(p string) {
		if p == "" || seen[p] {
			return
		}
		seen[p] = true
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, e := range allEdits(raw) {
		for _, m := range e.Mounts {
			if m.Type != "tmpfs" {
				check(m.HostPath)
			}
		}
		for _, d := range e.DeviceNodes {
			if d.HostPath != "" {
				check(d.HostPath)
			} else {
				check(d.Path)
			}
		}
		for _, h := range e.Hooks {
			check(h.Path)
		}
	}
	switch {
	case len(missing) > 3:
		reasons = append(reasons, fmt.Sprintf("%d host files it names are gone (%s, ...)", len(missing), strings.Join(missing[:3], ", ")))
	case len(missing) > 0:
		reasons = append(reasons, fmt.Sprintf("host files it names are gone (%s)", strings.Join(missing, ", ")))
	}
	return reasons
}

// RefreshOptions configure Refresh.
type RefreshOptions struct {
	// Generate is how a stale spec is regenerated; its Output, DriverRoot
	// and HookPath are taken from the stale spec and this executable.
	Generate Options
	// Rewrite lets Refresh rewrite a stale spec file sbxrun generated
	// (root); otherwise the new spec lives in memory for this run only.
	Rewrite bool
}

// Refresh checks the NVIDIA specs that the fully qualified device names
// come from against the loaded driver and the host's files. A stale spec
// sbxrun generated is regenerated in place when o.Rewrite; any other stale
// spec is replaced in memory for this run. It returns the registry to use
// (reloaded after a rewrite), one note per spec it refreshed, and an error
// naming the spec, why it is stale and the exact command that fixes it
// when it could not be refreshed.
func Refresh(reg *oci.CDIRegistry, names []string, o RefreshOptions) (*oci.CDIRegistry, []string, error) {
	loaded, lerr := LoadedDriverVersion()
	done := map[string]bool{}
	var notes []string
	for _, n := range names {
		s := reg.SpecFor(n)
		if s == nil || s.GetVendor() != "nvidia.com" || s.InMemory || done[s.Path] {
			continue
		}
		done[s.Path] = true
		if lerr != nil {
			return reg, notes, fmt.Errorf("CDI device %q: %w: load the driver (modprobe nvidia; nvidia-smi tells whether it works)", n, lerr)
		}
		reasons := Stale(s.Spec.Spec, loaded)
		if len(reasons) == 0 {
			continue
		}
		why := strings.Join(reasons, "; ")
		ours := s.Annotations[AnnotationGenerator] == "sbxrun"
		g := o.Generate
		g.Output = s.Path
		if root := s.Annotations[AnnotationDriverRoot]; root != "" && g.DriverRoot == "" {
			g.DriverRoot = root
		}
		if g.HookPath == "" && ours {
			// Keep the hook binary sbxrun set the spec up with while it is
			// still there: the sbxrun that happens to run now may be a
			// temporary build. Another tool's hook binary may not know the
			// hooks this sbxrun's generator names: those get this one.
			g.HookPath = specHookPath(s.Spec.Spec)
		}
		fix := fmt.Sprintf("run `sudo sbxrun gpu setup --output %s`", s.Path)
		if g.DriverRoot != "" && g.DriverRoot != "/" {
			fix = fmt.Sprintf("run `sudo sbxrun gpu setup --driver-root %s --output %s`", g.DriverRoot, s.Path)
		}
		raw, err := Generate(g)
		if err != nil {
			return reg, notes, fmt.Errorf("CDI spec %q is stale (%s) and generating a fresh one failed (%v): %s", s.Path, why, err, fix)
		}
		write := ours && o.Rewrite
		if hook := specHookPath(raw); write && hook != "" {
			// Other CDI runtimes would run the hook of a rewritten file as
			// root without asking: write only one that runs would accept.
			if _, herr := oci.CheckHookPath(hook, "", reg.Trusted()); herr != nil {
				write = false
				fix = fmt.Sprintf("not rewritten: %v", herr)
			}
		}
		if write {
			err := writeSpec(s.Path, raw)
			if err == nil {
				fresh, err := oci.LoadCDI(reg.Dirs(), reg.Trusted())
				if err != nil {
					return reg, notes, err
				}
				reg = fresh
				notes = append(notes, fmt.Sprintf("regenerated the CDI spec %s: %s", s.Path, why))
				continue
			}
			if !unwritable(err) {
				return reg, notes, fmt.Errorf("CDI spec %q is stale (%s) and rewriting it failed: %w", s.Path, why, err)
			}
			// A read-only /etc, or a file root may not write: this run
			// gets the spec in memory, as a user does, and the note says
			// that rerunning setup on the same file will not help.
			fix = fmt.Sprintf("the file cannot be written (%v): make it writable and run `sudo sbxrun gpu setup --output %s`, or write one elsewhere with `sudo sbxrun gpu setup --output FILE` and name its directory with --cdi-spec-dir", errors.Unwrap(err), s.Path)
		} else if !strings.HasPrefix(fix, "not rewritten") {
			fix += " to update the file"
		}
		if err := reg.Replace(s.Path, raw); err != nil {
			return reg, notes, fmt.Errorf("CDI spec %q is stale (%s): %w: %s", s.Path, why, err, fix)
		}
		notes = append(notes, fmt.Sprintf("the CDI spec %s is stale (%s); using one generated in memory for this run (%s)", s.Path, why, fix))
	}
	return reg, notes, nil
}

// CheckSpecFile returns why the spec file at path should be regenerated:
// it is missing or unreadable, sbxrun would not trust it (owner, mode), it
// is not a valid CDI spec, or Stale finds it no longer fits the loaded
// driver and the host. None: it is fresh.
func CheckSpecFile(path string) []string {
	fi, err := os.Stat(path)
	if err == nil {
		if err := oci.CheckTrustedFile("CDI spec", path, fi, oci.TrustedUIDs()); err != nil {
			return []string{err.Error()}
		}
	}
	s, err := cdi.ReadSpec(path, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"it does not exist"}
	}
	if err != nil {
		return []string{err.Error()}
	}
	loaded, err := LoadedDriverVersion()
	if err != nil {
		return []string{err.Error()}
	}
	return Stale(s.Spec, loaded)
}

// specHookPath is the executable the spec's hooks run, when it still
// exists as an executable file.
func specHookPath(spec *cdispecs.Spec) string {
	var hooks []*cdispecs.Hook
	if spec == nil {
		return ""
	}
	hooks = append(hooks, spec.ContainerEdits.Hooks...)
	for _, d := range spec.Devices {
		hooks = append(hooks, d.ContainerEdits.Hooks...)
	}
	for _, h := range hooks {
		if fi, err := os.Stat(h.Path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return h.Path
		}
	}
	return ""
}
