package profiles

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sbxrun/sbxrun/oci"
)

// Profile is one layer of sandbox configuration, as written in sbxrun.yaml
// under "profiles: NAME:" or built from command-line flags. Every field is
// optional; a nil pointer or nil slice means "not set in this layer".
//
// Layers are merged in order (built-in < /etc/sbxrun/sbxrun.yaml <
// ~/.config/sbxrun/sbxrun.yaml < ./sbxrun.yaml < --config < flags):
//   - scalars (Image, Pull, Workdir, User, Hostname, Memory, MemorySwap, CPUs,
//     PidsLimit, ShmSize, Network, ReadOnly, Privileged, GPUs, GPU,
//     StopSignal, StopTimeout, Description, Extends) are replaced by a later
//     layer that sets them;
//   - Entrypoint and Command are replaced as a whole (an empty, non-nil list
//     clears them);
//   - Env and Labels are merged by key, the later value winning;
//   - Mounts are merged by target (the target as written, cleaned), a later
//     mount of the same target replacing the earlier one in place;
//   - CapAdd, CapDrop, SecurityOpt, Devices, AddHosts, DNS, DNSSearch and
//     DNSOptions are appended.
//
// A profile defined in several files is first merged file by file; then
// Extends is resolved, the parent (itself fully resolved) being the layer
// under the child, so a later file's change to the parent is seen by every
// child. Flags are the last layer.
type Profile struct {
	// Extends names the profile this one is layered on.
	Extends string `yaml:"extends,omitempty"`
	// Description is shown by "sbxrun profiles".
	Description string `yaml:"description,omitempty"`
	// Image is the image reference the profile runs.
	Image *string `yaml:"image,omitempty"`
	// Pull is the pull policy: missing, always or never.
	Pull *string `yaml:"pull,omitempty"`
	// Entrypoint replaces the image's entrypoint.
	Entrypoint []string `yaml:"entrypoint,omitempty"`
	// Command is the default command when none follows "--".
	Command []string `yaml:"command,omitempty"`
	// Workdir is the working directory inside the sandbox.
	Workdir *string `yaml:"workdir,omitempty"`
	// User is uid[:gid] or name[:group].
	User *string `yaml:"user,omitempty"`
	// Hostname of the sandbox.
	Hostname *string `yaml:"hostname,omitempty"`
	// Env is KEY: VALUE.
	Env map[string]string `yaml:"env,omitempty"`
	// Mounts in "-v" syntax or as maps (see MountSpec).
	Mounts []MountSpec `yaml:"mounts,omitempty"`
	// Memory limit in Docker units (512m, 8g).
	Memory *string `yaml:"memory,omitempty"`
	// MemorySwap in Docker units, or -1 for unlimited.
	MemorySwap *string `yaml:"memory_swap,omitempty"`
	// CPUs is a CPU quota such as 1.5.
	CPUs *float64 `yaml:"cpus,omitempty"`
	// PidsLimit caps the number of processes.
	PidsLimit *int64 `yaml:"pids_limit,omitempty"`
	// ShmSize is the size of /dev/shm in Docker units.
	ShmSize *string `yaml:"shm_size,omitempty"`
	// Network is host, none, bridge (the default CNI network) or the
	// name of a network (`sbxrun network create`).
	Network *string `yaml:"network,omitempty"`
	// AddHosts are HOST:IP lines for the sandbox's /etc/hosts (--add-host;
	// IP may be host-gateway, the network's gateway).
	AddHosts []string `yaml:"add_hosts,omitempty"`
	// DNS, DNSSearch and DNSOptions replace the host's nameservers, search
	// domains and options in the sandbox's /etc/resolv.conf (--dns,
	// --dns-search, --dns-option).
	DNS        []string `yaml:"dns,omitempty"`
	DNSSearch  []string `yaml:"dns_search,omitempty"`
	DNSOptions []string `yaml:"dns_options,omitempty"`
	// ReadOnly makes the root filesystem read-only.
	ReadOnly *bool `yaml:"read_only,omitempty"`
	// CapAdd and CapDrop adjust capabilities.
	CapAdd  []string `yaml:"cap_add,omitempty"`
	CapDrop []string `yaml:"cap_drop,omitempty"`
	// SecurityOpt as in docker --security-opt.
	SecurityOpt []string `yaml:"security_opt,omitempty"`
	// Privileged must be explicit.
	Privileged *bool `yaml:"privileged,omitempty"`
	// GPUs asks for NVIDIA GPUs in Docker's --gpus syntax: all, a count,
	// indices (0,2), device=UUID, or none (no GPU, e.g. to turn off
	// model-dev's).
	GPUs *string `yaml:"gpus,omitempty"`
	// GPU is "required" (the default) or "optional": an optional request
	// that cannot be met runs without GPUs after one warning line. GPUs
	// asked for on the command line are always required.
	GPU *string `yaml:"gpu,omitempty"`
	// Devices are CDI devices of any vendor (VENDOR/CLASS=NAME, such as
	// nvidia.com/gpu=0), always required.
	Devices []string `yaml:"devices,omitempty"`
	// Labels are added to the container.
	Labels map[string]string `yaml:"labels,omitempty"`
	// StopSignal is sent by "sbxrun stop" (default SIGTERM).
	StopSignal *string `yaml:"stop_signal,omitempty"`
	// BestEffortLimits lets a rootless sandbox run without the memory, CPU
	// and pids limits this host cannot enforce (with a warning) instead of
	// refusing to run.
	BestEffortLimits *bool `yaml:"best_effort_limits,omitempty"`
	// StopTimeout is seconds before SIGKILL on stop (default 10).
	StopTimeout *int `yaml:"stop_timeout,omitempty"`
	// Userns is whose files the sandbox's writes are in rootful mode:
	// "keep-id" (the default: what the workload writes to a bind mount the
	// workspace's owner owns belongs to that owner on the host, through an
	// idmapped mount) or "host" (the image's user as is).
	Userns *string `yaml:"userns,omitempty"`
}

// MountSpec is a mount as written in a profile: either the "-v" string form
// "SRC:DST[:OPTS]" (see ParseMountSpec) or a map {type, source, target,
// readonly, create, optional, options}.
// "~" in source is the invoking user's home; "." and relative sources are the
// current directory. "~" in target is the sandbox user's home.
type MountSpec struct {
	// Type is "bind" (the default when empty) or "tmpfs".
	Type string `yaml:"type,omitempty"`
	// Source is the host path of a bind mount; a tmpfs has none.
	Source string `yaml:"source,omitempty"`
	// Target is the path inside the sandbox: absolute, or "~"-relative.
	Target string `yaml:"target"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `yaml:"readonly,omitempty"`
	// Create makes a missing source directory (caches) instead of failing.
	Create bool `yaml:"create,omitempty"`
	// Optional skips the mount when the source is missing (~/.ssh).
	Optional bool `yaml:"optional,omitempty"`
	// Options are extra mount options: a propagation mode (rprivate,
	// rshared, ...), suid or dev (binds are nosuid,nodev otherwise) for a
	// bind; size=SIZE, mode=OCTAL, noexec, nosuid or
	// nodev for a tmpfs.
	Options []string `yaml:"options,omitempty"`
}

// UnmarshalYAML implements yaml/v3's Unmarshaler: a string is the "-v"
// form (ParseMountSpec), a mapping the long form, with unknown keys refused
// (a node's Decode would not check them).
func (m *MountSpec) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind == yaml.ScalarNode {
		parsed, err := ParseMountSpec(value.Value)
		if err != nil {
			return err
		}
		*m = parsed
		return nil
	}
	if value.Kind == yaml.MappingNode {
		for _, e := range entries(value) {
			if _, ok := mountKeys[e.key]; !ok {
				return fmt.Errorf("line %d: unknown mount key %q%s", e.k.Line, e.key, suggest(e.key, mountKeys))
			}
		}
	}
	type plain MountSpec // no UnmarshalYAML: decodes as a struct
	var p plain
	if err := value.Decode(&p); err != nil {
		return err
	}
	*m = MountSpec(p)
	return nil
}

// HomeMarker stands in for a "~" target while oci.ParseVolume, which wants an
// absolute destination, parses the "-v" form.
const HomeMarker = "/__sbxrun_home__"

// ParseMountSpec parses the "-v" form SRC:DST[:OPTS] (oci.ParseVolume) into
// a bind MountSpec. Unlike docker, DST may be "~"-relative: the sandbox
// user's home. SRC is kept as written; Resolved.Sandbox expands it.
func ParseMountSpec(s string) (MountSpec, error) {
	spec := s
	parts := strings.Split(s, ":")
	if len(parts) >= 2 && isTilde(parts[1]) {
		parts[1] = HomeMarker + strings.TrimPrefix(parts[1], "~")
		spec = strings.Join(parts, ":")
	}
	m, err := oci.ParseVolume(spec)
	if err != nil {
		if spec != s {
			return MountSpec{}, markerError{err}
		}
		return MountSpec{}, err
	}
	ms := MountSpec{Source: m.Source, Target: m.Destination, ReadOnly: m.ReadOnly, Options: m.Options}
	if spec != s {
		ms.Target = "~" + strings.TrimPrefix(m.Destination, HomeMarker)
	}
	return ms, nil
}

// markerError shows an oci.ParseVolume error with HomeMarker put back to
// "~", keeping the error it wraps for errors.Is.
type markerError struct{ err error }

func (e markerError) Error() string { return strings.ReplaceAll(e.err.Error(), HomeMarker, "~") }

func (e markerError) Unwrap() error { return e.err }

// isTilde reports whether p is "~" or starts with "~/".
func isTilde(p string) bool { return p == "~" || strings.HasPrefix(p, "~/") }

// mountKey is the key mounts are merged by: the target as written, cleaned.
func (m MountSpec) mountKey() string { return path.Clean(m.Target) }

// validate checks a mount as far as it can be checked without the host.
func (m MountSpec) validate() error {
	switch m.Type {
	case "", "bind":
		if m.Source == "" {
			return fmt.Errorf("mount %q has no source: add source: HOST_PATH", m.Target)
		}
		if strings.HasPrefix(m.Source, "~") && !isTilde(m.Source) {
			return fmt.Errorf("mount source %q: ~user paths are not supported: use ~/PATH or an absolute path", m.Source)
		}
	case "tmpfs":
		if m.Source != "" {
			return fmt.Errorf("tmpfs mount %q takes no source: drop source", m.Target)
		}
		if m.Create || m.Optional {
			return fmt.Errorf("tmpfs mount %q: create and optional are for bind mounts: drop them", m.Target)
		}
	default:
		return fmt.Errorf("mount %q: unknown type %q: use bind or tmpfs", m.Target, m.Type)
	}
	if m.Target == "" {
		return fmt.Errorf("mount of %q has no target: add target: PATH", m.Source)
	}
	if !path.IsAbs(m.Target) && !isTilde(m.Target) {
		return fmt.Errorf("mount target %q is not an absolute path: use a path such as /data or ~/data", m.Target)
	}
	for _, o := range m.Options {
		if err := validMountOption(m.Type, o); err != nil {
			return fmt.Errorf("mount %q: %w", m.Target, err)
		}
	}
	return nil
}

// validMountOption accepts the options MountSpec.Options documents.
func validMountOption(typ, o string) error {
	if typ == "tmpfs" {
		switch k, v, _ := strings.Cut(o, "="); k {
		case "noexec", "nosuid", "nodev", "exec", "suid", "dev":
			if v == "" && !strings.Contains(o, "=") {
				return nil
			}
		case "size":
			if _, err := oci.ParseSize(v); err == nil {
				return nil
			}
		case "mode":
			if n, err := strconv.ParseUint(v, 8, 32); err == nil && n <= 0o7777 {
				return nil
			}
		}
		return fmt.Errorf("unknown tmpfs option %q: use size=SIZE, mode=OCTAL, noexec, nosuid or nodev", o)
	}
	switch o {
	case "private", "rprivate", "shared", "rshared", "slave", "rslave", "suid", "dev":
		return nil
	}
	return fmt.Errorf("unknown bind option %q: use a propagation mode such as rprivate, suid or dev (binds are nosuid,nodev by default), or readonly: true", o)
}
