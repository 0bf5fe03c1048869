package gpu

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/sbxrun/sbxrun/oci"
)

// GenerateMissing makes NVIDIA GPUs available to a run on a host whose
// driver is loaded but where no CDI spec defines them yet: /var/run/cdi is
// emptied at every boot, so a host that ran `sbxrun gpu setup` once has no
// spec after a reboot. With o.Rewrite (root) and the default spec
// directory among reg's, it writes DefaultSpecPath as `sbxrun gpu setup`
// would; otherwise (a user, rootless, other spec directories, a read-only
// /var/run) the spec lives in memory for this run. It does nothing, and
// returns reg, when a spec defines NVIDIA GPUs, when a spec file of that
// kind was refused (the refusal is the message to show) or when no driver
// is loaded. The note says what it did; the error says why generating
// failed and what to run.
func GenerateMissing(reg *oci.CDIRegistry, o RefreshOptions) (*oci.CDIRegistry, string, error) {
	if len(reg.Devices(Kind)) > 0 {
		return reg, "", nil
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
	if o.Rewrite && slices.Contains(cleanDirs(reg.Dirs()), filepath.Dir(DefaultSpecPath)) {
		_, err := Setup(g)
		if err == nil {
			fresh, err := oci.LoadCDI(reg.Dirs(), reg.Trusted())
			if err != nil {
				return reg, "", err
			}
			return fresh, fmt.Sprintf("generated the CDI spec %s (there was none; %s is emptied at every boot)", DefaultSpecPath, filepath.Dir(DefaultSpecPath)), nil
		}
		if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
			return reg, "", fmt.Errorf("no CDI spec defines %s devices and generating one failed: %w", Kind, err)
		}
	}
	raw, err := Generate(g)
	if err != nil {
		return reg, "", fmt.Errorf("no CDI spec defines %s devices and generating one failed: %w", Kind, err)
	}
	if err := reg.AddInMemory(DefaultSpecPath, raw); err != nil {
		return reg, "", err
	}
	return reg, fmt.Sprintf("no CDI spec defines %s devices: using one generated in memory for this run (`sudo sbxrun gpu setup` writes %s)", Kind, DefaultSpecPath), nil
}

// cleanDirs are dirs, cleaned, with /var/run and /run taken as one.
func cleanDirs(dirs []string) []string {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		d = filepath.Clean(d)
		out = append(out, d)
		if rest, ok := cutDirPrefix(d, "/run"); ok {
			out = append(out, filepath.Join("/var/run", rest))
		}
	}
	return out
}

// cutDirPrefix reports whether dir is prefix or lies under it, and the rest.
func cutDirPrefix(dir, prefix string) (string, bool) {
	if dir == prefix {
		return "", true
	}
	if len(dir) > len(prefix) && dir[:len(prefix)] == prefix && dir[len(prefix)] == '/' {
		return dir[len(prefix)+1:], true
	}
	return "", false
}
