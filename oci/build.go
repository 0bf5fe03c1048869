package oci

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	ctrdapparmor "github.com/containerd/containerd/v2/contrib/apparmor"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	// DefaultPath is the PATH a sandbox gets when neither the image nor the
	// sandbox sets one (Docker's and containerd's default).
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// DefaultAppArmorProfile is the name under which sbxrun loads
	// containerd's default AppArmor profile on hosts that have AppArmor.
	DefaultAppArmorProfile = "sbxrun-default"
	// cfsPeriod is the CFS period in microseconds; CPUs become a quota of it.
	cfsPeriod = 100000
)

// Build validates s and turns it, with the image's config, into the options
// for containerd.WithNewSpec, which starts from containerd's default spec
// (its 14 capabilities, masked and read-only paths, default mounts and
// devices, cgroupsPath /<namespace>/<id>).
//
// The options run in this order; each step may rely on the ones before it:
//
//  1. image config merged under the sandbox: args, env, workdir, user
//  2. process: args, env, cwd, terminal, user, then HOME for root
//  3. hostname, oom_score_adj
//  4. namespaces: the host's network for "host"; "none" keeps the new one;
//     a CNI network joins NetNSPath;
//     a private cgroup namespace when asked
//  5. mounts: /sys/fs/cgroup read-only (unless NoCgroups), binds and tmpfs
//     (replacing a default mount at the same destination), /etc/hosts and
//     /etc/resolv.conf, the /dev/shm size
//  6. read-only root filesystem
//  7. resources: memory and swap, CPU quota, pids limit
//  8. capabilities: add and drop, Docker's rules
//  9. privileged: all capabilities and devices, no masked paths, unconfined
//  10. no-new-privileges
//  11. AppArmor
//  12. seccomp, after the capabilities are final: the default profile
//     allows syscalls by capability
//  13. NoCgroups: no linux.resources and no cgroupsPath
//  14. annotations
//  15. CDI devices, last: after everything that sets env, mounts or hooks
//     (see withCDI)
//
// A user given by name (or an image USER that is one) is resolved from the
// image's /etc/passwd when the spec is generated, so containerd.WithNewSnapshot
// must come before containerd.WithNewSpec; numeric ids need no client.
// Build reads nothing from the host beyond Validate, whether the host has
// AppArmor, and the CDI specs when devices are asked for and s.CDI is nil.
func Build(s *Sandbox, img ocispec.ImageConfig) ([]oci.SpecOpts, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	p, err := merge(s, img)
	if err != nil {
		return nil, err
	}

	opts := []oci.SpecOpts{
		withProcess(p, s.Terminal),
		withUser(p.user),
		withDefaultHome,
	}
	if p.hostname != "" {
		opts = append(opts, oci.WithHostname(p.hostname))
	}
	if s.OOMScoreAdj != nil {
		opts = append(opts, withOOMScoreAdj(*s.OOMScoreAdj))
	}
	if s.Network == "" || s.Network == "host" {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	} else if s.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNSPath}))
	}
	if s.CgroupNamespace {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}))
	}
	opts = append(opts, withMounts(s))
	if s.BindSys {
		opts = append(opts, withBoundSys)
	}
	if s.ShmSize > 0 {
		opts = append(opts, withShmSize(s.ShmSize))
	}
	if s.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	opts = append(opts, resources(s)...)
	capDrop := s.CapDrop
	if s.Network != "none" && !s.Privileged && !addsCap(s.CapAdd, "CAP_NET_RAW") {
		// On the host's network a raw socket sees (and forges) the
		// host's traffic, loopback included; on a bridge it forges other
		// sandboxes' addresses (ping needs none: ping_group_range is
		// set): NET_RAW only when asked for.
		capDrop = append(slices.Clone(capDrop), "CAP_NET_RAW")
	}
	if len(s.CapAdd)+len(capDrop) > 0 {
		opts = append(opts, withCapabilities(s.CapAdd, capDrop))
	}
	if s.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed)
	}
	if s.NoNewPrivileges {
		opts = append(opts, oci.WithNoNewPrivileges)
	} else {
		opts = append(opts, oci.WithNewPrivileges)
	}
	if o := appArmor(s); o != nil {
		opts = append(opts, o)
	}
	switch {
	case s.Privileged || s.Seccomp == "unconfined":
		opts = append(opts, oci.WithSeccompUnconfined)
	case s.Seccomp != "":
		opts = append(opts, seccomp.WithProfile(s.Seccomp))
	default:
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	if s.NoCgroups {
		opts = append(opts, withoutCgroups)
	}
	if len(s.Annotations) > 0 {
		opts = append(opts, oci.WithAnnotations(s.Annotations))
	}
	if s.Userns != "" {
		// What --userns chose, for `sbxrun spec` and inspect; the runtime
		// adds the owner it keeps (keep-id UID:GID) when it runs.
		opts = append(opts, oci.WithAnnotations(map[string]string{AnnotationUserns: s.Userns}))
	}
	if len(s.CDIDevices) > 0 {
		reg := s.CDI
		if reg == nil {
			dirs := s.CDISpecDirs
			if len(dirs) == 0 {
				dirs = DefaultCDISpecDirs
			}
			if reg, err = LoadCDI(dirs, nil); err != nil {
				return nil, err
			}
		}
		if err := reg.Resolve(s.CDIDevices); err != nil {
			return nil, err
		}
		opts = append(opts, withCDI(reg, s.CDIDevices, s.NoCgroups))
	}
	return opts, nil
}

// process is the workload as Docker would run it: the image's config with
// the sandbox's values on top.
type process struct {
	args     []string
	env      []string
	cwd      string
	user     string
	hostname string
}

// merge applies Docker's rules: args are entrypoint + cmd, where an
// explicit entrypoint drops the image's cmd and non-empty Args replace it;
// env is PATH, HOSTNAME (and TERM with a terminal), then the image's, then
// the sandbox's, a later key replacing an earlier one in place.
func merge(s *Sandbox, img ocispec.ImageConfig) (process, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if s.EntrypointSet {
		entrypoint, cmd = s.Entrypoint, nil
	}
	if len(s.Args) > 0 {
		cmd = s.Args
	}
	p := process{args: append(slices.Clone(entrypoint), cmd...)}
	if len(p.args) == 0 {
		return process{}, invalidf("no command: the image has no entrypoint or cmd; give one after --")
	}

	p.hostname = s.Hostname
	if p.hostname == "" {
		p.hostname = s.ID
	}
	base := []string{"PATH=" + DefaultPath}
	if p.hostname != "" {
		base = append(base, "HOSTNAME="+p.hostname)
	}
	if s.Terminal {
		base = append(base, "TERM=xterm")
	}
	p.env = mergeEnv(base, img.Env, s.Env)

	p.cwd = "/"
	switch {
	case s.Workdir != "":
		p.cwd = filepath.Clean(s.Workdir)
	case img.WorkingDir != "":
		if !filepath.IsAbs(img.WorkingDir) {
			return process{}, invalidf("the image's working directory %q is not absolute: set a workdir", img.WorkingDir)
		}
		p.cwd = filepath.Clean(img.WorkingDir)
	}

	p.user = s.User
	if p.user == "" {
		p.user = img.User
	}
	return p, nil
}

// mergeEnv folds KEY=VALUE lists; a later key replaces the earlier value at
// its first position. Entries without "=" are dropped.
func mergeEnv(lists ...[]string) []string {
	var env []string
	index := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				continue
			}
			if i, seen := index[k]; seen {
				env[i] = kv
				continue
			}
			index[k] = len(env)
			env = append(env, kv)
		}
	}
	return env
}

// withProcess sets args, env, cwd and the terminal.
func withProcess(p process, terminal bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Args = slices.Clone(p.args)
		s.Process.Env = slices.Clone(p.env)
		s.Process.Cwd = p.cwd
		s.Process.Terminal = terminal
		return nil
	}
}

// withUser sets uid, gid and supplementary groups. Numeric uid:gid needs
// nothing else; a lone uid takes its gid from the image's /etc/passwd (0 when
// absent), and a name is looked up there, both through containerd, which needs
// the container's snapshot. Without one, a lone uid gets gid 0 and a name is
// an error. "" is root.
func withUser(user string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if user == "" {
			user = "0"
		}
		uidStr, gidStr, hasGID := strings.Cut(user, ":")
		uid, uidErr := strconv.ParseUint(uidStr, 10, 32)
		gid, gidErr := strconv.ParseUint(gidStr, 10, 32)
		rootfs := canReadRootfs(client, c, s)

		var opts []oci.SpecOpts
		switch {
		case uidErr == nil && uid > math.MaxInt32, hasGID && gidErr == nil && gid > math.MaxInt32:
			return invalidf("invalid user %q: ids are numbers from 0 to %d", user, math.MaxInt32)
		case uidErr == nil && hasGID && gidErr == nil:
			opts = append(opts, oci.WithUIDGID(uint32(uid), uint32(gid)))
		case uidErr == nil && !hasGID && !rootfs:
			opts = append(opts, oci.WithUIDGID(uint32(uid), 0))
		case uidErr == nil && !hasGID:
			opts = append(opts, oci.WithUserID(uint32(uid)))
		case !rootfs:
			return invalidf("user %q is a name: it can only be resolved from the image's /etc/passwd when the container is created: use a numeric uid[:gid]", user)
		default:
			opts = append(opts, oci.WithUser(user))
		}
		// The user's supplementary groups come with a user alone; an
		// explicit group is the only group, as Docker and runc give it
		// (`-u 0:0` is not also in root's other groups).
		if rootfs && !hasGID {
			opts = append(opts, oci.WithAdditionalGIDs(uidStr))
		}
		if err := oci.ApplyOpts(ctx, client, c, s, opts...); err != nil {
			return fmt.Errorf("setting user %q: %w", user, err)
		}
		if hasGID {
			s.Process.User.AdditionalGids = []uint32{s.Process.User.GID}
		}
		return nil
	}
}

// withOOMScoreAdj sets the process's oom_score_adj, which runc writes
// before it starts the workload.
func withOOMScoreAdj(score int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.OOMScoreAdj = &score
		return nil
	}
}

// canReadRootfs reports whether containerd's user options can read the
// image's /etc/passwd: from the container's snapshot, or from an absolute
// root path.
func canReadRootfs(client oci.Client, c *containers.Container, s *oci.Spec) bool {
	if c.Snapshotter != "" || c.SnapshotKey != "" {
		return client != nil && c.Snapshotter != "" && c.SnapshotKey != ""
	}
	return s.Root != nil && filepath.IsAbs(s.Root.Path)
}

// withDefaultHome sets HOME=/root for root when nothing set HOME, as Docker
// does; for other users runc sets HOME from the image's /etc/passwd.
func withDefaultHome(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Process == nil || s.Process.User.UID != 0 {
		return nil
	}
	for _, kv := range s.Process.Env {
		if strings.HasPrefix(kv, "HOME=") {
			return nil
		}
	}
	s.Process.Env = append(s.Process.Env, "HOME=/root")
	return nil
}

// withMounts adds the read-only cgroup filesystem, the sandbox's mounts and
// the hosts and resolv.conf binds.
// A default mount at the same destination is replaced; the sandbox's
// mounts are ordered parents first (Docker's order), so -v a:/w and
// -v b:/w/x work in any order.
func withMounts(sb *Sandbox) oci.SpecOpts {
	var mounts []specs.Mount
	for _, m := range sb.Mounts {
		mounts = append(mounts, specMount(m))
	}
	taken := map[string]bool{}
	for _, m := range mounts {
		taken[m.Destination] = true
	}
	for _, f := range []struct{ src, dst string }{{sb.HostsFile, "/etc/hosts"}, {sb.ResolvConf, "/etc/resolv.conf"}} {
		if f.src != "" && !taken[f.dst] {
			mounts = append(mounts, specMount(Mount{Type: "bind", Source: f.src, Destination: f.dst, ReadOnly: true}))
			taken[f.dst] = true
		}
	}
	sort.SliceStable(mounts, func(i, j int) bool { return depth(mounts[i].Destination) < depth(mounts[j].Destination) })
	if !sb.NoCgroups {
		// As Docker: the sandbox sees its own limits (JVMs, Go's GOMAXPROCS
		// and nproc-style tools read them); WithPrivileged makes it writable.
		mounts = append([]specs.Mount{{
			Destination: "/sys/fs/cgroup",
			Type:        "cgroup",
			Source:      "cgroup",
			Options:     []string{"ro", "nosuid", "noexec", "nodev"},
		}}, mounts...)
	}

	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		kept := s.Mounts[:0:0]
		for _, m := range s.Mounts {
			if !taken[filepath.Clean(m.Destination)] {
				kept = append(kept, m)
			}
		}
		s.Mounts = append(kept, mounts...)
		return nil
	}
}

// depth counts the components of a clean absolute path.
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// specMount converts a sandbox mount. Binds are recursive and rprivate
// unless Options name a propagation; tmpfs is nosuid, nodev, noexec as in
// Docker (an "exec" option lifts noexec).
func specMount(m Mount) specs.Mount {
	dst := filepath.Clean(m.Destination)
	if m.Type == "tmpfs" {
		opts := append([]string{"nosuid", "nodev", "noexec"}, m.Options...)
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		return specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, Options: opts}
	}
	opts := []string{"rbind"}
	if !slices.ContainsFunc(m.Options, func(o string) bool { return propagations[o] }) {
		opts = append(opts, "rprivate")
	}
	// A setuid binary or device node planted in a bind source by a root
	// sandbox must not work for the host's users: nosuid and nodev unless
	// the mount asks for suid or dev.
	if !slices.Contains(m.Options, "suid") {
		opts = append(opts, "nosuid")
	}
	if !slices.Contains(m.Options, "dev") {
		opts = append(opts, "nodev")
	}
	opts = append(opts, m.Options...)
	if m.ReadOnly {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "rw")
	}
	src := m.Source
	if m.Handle != "" {
		src = m.Handle
	}
	return specs.Mount{Type: "bind", Source: src, Destination: dst, Options: opts}
}

// withShmSize sets the size of the default /dev/shm in bytes. It does
// nothing when a sandbox mount replaced /dev/shm (Docker ignores
// --shm-size then too).
func withShmSize(bytes int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for i, m := range s.Mounts {
			if filepath.Clean(m.Destination) != "/dev/shm" || m.Type != "tmpfs" || m.Source != "shm" {
				continue
			}
			opts := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return strings.HasPrefix(o, "size=") })
			s.Mounts[i].Options = append(opts, "size="+strconv.FormatInt(bytes, 10))
		}
		return nil
	}
}

// resources returns the cgroup limits. MemorySwap follows Docker: unset is
// twice the memory, -1 is unlimited swap.
func resources(s *Sandbox) []oci.SpecOpts {
	var opts []oci.SpecOpts
	if s.Memory > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(s.Memory)))
		if !s.NoSwapLimit {
			swap := s.MemorySwap
			if swap == 0 {
				swap = 2 * s.Memory
			}
			opts = append(opts, oci.WithMemorySwap(swap))
		}
	}
	if s.CPUs > 0 {
		nano := int64(math.Round(s.CPUs * 1e9))
		opts = append(opts, oci.WithCPUCFS(nano*cfsPeriod/1e9, cfsPeriod))
	}
	if s.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(s.PidsLimit))
	}
	if s.CgroupsPath != "" {
		opts = append(opts, oci.WithCgroup(s.CgroupsPath))
	}
	return opts
}

// withCapabilities applies --cap-add and --cap-drop with Docker's rules:
// add ALL gives every known capability less the dropped ones; otherwise drop
// ALL keeps only the added ones; otherwise the current set less the dropped
// ones, plus the added ones.
func withCapabilities(add, drop []string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		adds, err := NormalizeCaps(add)
		if err != nil {
			return err
		}
		drops, err := NormalizeCaps(drop)
		if err != nil {
			return err
		}
		var base []string
		if s.Process != nil && s.Process.Capabilities != nil {
			base = s.Process.Capabilities.Bounding
		}
		var keep, extra []string
		switch {
		case slices.Contains(adds, "ALL"):
			keep = cap.Known()
		case slices.Contains(drops, "ALL"):
			extra = adds
		default:
			keep, extra = base, adds
		}
		var caps []string
		for _, c := range keep {
			if !slices.Contains(drops, c) && !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
		for _, c := range extra {
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
		return oci.WithCapabilities(caps)(ctx, client, c, s)
	}
}

// addsCap reports whether the list adds the capability c (in the spec's
// form), by name or as ALL.
func addsCap(add []string, c string) bool {
	for _, a := range add {
		if n, err := NormalizeCap(a); err == nil && (n == c || n == "ALL") {
			return true
		}
	}
	return false
}

// NormalizeCaps normalizes a capability list (see NormalizeCap).
func NormalizeCaps(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, c := range in {
		n, err := NormalizeCap(c)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// appArmor picks the profile: none when privileged; "unconfined" or a named
// profile as asked; otherwise containerd's default profile, loaded as
// DefaultAppArmorProfile, on hosts that have AppArmor.
func appArmor(s *Sandbox) oci.SpecOpts {
	switch {
	case s.Privileged:
		return nil // WithPrivileged cleared it.
	case s.AppArmor == "unconfined":
		if apparmor.HostSupports() {
			return ctrdapparmor.WithProfile("unconfined")
		}
		return nil
	case s.AppArmor != "":
		return ctrdapparmor.WithProfile(s.AppArmor)
	case apparmor.HostSupports():
		return ctrdapparmor.WithDefaultProfile(DefaultAppArmorProfile)
	}
	return nil
}

// withoutCgroups leaves linux.resources empty and cgroupsPath unset, for
// rootless cgroup v1 where any cgroup setting fails.
func withoutCgroups(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Linux != nil {
		s.Linux.Resources = nil
		s.Linux.CgroupsPath = ""
	}
	return nil
}

// withBoundSys replaces the sysfs mount at /sys with a read-only recursive
// bind of the host's /sys. A new sysfs can only be mounted by a user
// namespace that owns the network namespace, which a rootless sandbox on
// the host network does not (Docker and nerdctl do the same there).
func withBoundSys(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	for i, m := range s.Mounts {
		if m.Destination == "/sys" {
			s.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys",
				Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		}
	}
	return nil
}
