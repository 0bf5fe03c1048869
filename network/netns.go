package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNetNS creates a network namespace and bind-mounts it at path, with
// its loopback up and unprivileged ping allowed (Docker's
// net.ipv4.ping_group_range), both set in-process: no plugin to execute.
// A stale namespace at path (a killed run of the same sandbox) is
// replaced. setup runs in the new namespace, after those.
func newNetNS(path string, setup ...func() error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating network namespace directory: %w", err)
	}
	_ = removeNetNS(path)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("creating network namespace %q: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread ends with the goroutine (it stays locked), so no
		// other goroutine ever runs in the new namespace.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
			if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mounting it: %w", err)
			}
			if err := loopbackUp(); err != nil {
				return fmt.Errorf("bringing lo up: %w", err)
			}
			// /proc/sys/net is the opening thread's namespace's.
			if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(pingGroupRange()), 0o644); err != nil {
				return fmt.Errorf("allowing ping: %w", err)
			}
			for _, f := range setup {
				if err := f(); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		_ = removeNetNS(path)
		return fmt.Errorf("creating network namespace %q: %w", path, err)
	}
	return nil
}

// pingGroupRange is every group: Docker's "0 2147483647" on the host, the
// groups the user namespace maps inside one (rootless), where the kernel
// refuses a range with unmapped groups.
func pingGroupRange() string {
	b, err := os.ReadFile("/proc/self/gid_map")
	if err != nil {
		return "0 2147483647"
	}
	var top uint64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(f[0], 10, 32)
		n, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if inside == 0 && n == 4294967295 {
			return "0 2147483647" // the initial namespace
		}
		top = max(top, inside+n-1)
	}
	return "0 " + strconv.FormatUint(min(top, 2147483647), 10)
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// removeNetNS unmounts and removes the namespace at path; a path that is
// not there is fine.
//
// A path that is no mount here is only unlinked: outside the mount
// namespace that mounted it (`sbxrun rootless stop` runs outside
// RootlessKit's), an unprivileged unmount would fail with EPERM.
func removeNetNS(path string) error {
	if !isNetNS(path) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing network namespace %q: %w", path, err)
		}
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting network namespace %q: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing network namespace %q: %w", path, err)
	}
	return nil
}

// deleteLink removes interface name, when there is one.
func deleteLink(name string) error { return deleteLinkIn(&netlink.Handle{}, name) }

// deleteLinkIn is deleteLink in h's namespace (the zero Handle is this
// thread's).
func deleteLinkIn(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return h.LinkDel(l)
}

// handleAt is a netlink handle in the network namespace at path; close
// releases it.
func handleAt(path string) (h *netlink.Handle, close func(), err error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, nil, err
	}
	defer ns.Close()
	if h, err = netlink.NewHandleAt(ns); err != nil {
		return nil, nil, err
	}
	return h, h.Close, nil
}

// isNetNS reports whether path is a mounted network namespace (nsfs).
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
