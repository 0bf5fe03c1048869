package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// runc resolves every mount destination inside the rootfs, following the
// image's symlinks. An image with /workspace -> /etc thus has runc mount
// the user's directory at /etc, and the /etc/hosts and /etc/resolv.conf
// binds that follow then create their mountpoints as files in the user's
// directory on the host. No spec option can stop runc 1.1 from following
// the link, so the run resolves the destinations the same way in the
// rootfs snapshot before creating anything, and refuses a spec where a
// symlink puts one mount inside a host bind mount it was not written in.

// withMountTargetsChecked is the last spec option of a run: it checks the
// final spec's mount destinations against the image's rootfs, whose
// snapshot mounts withSnapshot stored in rootfs.
func withMountTargetsChecked(image string, rootfs *[]mount.Mount) ctrdoci.SpecOpts {
	return func(_ context.Context, _ ctrdoci.Client, _ *containers.Container, s *ctrdoci.Spec) error {
		layers := snapshotLayers(*rootfs)
		if layers == nil {
			return nil // a snapshotter whose files cannot be read from here
		}
		return checkMountTargets(image, layerFS(layers), s.Mounts)
	}
}

// MountTargetError is a run refused because a symlink in the image moves
// a mount into a host directory bind-mounted elsewhere. It names its fix.
type MountTargetError struct {
	// Image is the image reference.
	Image string
	// Link is the mount target that resolves through a symlink, and To
	// where the image's links take it.
	Link, To string
	// Inside is the target of the host bind mount the link lands in.
	Inside string
}

func (e *MountTargetError) Error() string {
	return fmt.Sprintf("mount target %q is a symlink to %q in image %s, which puts it inside the host directory mounted at %q, where runc would create files: mount at a target that is no symlink in the image, or fix the image",
		e.Link, e.To, e.Image, e.Inside)
}

// checkMountTargets refuses mounts whose destinations, resolved through the
// image's symlinks as runc resolves them, nest differently than written: a
// mount that lands below a bind mount of a host path without being written
// below it, for which runc would create a mountpoint in the host directory.
// A plain link such as /var/run -> /run, or /lib -> usr/lib with a file
// mounted under both names, is followed as Docker does.
func checkMountTargets(image string, root securejoin.VFS, mounts []specs.Mount) error {
	type target struct{ written, resolved string }
	targets := make([]target, len(mounts))
	for i, m := range mounts {
		w := path.Clean("/" + m.Destination)
		r, err := securejoin.SecureJoinVFS("/", w, root)
		if err != nil {
			// A loop or an unreadable layer: runc fails on the loop itself,
			// and an unreadable layer is nothing to judge.
			r = w
		}
		targets[i] = target{w, r}
	}
	for a, ma := range mounts {
		if !isBind(ma) {
			continue
		}
		for b := range mounts {
			if b == a || !below(targets[b].resolved, targets[a].resolved) || within(targets[b].written, targets[a].written) {
				continue
			}
			link := targets[a]
			if link.written == link.resolved {
				link = targets[b]
			}
			return &MountTargetError{Image: image, Link: link.written, To: link.resolved, Inside: targets[a].written}
		}
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || below(p, dir)
}

// below reports whether p is strictly below dir: runc would create p's
// mountpoint in dir. Two mounts at one place only cover each other.
func below(p, dir string) bool {
	return p != dir && (dir == "/" || strings.HasPrefix(p, dir+"/"))
}

// isBind reports whether a spec mount binds a host path.
func isBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// snapshotLayers are the directories of a rootfs snapshot's mounts, top
// first: overlayfs's upperdir and lowerdirs, or the one directory of a
// bind. nil when the mounts are of another kind or not readable here (a
// daemon in another mount namespace).
func snapshotLayers(mounts []mount.Mount) []string {
	if len(mounts) != 1 {
		return nil
	}
	m := mounts[0]
	var layers []string
	switch {
	case m.Type == "bind" || m.Type == "rbind":
		layers = []string{m.Source}
	case m.Type == "overlay":
		var upper []string
		var lower []string
		for _, o := range m.Options {
			switch k, v, _ := strings.Cut(o, "="); k {
			case "upperdir":
				upper = []string{unescapeOverlay(v)}
			case "lowerdir":
				for _, d := range splitOverlay(v) {
					lower = append(lower, unescapeOverlay(d))
				}
			}
		}
		layers = append(upper, lower...)
	}
	if len(layers) == 0 {
		return nil
	}
	for _, l := range layers {
		if fi, err := os.Stat(l); err != nil || !fi.IsDir() {
			return nil
		}
	}
	return layers
}

// splitOverlay splits a lowerdir value at the colons overlayfs does not
// see escaped.
func splitOverlay(v string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case ':':
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	return append(parts, v[start:])
}

// unescapeOverlay undoes overlayfs's backslash escaping of a path.
func unescapeOverlay(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// layerFS is the merged view of overlayfs layers (top first), read
// without mounting them: a name is taken from the topmost layer that has
// it; a whiteout (a 0/0 character device) hides it in the layers below,
// an opaque directory hides the directories below it, and a file hides
// everything below it. It serves securejoin's Lstat and Readlink, with
// paths rooted at "/".
type layerFS []string

func (l layerFS) Lstat(name string) (os.FileInfo, error) {
	fi, _, err := l.lookup(name)
	return fi, err
}

func (l layerFS) Readlink(name string) (string, error) {
	_, layer, err := l.lookup(name)
	if err != nil {
		return "", err
	}
	return os.Readlink(filepath.Join(layer, filepath.Clean("/"+name)))
}

// lookup finds name in the merged view: its file info and the layer it
// comes from.
func (l layerFS) lookup(name string) (os.FileInfo, string, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+name), "/")
	notExist := &os.PathError{Op: "lstat", Path: name, Err: syscall.ENOENT}
	if rel == "" {
		fi, err := os.Lstat(l[0])
		return fi, l[0], err
	}
	visible := []string(l)
	parts := strings.Split(rel, "/")
	var (
		top     os.FileInfo
		topDir  string
		current string
	)
	for i, part := range parts {
		current = filepath.Join(current, part)
		top = nil
		var next []string
		for _, layer := range visible {
			fi, err := os.Lstat(filepath.Join(layer, current))
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			if err != nil {
				return nil, "", err
			}
			if isWhiteout(fi) {
				break
			}
			if top == nil {
				top, topDir = fi, layer
			}
			if !top.IsDir() || !fi.IsDir() {
				break
			}
			next = append(next, layer)
			if isOpaque(filepath.Join(layer, current)) {
				break
			}
		}
		if top == nil {
			return nil, "", notExist
		}
		if i < len(parts)-1 && !top.IsDir() {
			return nil, "", &os.PathError{Op: "lstat", Path: name, Err: syscall.ENOTDIR}
		}
		visible = next
	}
	return top, topDir, nil
}

// isWhiteout reports whether fi is overlayfs's whiteout, a character
// device 0/0.
func isWhiteout(fi os.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether dir is an opaque overlayfs directory (the
// trusted xattr, or the user one of a rootless snapshotter).
func isOpaque(dir string) bool {
	buf := make([]byte, 1)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(dir, attr, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
