package oci

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unicode"

	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/containerd/v2/pkg/cap"
	units "github.com/docker/go-units"
)

// minMemory is Docker's smallest memory limit (6 MiB); below it the runtime
// itself cannot start.
const minMemory = 6 << 20

// unsafeSources are host paths that hand the sandbox control of the host:
// the container daemons' sockets and state. A bind source that is one of
// them, lies inside one, or contains one is refused unless AllowUnsafeMounts.
var unsafeSources = []string{
	"/run/containerd",
	"/var/run/containerd",
	"/var/lib/containerd",
	"/run/containerd/containerd.sock",
	"/run/docker.sock",
	"/var/run/docker.sock",
	"/run/docker",
	"/var/run/docker",
	"/var/lib/docker",
	// Host-side configuration whose hooks run as root: a sandbox that could
	// write a CDI spec or sbxrun's own files would run code on the host.
	"/etc/cdi",
	"/var/run/cdi",
	"/run/cdi",
	"/etc/sbxrun",
	"/var/lib/sbxrun",
}

// kernelSources are the host's kernel interfaces: their writable knobs
// (/proc/sys/kernel/core_pattern, /sys/...) and device nodes give the host
// away. A source that is one of them or lies inside one is refused unless
// AllowUnsafeMounts; parents are already caught as the host's root.
var kernelSources = []string{"/proc", "/sys", "/dev"}

// Validate checks the sandbox before anything is created and returns the
// first problem as one line that names the fix. Errors are
// errdefs.ErrInvalidArgument. It reads the host only to stat bind sources,
// the hosts and resolv.conf files and a seccomp profile, and to ask whether
// the host has AppArmor.
func (s *Sandbox) Validate() error {
	seen := make(map[string]bool, len(s.Mounts))
	for _, m := range s.Mounts {
		if err := m.validate(s.AllowUnsafeMounts, s.ProtectedPaths); err != nil {
			return err
		}
		dst := filepath.Clean(m.Destination)
		if seen[dst] {
			return invalidf("two mounts at %q: keep one", dst)
		}
		seen[dst] = true
	}
	for _, f := range []struct{ what, path string }{{"hosts file", s.HostsFile}, {"resolv.conf", s.ResolvConf}} {
		// On a CNI network the runtime writes both when it attaches the
		// sandbox, after validation.
		if f.path == "" || s.NetNSPath != "" {
			continue
		}
		if err := checkSource(f.what, f.path); err != nil {
			return err
		}
	}
	if s.Workdir != "" {
		if !filepath.IsAbs(s.Workdir) {
			return invalidf("workdir %q is not an absolute path: use a path such as /workspace", s.Workdir)
		}
		if w := filepath.Clean(s.Workdir); within(w, "/proc") {
			return invalidf("workdir %q is under /proc: choose a directory such as /workspace", s.Workdir)
		}
	}
	if s.User != "" {
		if err := validateUser(s.User); err != nil {
			return err
		}
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return invalidf("invalid environment variable %q: use KEY=VALUE", kv)
		}
	}
	if h := s.Hostname; h != "" {
		if len(h) > 64 || strings.IndexFunc(h, func(r rune) bool { return unicode.IsSpace(r) || r == '/' || r == 0 }) >= 0 {
			return invalidf("invalid hostname %q: use at most 64 characters without spaces or slashes", h)
		}
	}
	if v := s.OOMScoreAdj; v != nil && (*v < -1000 || *v > 1000) {
		return invalidf("invalid --oom-score-adj %d: use a number from -1000 to 1000", *v)
	}
	if err := s.validateResources(); err != nil {
		return err
	}
	switch s.Network {
	case "", "host", "none":
		if s.NetNSPath != "" {
			return invalidf("network %q takes no network namespace path: use a CNI network (bridge or a name) to join one", s.Network)
		}
	default:
		if !filepath.IsAbs(s.NetNSPath) {
			return invalidf("network %q needs the absolute path of its network namespace: the runtime sets it when it attaches the sandbox", s.Network)
		}
	}
	for _, c := range append(append([]string(nil), s.CapAdd...), s.CapDrop...) {
		if _, err := NormalizeCap(c); err != nil {
			return err
		}
	}
	switch s.Seccomp {
	case "", "unconfined":
	default:
		fi, err := os.Stat(s.Seccomp)
		if err != nil || fi.IsDir() {
			return invalidf("seccomp profile %q is not a readable file: give the path to a JSON profile, or seccomp=unconfined", s.Seccomp)
		}
	}
	switch s.AppArmor {
	case "", "unconfined":
	default:
		if !s.Privileged && !apparmor.HostSupports() {
			return invalidf("apparmor profile %q requested but this host has no AppArmor: drop the apparmor= security option", s.AppArmor)
		}
	}
	if err := validateCDIDevices(s.CDIDevices); err != nil {
		return err
	}
	return nil
}

// validate checks one mount: its type, destination and, for binds, source.
func (m Mount) validate(allowUnsafe bool, protected []string) error {
	dst := m.Destination
	if dst == "" {
		return invalidf("mount of %q has no destination: give an absolute path inside the sandbox", m.Source)
	}
	if !filepath.IsAbs(dst) {
		return invalidf("mount destination %q is not an absolute path: use a path such as /data", dst)
	}
	clean := filepath.Clean(dst)
	switch {
	case clean == "/" || clean == "/dev" || clean == "/proc" || clean == "/sys":
		return invalidf("mount destination %q would hide the sandbox's %s: choose another path", dst, clean)
	case within(clean, "/proc") || within(clean, "/sys"):
		return invalidf("mount destination %q is under /proc or /sys: choose another path", dst)
	}
	switch m.Type {
	case "", "bind":
		if err := checkSource("bind mount source", m.Source); err != nil {
			return err
		}
		if m.Within != "" {
			if err := checkWithin(m.Source, m.Within); err != nil {
				return err
			}
		}
		if !allowUnsafe {
			return checkSafe(m.Source, protected)
		}
	case "tmpfs":
		if m.Source != "" && m.Source != "tmpfs" {
			return invalidf("tmpfs mount at %q takes no source (got %q): drop the source", dst, m.Source)
		}
	default:
		return invalidf("mount at %q has unknown type %q: use bind or tmpfs", dst, m.Type)
	}
	return nil
}

// checkSource requires an absolute host path that exists.
func checkSource(what, p string) error {
	if p == "" {
		return invalidf("%s is empty: give an absolute host path", what)
	}
	if !filepath.IsAbs(p) {
		return invalidf("%s %q is not an absolute path: give an absolute host path", what, p)
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return invalidf("%s %q does not exist: create it or fix the path", what, p)
		}
		return invalidf("%s %q: %w", what, p, err)
	}
	return nil
}

// checkSafe refuses a bind source that resolves to the host root or that
// is, lies in, or contains a daemon socket or state directory.
func checkSafe(src string, extra []string) error {
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return invalidf("bind mount source %q: %w", src, err)
	}
	const override = "pass --allow-unsafe-mounts only if the sandbox may control the host"
	if resolved == "/" {
		return invalidf("refusing to bind-mount the host's root %q: mount a subdirectory, or %s", src, override)
	}
	for _, k := range kernelSources {
		if within(resolved, k) {
			return invalidf("refusing to bind-mount %q: it exposes the host's %s (kernel settings and devices): request devices with --device, or %s", src, k, override)
		}
	}
	for _, u := range append(unsafeSources[:len(unsafeSources):len(unsafeSources)], extra...) {
		for _, cand := range unsafeForms(u) {
			if within(resolved, cand) || within(cand, resolved) {
				return invalidf("refusing to bind-mount %q: it exposes %q (container daemon socket or state): mount something else, or %s", src, u, override)
			}
		}
	}
	return nil
}

// checkWithin requires the bind source src, resolved, to lie in dir,
// resolved.
func checkWithin(src, dir string) error {
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return invalidf("bind mount source %q: %w", src, err)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil || !within(resolved, root) {
		return invalidf("refusing to bind-mount %q: it resolves to %q, outside %q, and an untrusted project file asked for it: review the file, then run `sbxrun trust`", src, resolved, dir)
	}
	return nil
}

// CheckPinned checks a bind source once more as the descriptor the runtime
// opened for it resolves (resolved: the descriptor's path in
// /proc/self/fd), with the rules Validate applied to its path: the source
// cannot have been swapped in between, because this descriptor is what
// runc mounts (Mount.Handle).
func CheckPinned(m Mount, resolved string, allowUnsafe bool, protected []string) error {
	if m.Within != "" {
		if err := checkWithin(resolved, m.Within); err != nil {
			return invalidf("bind mount source %q changed while sbxrun checked it: %w", m.Source, err)
		}
	}
	if !allowUnsafe {
		if err := checkSafe(resolved, protected); err != nil {
			return invalidf("bind mount source %q changed while sbxrun checked it: %w", m.Source, err)
		}
	}
	return nil
}

// unsafeForms returns p and, when it exists behind a symlink, its resolved
// form, so a relocated /var/lib/containerd is still caught.
func unsafeForms(p string) []string {
	if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
		return []string{p, r}
	}
	return []string{p}
}

// within reports whether the clean absolute path p is dir or lies under it.
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// validateUser checks the uid[:gid] or name[:group] syntax.
func validateUser(u string) error {
	parts := strings.Split(u, ":")
	if len(parts) > 2 {
		return invalidf("invalid user %q: use uid[:gid] or name[:group]", u)
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, unicode.IsSpace) >= 0 {
			return invalidf("invalid user %q: use uid[:gid] or name[:group]", u)
		}
		if p[0] == '-' || p[0] == '+' {
			return invalidf("invalid user %q: ids are numbers from 0 to %d, names start with a letter", u, math.MaxInt32)
		}
		if p[0] >= '0' && p[0] <= '9' {
			n, err := strconv.ParseUint(p, 10, 64)
			if err != nil || n > math.MaxInt32 {
				return invalidf("invalid user %q: ids are numbers from 0 to %d", u, math.MaxInt32)
			}
		}
	}
	return nil
}

// validateResources checks the cgroup limits as Docker does.
func (s *Sandbox) validateResources() error {
	switch {
	case s.Memory < 0:
		return invalidf("invalid memory limit %d: use a size such as 512m", s.Memory)
	case s.Memory > 0 && s.Memory < minMemory:
		return invalidf("memory limit %s is below the minimum of 6MiB: use a size such as 512m", units.BytesSize(float64(s.Memory)))
	case s.MemorySwap < -1:
		return invalidf("invalid memory-swap %d: use a size, or -1 for unlimited swap", s.MemorySwap)
	case s.MemorySwap > 0 && s.Memory == 0:
		return invalidf("memory-swap is set without a memory limit: set memory too")
	case s.MemorySwap > 0 && s.MemorySwap < s.Memory:
		return invalidf("memory-swap %s is below the memory limit %s: memory-swap is memory plus swap, so set it to at least the memory limit, or -1 for unlimited swap",
			units.BytesSize(float64(s.MemorySwap)), units.BytesSize(float64(s.Memory)))
	case s.MemorySwap > 0 && s.NoSwapLimit:
		return invalidf("this host cannot limit swap (cgroup v1 without swap accounting), so --memory-swap would be ignored: boot the kernel with swapaccount=1, or drop --memory-swap")
	}
	if s.CPUs != 0 {
		n := runtime.NumCPU()
		if !(s.CPUs >= 0.01 && s.CPUs <= float64(n)) {
			return invalidf("invalid cpus %v: range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", s.CPUs, n, n)
		}
	}
	if s.PidsLimit < -1 {
		return invalidf("invalid pids-limit %d: use a positive number, or -1 for unlimited", s.PidsLimit)
	}
	if s.ShmSize < 0 {
		return invalidf("invalid shm-size %d: use a size such as 64m", s.ShmSize)
	}
	return nil
}

// NormalizeCap turns "sys_admin", " CAP_SYS_ADMIN" or "all" into the
// spec's form ("CAP_SYS_ADMIN", "ALL") and refuses unknown names. The
// runtime normalizes profile and flag values with it once, before any check
// looks at them, so a check and the grant always see the same name.
func NormalizeCap(c string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(c))
	if u == "ALL" {
		return u, nil
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	for _, k := range cap.Known() {
		if k == u {
			return u, nil
		}
	}
	return "", invalidf("unknown capability %q: use a name such as NET_ADMIN or SYS_PTRACE (see capabilities(7)), or ALL", c)
}
