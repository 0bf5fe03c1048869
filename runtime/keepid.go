package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// Your files stay yours (--userns keep-id, the default). In rootful mode
// the workload keeps the image's user (dev, uid 1000, with its name, HOME
// and tools), and each bind mount whose source the workspace's owner owns
// is staged as an idmapped mount: the owner's uid and gid on disk appear as
// the workload's inside, and what the workload writes there is the owner's
// on the host. Nothing is chowned or copied, the image's snapshot is not
// touched, and other bind mounts (system files, other users' directories)
// stay as they are. The workspace's owner is the invoking user under sudo
// (SUDO_UID, SUDO_GID), else the owner of the current directory, the one
// mounted at /workspace. Rootless sandboxes already write as the user.

// hostOwner is whose files keep-id keeps.
type hostOwner struct{ uid, gid uint32 }

// workspaceOwner is the invoking user under sudo, else the owner of the
// current directory.
func workspaceOwner() (hostOwner, error) {
	if os.Geteuid() == 0 {
		u, uerr := strconv.ParseUint(os.Getenv("SUDO_UID"), 10, 32)
		g, gerr := strconv.ParseUint(os.Getenv("SUDO_GID"), 10, 32)
		if uerr == nil && gerr == nil {
			return hostOwner{uint32(u), uint32(g)}, nil
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(".", &st); err != nil {
		return hostOwner{}, fmt.Errorf("finding the workspace's owner: %w", err)
	}
	return hostOwner{st.Uid, st.Gid}, nil
}

// keepID is a run's keep-id state: the owner, the sources it owns (opened
// and checked, their staging points created but not mounted yet), and the
// workload's user once the spec is built.
type keepID struct {
	owner hostOwner
	// within are the directories whose owned sources are mapped: the
	// workspace and the owner's home (caches, ~/.ssh). A directory
	// elsewhere that the owner happens to own (root owns most of the
	// host) keeps its plain bind.
	within   []string
	deferred []ownedMount
	user     *struct{ uid, gid uint32 }
}

type ownedMount struct {
	fd             int
	source, target string
}

// newKeepID is the keep-id state for sb, or nil when keep-id does not
// apply (--userns host, rootless).
func newKeepID(sb *oci.Sandbox) (*keepID, error) {
	if sb.Userns != oci.UsernsKeepID || rootless.Active() || os.Geteuid() != 0 {
		return nil, nil
	}
	owner, err := workspaceOwner()
	if err != nil {
		return nil, err
	}
	return ownerKeep(owner), nil
}

// ownerKeep is the keep-id state of owner, with its directories resolved.
func ownerKeep(owner hostOwner) *keepID {
	k := &keepID{owner: owner}
	for _, d := range ownerDirs(owner) {
		if r, err := filepath.EvalSymlinks(d); err == nil && r != "/" {
			k.within = append(k.within, r)
		}
	}
	return k
}

// ownerDirs are the workspace (the current directory) and the owner's
// home: $HOME, and under sudo the invoking user's home from the host's
// passwd.
func ownerDirs(owner hostOwner) []string {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if h := os.Getenv("HOME"); h != "" {
		dirs = append(dirs, h)
	}
	if os.Getenv("SUDO_UID") != "" {
		if u, err := user.LookupId(strconv.FormatUint(uint64(owner.uid), 10)); err == nil && u.HomeDir != "" {
			dirs = append(dirs, u.HomeDir)
		}
	}
	return dirs
}

// covers reports whether resolved lies in the workspace or the owner's home.
func (k *keepID) covers(resolved string) bool {
	for _, d := range k.within {
		if resolved == d || strings.HasPrefix(resolved, d+"/") {
			return true
		}
	}
	return false
}

// take keeps a checked source (fd, its stat) for an idmapped staging point
// at target when the owner owns it; the caller then leaves target empty.
func (k *keepID) take(fd int, st *unix.Stat_t, source, resolved, target string) (bool, error) {
	if k == nil || st.Uid != k.owner.uid || !k.covers(resolved) {
		return false, nil
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("staging bind mount source %q: %w", source, err)
	}
	k.deferred = append(k.deferred, ownedMount{fd: dup, source: source, target: target})
	return true, nil
}

// captureUser is the last spec option: it records the workload's uid and
// gid as the spec has them (image user, -u), which keep-id maps.
func (k *keepID) captureUser() ctrdoci.SpecOpts {
	return func(_ context.Context, _ ctrdoci.Client, _ *containers.Container, s *ctrdoci.Spec) error {
		if k == nil || s.Process == nil {
			return nil
		}
		k.user = &struct{ uid, gid uint32 }{s.Process.User.UID, s.Process.User.GID}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[oci.AnnotationUserns] = fmt.Sprintf("%s %d:%d", oci.UsernsKeepID, k.owner.uid, k.owner.gid)
		return nil
	}
}

// mount stages the owned sources, idmapped from the workload's uid and gid
// to the owner's. A filesystem without idmapped mounts gets a plain bind:
// warn is then the line to show (the files will be the workload's uid).
func (k *keepID) mount() (warn string, err error) {
	if k == nil || len(k.deferred) == 0 {
		return "", nil
	}
	defer k.close()
	if k.user == nil {
		return "", errors.New("keep-id: the workload's user is unknown (the spec was not built)")
	}
	identity := k.user.uid == k.owner.uid && k.user.gid == k.owner.gid
	var userns *os.File
	if !identity {
		// An idmapped mount reads the ids on disk as ids inside its user
		// namespace and shows them as the ids they map to outside: the
		// owner's (on disk) inside, the workload's outside.
		userns, err = mount.GetUsernsFD(fmt.Sprintf("%d:%d:1", k.owner.uid, k.user.uid), fmt.Sprintf("%d:%d:1", k.owner.gid, k.user.gid))
		if err != nil {
			return "", fmt.Errorf("keep-id: creating the user namespace for idmapped mounts: %w: pass --userns host to run without", err)
		}
		defer userns.Close()
	}
	for _, m := range k.deferred {
		self := "/proc/self/fd/" + strconv.Itoa(m.fd)
		if userns != nil {
			err := mount.IDMapMountWithAttrs(self, m.target, int(userns.Fd()), 0, 0)
			if err == nil {
				continue
			}
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
				return "", fmt.Errorf("keep-id: staging %q: %w", m.source, err)
			}
			warn = fmt.Sprintf("files the sandbox writes to %s belong to uid %d on the host: its filesystem has no idmapped mounts (%v); --userns host says you expect that", m.source, k.user.uid, err)
		}
		if err := unix.Mount(self, m.target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("staging bind mount source %q: %w", m.source, err)
		}
		if err := unix.Mount("", m.target, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("staging bind mount source %q: %w", m.source, err)
		}
	}
	return warn, nil
}

// close closes the sources still held.
func (k *keepID) close() {
	if k == nil {
		return
	}
	for _, m := range k.deferred {
		_ = unix.Close(m.fd)
	}
	k.deferred = nil
}

// giveCreated hands the cache directories sbxrun just created (missing
// before) to the workspace's owner, under keep-id in rootful mode when that
// owner is not root (sudo): they are the owner's caches, and keep-id maps
// only what the owner owns. Only each directory itself changes owner, never
// what lies in it or above it.
func giveCreated(sb *oci.Sandbox, missing []string) {
	if len(missing) == 0 || sb.Userns != oci.UsernsKeepID || rootless.Active() || os.Geteuid() != 0 {
		return
	}
	owner, err := workspaceOwner()
	if err != nil || owner.uid == 0 {
		return
	}
	k := ownerKeep(owner)
	for _, dir := range missing {
		if r, err := filepath.EvalSymlinks(dir); err == nil && k.covers(r) {
			_ = unix.Lchown(r, int(owner.uid), int(owner.gid))
		}
	}
}
