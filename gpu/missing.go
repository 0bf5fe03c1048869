package gpu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/oci"
)

// GenerateMissing makes NVIDIA GPUs available to a run on a host whose
// driver is loaded but where no CDI spec defines them yet: /var/run/cdi is
// emptied at every boot, so a host that ran `sbxrun gpu setup` once has no
// spec after a reboot. The spec is generated once. With o.Rewrite (root),
// the default spec directory among reg's, no file at DefaultSpecPath yet
// and a hook binary that runs would accept, it is written to
// DefaultSpecPath as `sbxrun gpu setup` would; otherwise (a user, rootless,
// other spec directories, a read-only /var/run, a file of another tool
// there) it lives in memory for this run. It does nothing, and returns reg,
// when a spec of kind nvidia.com/gpu was loaded (even one whose devices
// conflict) or refused (the refusal is the message to show), or when no
// driver is loaded. The note says what it did and what writes the file;
// the error says why generating failed.
func GenerateMissing(reg *oci.CDIRegistry, o RefreshOptions) (*oci.CDIRegistry, string, error) {
	for _, s := range reg.Specs() {
		if s.GetVendor()+"/"+s.GetClass() == Kind {
			return reg, "", nil
		}
	}
	for _, rf := range reg.Refused() {
		if rf.Kind == Kind {
			return reg, "", nil
		}
	}
	if _, err := LoadedDriverVersion(); err != nil {
		return reg, "", nil
	}
	g := o.Generate
	g.Output = DefaultSpecPath
	raw, err := Generate(g)
	if err != nil {
		return reg, "", fmt.Errorf("no CDI spec defines %s devices and generating one failed: %w (`sudo sbxrun gpu setup --driver-root DIR` writes one for a driver installed elsewhere)", Kind, err)
	}
	searched := slices.Contains(cleanDirs(reg.Dirs()), filepath.Dir(DefaultSpecPath))
	why := ""
	if o.Rewrite && searched {
		var werr error
		if why, werr = writeMissing(raw, reg.Trusted()); werr != nil {
			return reg, "", werr
		}
		if why == "" {
			fresh, err := oci.LoadCDI(reg.Dirs(), reg.Trusted())
			if err != nil {
				return reg, "", err
			}
			return fresh, fmt.Sprintf("generated the CDI spec %s (there was none; %s is emptied at every boot)", DefaultSpecPath, filepath.Dir(DefaultSpecPath)), nil
		}
	}
	if err := reg.AddInMemory(DefaultSpecPath, raw); err != nil {
		return reg, "", err
	}
	fix := fmt.Sprintf("`sudo sbxrun gpu setup` writes %s", DefaultSpecPath)
	if dirs := reg.Dirs(); !searched && len(dirs) > 0 {
		out := filepath.Join(dirs[len(dirs)-1], "nvidia.yaml")
		fix = fmt.Sprintf("`sudo sbxrun gpu setup --output %s` writes one where this run looks", out)
	}
	if why != "" {
		fix = why + "; " + fix
	}
	return reg, fmt.Sprintf("no CDI spec defines %s devices: using one generated in memory for this run (%s)", Kind, fix), nil
}

// writeMissing writes raw to DefaultSpecPath unless that would be wrong:
// a file is there already (another tool's, or one sbxrun could not load),
// or the hook binary raw names is one runs refuse (other CDI runtimes
// would run it as root without asking). It returns why it did not write
// ("" when it wrote), or an error for a failure other than a read-only or
// unwritable directory.
func writeMissing(raw *cdispecs.Spec, trusted []uint32) (string, error) {
	if _, err := os.Lstat(DefaultSpecPath); err == nil {
		return fmt.Sprintf("%s exists but defines no usable %s devices, so it was left alone", DefaultSpecPath, Kind), nil
	}
	if hook := specHookPath(raw); hook != "" {
		if _, err := oci.CheckHookPath(hook, "", trusted); err != nil {
			return fmt.Sprintf("not written: %v", err), nil
		}
	}
	err := writeSpec(DefaultSpecPath, raw)
	switch {
	case err == nil:
		return "", nil
	case unwritable(err):
		return fmt.Sprintf("%s could not be written: %v", DefaultSpecPath, errors.Unwrap(err)), nil
	}
	return "", err
}

// unwritable reports whether writing a spec failed because the file or
// its directory may not be written (permissions, a read-only mount): then
// a run falls back to a spec in memory.
func unwritable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// cleanDirs are dirs, cleaned, with /var/run and /run taken as one.
func cleanDirs(dirs []string) []string {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		d = filepath.Clean(d)
		out = append(out, d)
		if d == "/run" || strings.HasPrefix(d, "/run/") {
			out = append(out, "/var"+d)
		}
	}
	return out
}
