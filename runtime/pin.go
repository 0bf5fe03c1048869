package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/sbxrun/sbxrun/oci"
)

// pinned is a run's staged bind sources: one bind mount per source under a
// private directory of the state dir, kept until runc has mounted them.
type pinned struct {
	dir    string
	mounts []string
	// keep holds the sources keep-id stages idmapped once the spec says
	// whose uid the workload has (nil: --userns host, rootless).
	keep *keepID
}

// release unmounts the staged sources and removes their directory. runc
// has made its own mounts from them by then, which stay. It is safe to call
// more than once.
func (p *pinned) release() {
	if p == nil || p.dir == "" {
		return
	}
	p.keep.close()
	unstage(p.dir, p.mounts)
	p.dir, p.mounts = "", nil
}

// unstage unmounts the given mounts (detached: a sandbox may still be
// starting from them) and removes dir.
func unstage(dir string, mounts []string) {
	for _, m := range mounts {
		_ = unix.Unmount(m, unix.MNT_DETACH)
		_ = os.Remove(m)
	}
	_ = os.Remove(dir)
}

// stageRoot is where runs stage their bind sources: STATE/mounts, owned by
// root (the user, rootless) and closed to others, so no one else can swap
// what lies there.
func stageRoot(stateDir string) string { return filepath.Join(stateDir, "mounts") }

// pinMounts closes the gap between checking a bind source and mounting it.
// oci.Validate checked each source by its path; a host process could swap a
// component of that path for a symlink to / before runc mounts it. So each
// source is opened once (O_PATH), the path of what was opened is checked
// again with the same rules (oci.CheckPinned), and exactly that is
// bind-mounted (from the descriptor) onto a private staging point, which
// runc is handed instead of the path (Mount.Handle). runc cannot mount the
// descriptor itself: it works in a mount namespace of its own, and a bind
// from a mount of another namespace is refused (EINVAL). The staging
// directory is named after this process (pid and start time), so gc can
// tell the leftovers of a killed run (collectStaged). The caller releases
// the staged mounts once the task exists.
func pinMounts(sb *oci.Sandbox, stateDir string) (*pinned, error) {
	keep, err := newKeepID(sb)
	if err != nil {
		return nil, err
	}
	return pinWith(sb, stateDir, keep)
}

// pinWith is pinMounts with keep-id's state given: `sbxrun start` maps to
// the owner recorded when the sandbox was created.
func pinWith(sb *oci.Sandbox, stateDir string, keep *keepID) (_ *pinned, retErr error) {
	p := &pinned{keep: keep}
	defer func() {
		if retErr != nil {
			p.release()
		}
	}()
	for i := range sb.Mounts {
		m := &sb.Mounts[i]
		if m.Type != "" && m.Type != "bind" {
			continue
		}
		if p.dir == "" {
			root := stageRoot(stateDir)
			if err := os.MkdirAll(root, 0o700); err != nil {
				return nil, fmt.Errorf("creating %q: %w: check that the state directory is writable", root, err)
			}
			pid := os.Getpid()
			dir := filepath.Join(root, strconv.Itoa(pid)+"-"+procStart(pid)+"-"+randHex(3))
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, fmt.Errorf("creating %q: %w: check that the state directory is writable", dir, err)
			}
			p.dir = dir
		}
		target, err := stage(*m, sb, filepath.Join(p.dir, strconv.Itoa(i)), p.keep)
		if target != "" {
			p.mounts = append(p.mounts, target)
		}
		if err != nil {
			return nil, err
		}
		m.Handle = target
	}
	return p, nil
}

// stage opens m's source, checks what it opened, and bind-mounts it at
// target (made a private mount, so nothing propagates to or from it). It
// returns target once something was created there.
func stage(m oci.Mount, sb *oci.Sandbox, target string, keep *keepID) (string, error) {
	fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", badConfigf("bind mount source %q: %w: create it or fix the path", m.Source, err)
	}
	defer unix.Close(fd)
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	resolved, err := os.Readlink(self)
	if err != nil {
		return "", fmt.Errorf("resolving bind mount source %q: %w", m.Source, err)
	}
	if err := oci.CheckPinned(m, resolved, sb.AllowUnsafeMounts, sb.ProtectedPaths); err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("bind mount source %q: %w", m.Source, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(target, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("staging bind mount source %q: %w", m.Source, err)
	}
	if taken, err := keep.take(fd, &st, m.Source, resolved, target); taken || err != nil {
		return target, err // mounted by keepOwned once the spec is built
	}
	if err := unix.Mount(self, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return target, fmt.Errorf("staging bind mount source %q: %w", m.Source, err)
	}
	if err := unix.Mount("", target, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return target, fmt.Errorf("staging bind mount source %q: %w", m.Source, err)
	}
	return target, nil
}

// collectStaged removes the staged bind sources of runs that were killed
// before they could (their process is gone, or is another one now).
func collectStaged(stateDir string) (int, error) {
	root := stageRoot(stateDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) == 3 {
			if pid, err := strconv.Atoi(parts[0]); err == nil && pid > 0 && procStart(pid) == parts[1] && parts[1] != "" {
				continue // its run is alive
			}
		}
		dir := filepath.Join(root, e.Name())
		staged, _ := os.ReadDir(dir)
		var mounts []string
		for _, s := range staged {
			mounts = append(mounts, filepath.Join(dir, s.Name()))
		}
		unstage(dir, mounts)
		n++
	}
	return n, nil
}

// captureUser is the spec option that records the workload's user for
// keep-id (a no-op without it); it goes last.
func (p *pinned) captureUser() ctrdoci.SpecOpts { return p.keep.captureUser() }

// keepOwned stages the sources keep-id holds, idmapped to the workload's
// user, once the container (and so its spec) exists. warn is a line to
// show when a filesystem cannot be idmapped.
func (p *pinned) keepOwned() (warn string, err error) { return p.keep.mount() }
