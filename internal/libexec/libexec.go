package libexec

import (
	"os"
	"os/exec"
	"path/filepath"
)

// Find returns the path of helper program name: the environment variable
// env when set, else name beside this program (symlinks resolved), in
// ../libexec/sbxrun (the installed layout), or on PATH. ok is false when
// it is nowhere.
func Find(name, env string) (path string, ok bool) {
	if p := os.Getenv(env); p != "" {
		return p, true
	}
	if self, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(self); err == nil {
			self = r
		}
		dir := filepath.Dir(self)
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "..", "libexec", "sbxrun", name)} {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, true
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	return "", false
}
