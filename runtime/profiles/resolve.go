package profiles

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"

	"go.yaml.in/yaml/v3"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
)

// Resolved is one profile (or plain image) with every layer merged.
type Resolved struct {
	// Name is the profile's name, "" for a plain image.
	Name string
	// Profile is the merged profile: extends flattened, Extends cleared,
	// Description the profile's own.
	Profile Profile
	// Sources says where each value came from. The key is the yaml key
	// ("memory", "env.PYTHONPATH", "mounts./workspace" with the target as
	// written, cleaned), the value "built-in", "FILE:LINE", "flag" or, for
	// the image of a plain image run, "argument". Appended lists (cap_add,
	// cap_drop, security_opt, devices) name every layer that added to them,
	// joined by ", ".
	Sources map[string]string
	// Chain is Name followed by the profiles it extends, nearest first; nil
	// for a plain image.
	Chain []string

	// untrusted are the layers of the chain's profiles that an untrusted
	// project file wrote, and projectDirs those files' directories
	// (CheckTrust, and the confinement of their mounts).
	untrusted   []untrustedLayer
	projectDirs map[string]string
}

// HostEnv is what expansion needs from the host.
type HostEnv struct {
	// Home is the invoking user's home: "~" in mount sources.
	Home string
	// Cwd is the current directory: "." and relative mount sources.
	Cwd string
}

// Resolve merges the profile name over the defaults, with the profiles it
// extends beneath it and flags (which may be nil) as the last layer.
func (p *Set) Resolve(name string, flags *Profile) (*Resolved, error) {
	chain, err := p.chain(name)
	if err != nil {
		return nil, err
	}
	r := newResolved(name)
	r.Chain = chain
	r.projectDirs = p.projectDirs
	for i := len(chain) - 1; i >= 0; i-- {
		r.untrusted = append(r.untrusted, p.untrusted[chain[i]]...)
		d := p.defs[chain[i]]
		mergeProfile(&r.Profile, r.Sources, &d.profile, func(key string) string { return d.sources[key] })
	}
	own := p.defs[name]
	r.Profile.Extends = ""
	delete(r.Sources, "extends")
	r.Profile.Description = own.profile.Description
	delete(r.Sources, "description")
	if own.profile.Description != "" {
		r.Sources["description"] = own.sources["description"]
	}
	if err := r.applyFlags(flags); err != nil {
		return nil, err
	}
	return r, nil
}

// ResolveImage resolves a name that is not a profile: the image ref with
// sbxrun's defaults and flags, and none of a profile's mounts or env.
func (p *Set) ResolveImage(ref string, flags *Profile) (*Resolved, error) {
	if strings.TrimSpace(ref) == "" || strings.ContainsAny(ref, " \t\n") {
		return nil, badConfigf("invalid image reference %q: name a profile (\"sbxrun profiles\") or an image such as docker.io/library/alpine:3", ref)
	}
	r := newResolved("")
	r.Profile.Image = pointerTo(ref)
	r.Sources["image"] = SourceArgument
	if flags != nil {
		f := *flags
		f.Image = nil // the argument names the image
		flags = &f
	}
	if err := r.applyFlags(flags); err != nil {
		return nil, err
	}
	return r, nil
}

// ImageRef is the image to run, or an error with the fix for a profile
// that names none.
func (r *Resolved) ImageRef() (string, error) {
	if r.Profile.Image == nil || *r.Profile.Image == "" {
		return "", badConfigf("profile %q names no image: add \"image: REF\" or \"extends: base\" to it", r.Name)
	}
	return *r.Profile.Image, nil
}

// newResolved starts a resolution with sbxrun's defaults.
func newResolved(name string) *Resolved {
	r := &Resolved{Name: name, Sources: map[string]string{}}
	defaults := defaultLayer()
	mergeProfile(&r.Profile, r.Sources, &defaults, func(string) string { return SourceBuiltin })
	return r
}

// applyFlags validates flags and layers them last.
func (r *Resolved) applyFlags(flags *Profile) error {
	if flags == nil {
		return nil
	}
	f := *flags
	f.Extends, f.Description = "", ""
	err := validateProfile(&f, func(key string, err error) error {
		return badConfigf("%s: %w", flagName(key), err)
	})
	if err != nil {
		return err
	}
	mergeProfile(&r.Profile, r.Sources, &f, func(string) string { return SourceFlag })
	return nil
}

// flagName is the command-line flag that sets a profile key.
func flagName(key string) string {
	top, sub, _ := strings.Cut(key, ".")
	switch top {
	case "network":
		return "--net"
	case "env":
		return "-e " + sub
	case "labels":
		return "--label " + sub
	case "mounts":
		return "-v/--mount " + sub
	case "devices":
		return "--device"
	case "add_hosts":
		return "--add-host"
	case "dns_options":
		return "--dns-option"
	case "image":
		return "image"
	}
	return "--" + strings.ReplaceAll(top, "_", "-")
}

// mergeProfile layers l over dst (the rules are in Profile's comment),
// recording in sources, for every value l sets, where at says it came from.
func mergeProfile(dst *Profile, sources map[string]string, l *Profile, at func(key string) string) {
	if l.Extends != "" {
		dst.Extends = l.Extends
		sources["extends"] = at("extends")
	}
	if l.Description != "" {
		dst.Description = l.Description
		sources["description"] = at("description")
	}
	set := func(key string) { sources[key] = at(key) }
	mergeScalar(&dst.Image, l.Image, "image", set)
	mergeScalar(&dst.Pull, l.Pull, "pull", set)
	mergeScalar(&dst.Workdir, l.Workdir, "workdir", set)
	mergeScalar(&dst.User, l.User, "user", set)
	mergeScalar(&dst.Hostname, l.Hostname, "hostname", set)
	mergeScalar(&dst.Memory, l.Memory, "memory", set)
	mergeScalar(&dst.MemorySwap, l.MemorySwap, "memory_swap", set)
	mergeScalar(&dst.CPUs, l.CPUs, "cpus", set)
	mergeScalar(&dst.PidsLimit, l.PidsLimit, "pids_limit", set)
	mergeScalar(&dst.ShmSize, l.ShmSize, "shm_size", set)
	mergeScalar(&dst.Network, l.Network, "network", set)
	mergeScalar(&dst.ReadOnly, l.ReadOnly, "read_only", set)
	mergeScalar(&dst.Privileged, l.Privileged, "privileged", set)
	mergeScalar(&dst.GPUs, l.GPUs, "gpus", set)
	mergeScalar(&dst.GPU, l.GPU, "gpu", set)
	mergeScalar(&dst.StopSignal, l.StopSignal, "stop_signal", set)
	mergeScalar(&dst.StopTimeout, l.StopTimeout, "stop_timeout", set)
	mergeScalar(&dst.Userns, l.Userns, "userns", set)
	mergeScalar(&dst.BestEffortLimits, l.BestEffortLimits, "best_effort_limits", set)

	if l.Entrypoint != nil {
		dst.Entrypoint = slices.Clone(l.Entrypoint)
		set("entrypoint")
	}
	if l.Command != nil {
		dst.Command = slices.Clone(l.Command)
		set("command")
	}

	dst.Env = mergeMap(dst.Env, l.Env, "env.", set)
	dst.Labels = mergeMap(dst.Labels, l.Labels, "labels.", set)

	for _, m := range l.Mounts {
		key := m.mountKey()
		m.Options = slices.Clone(m.Options)
		if i := slices.IndexFunc(dst.Mounts, func(d MountSpec) bool { return d.mountKey() == key }); i >= 0 {
			dst.Mounts[i] = m
		} else {
			dst.Mounts = append(dst.Mounts, m)
		}
		set("mounts." + key)
	}

	appendList := func(dst *[]string, src []string, key string) {
		if len(src) == 0 {
			return
		}
		*dst = append(*dst, src...)
		where := at(key)
		if prev, ok := sources[key]; ok && prev != where {
			parts := strings.Split(prev, ", ")
			if !slices.Contains(parts, where) {
				where = prev + ", " + where
			} else {
				where = prev
			}
		}
		sources[key] = where
	}
	appendList(&dst.CapAdd, l.CapAdd, "cap_add")
	appendList(&dst.CapDrop, l.CapDrop, "cap_drop")
	appendList(&dst.SecurityOpt, l.SecurityOpt, "security_opt")
	appendList(&dst.Devices, l.Devices, "devices")
	appendList(&dst.AddHosts, l.AddHosts, "add_hosts")
	appendList(&dst.DNS, l.DNS, "dns")
	appendList(&dst.DNSSearch, l.DNSSearch, "dns_search")
	appendList(&dst.DNSOptions, l.DNSOptions, "dns_options")
}

// mergeScalar replaces *dst with a copy of *v when v is set.
func mergeScalar[T any](dst **T, v *T, key string, set func(string)) {
	if v != nil {
		*dst = pointerTo(*v)
		set(key)
	}
}

// mergeMap merges src into dst by key.
func mergeMap(dst, src map[string]string, prefix string, set func(string)) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	for k, v := range src {
		dst[k] = v
		set(prefix + k)
	}
	return dst
}

// validateProfile checks the values of one layer that can be checked without
// the host; fail turns a problem with key into the error returned.
func validateProfile(p *Profile, fail func(key string, err error) error) error {
	if p.Image != nil && (strings.TrimSpace(*p.Image) == "" || strings.ContainsAny(*p.Image, " \t\n")) {
		return fail("image", fmt.Errorf("invalid image reference %q: use an image such as docker.io/library/alpine:3", *p.Image))
	}
	if p.Pull != nil {
		switch *p.Pull {
		case "missing", "always", "never":
		default:
			return fail("pull", fmt.Errorf("unknown pull policy %q: use missing, always or never", *p.Pull))
		}
	}
	if p.Workdir != nil && !path.IsAbs(*p.Workdir) && !isTilde(*p.Workdir) {
		return fail("workdir", fmt.Errorf("workdir %q is not an absolute path: use a path such as /workspace", *p.Workdir))
	}
	if p.User != nil {
		if name, _, _ := strings.Cut(*p.User, ":"); strings.ContainsAny(name, "/\x00") {
			return fail("user", fmt.Errorf("invalid user %q: use uid[:gid] or name[:group]", *p.User))
		}
	}
	for _, k := range sortedMapKeys(p.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fail("env."+k, fmt.Errorf("invalid environment variable name %q: use a name without \"=\"", k))
		}
		if strings.ContainsRune(p.Env[k], 0) {
			return fail("env."+k, fmt.Errorf("the value of %s holds a NUL byte, which no environment variable can: remove it", k))
		}
	}
	for _, s := range []struct {
		key   string
		v     *string
		parse func(string) (int64, error)
	}{{"memory", p.Memory, oci.ParseSize}, {"memory_swap", p.MemorySwap, oci.ParseSwap}, {"shm_size", p.ShmSize, oci.ParseSize}} {
		if s.v == nil {
			continue
		}
		if _, err := s.parse(*s.v); err != nil {
			return fail(s.key, err)
		}
	}
	if p.CPUs != nil && (*p.CPUs < 0 || math.IsNaN(*p.CPUs) || math.IsInf(*p.CPUs, 0)) {
		return fail("cpus", fmt.Errorf("invalid CPU quota %v: use a positive number such as 1.5", *p.CPUs))
	}
	if p.PidsLimit != nil && *p.PidsLimit < -1 {
		return fail("pids_limit", fmt.Errorf("invalid pids limit %d: use a positive number, or -1 for no limit", *p.PidsLimit))
	}
	if p.Network != nil {
		switch *p.Network {
		case "host", "none", "bridge":
		default:
			if name, ok := network.ContainerMode(*p.Network); ok {
				if name == "" || strings.ContainsAny(name, " \t\n/:") {
					return fail("network", fmt.Errorf("invalid network %q: use container:NAME, NAME a running sandbox", *p.Network))
				}
				break
			}
			if err := network.CheckName(*p.Network); err != nil {
				return fail("network", fmt.Errorf("unknown network %q: use host, none, bridge or a network name (`sbxrun network ls`)", *p.Network))
			}
		}
	}
	for _, o := range p.SecurityOpt {
		if _, _, err := parseSecurityOpt(o); err != nil {
			return fail("security_opt", err)
		}
	}
	if p.StopSignal != nil {
		if _, err := oci.ParseSignal(*p.StopSignal); err != nil {
			return fail("stop_signal", fmt.Errorf("unknown signal %q: use a name such as SIGTERM or a number from 1 to 64", *p.StopSignal))
		}
	}
	if p.StopTimeout != nil && *p.StopTimeout < 0 {
		return fail("stop_timeout", fmt.Errorf("invalid stop timeout %d: use seconds, 0 or more", *p.StopTimeout))
	}
	if p.Userns != nil && *p.Userns != oci.UsernsKeepID && *p.Userns != oci.UsernsHost {
		return fail("userns", fmt.Errorf("unknown userns %q: use keep-id (your files stay yours) or host (the image's user as is)", *p.Userns))
	}
	for _, k := range sortedMapKeys(p.Labels) {
		if k == "" {
			return fail("labels", errors.New("empty label name: use NAME: value"))
		}
	}
	// Layers merge mounts by target, so two mounts at one target in one
	// layer (two -v, or -v and --mount) would drop the first unseen.
	targets := map[string]bool{}
	for _, m := range p.Mounts {
		if err := m.validate(); err != nil {
			return fail("mounts."+m.mountKey(), err)
		}
		if targets[m.mountKey()] {
			return fail("mounts."+m.mountKey(), fmt.Errorf("two mounts at %q: keep one", m.mountKey()))
		}
		targets[m.mountKey()] = true
	}
	if err := validateDevices(p); err != nil {
		return fail(err.key, err.err)
	}
	for _, h := range p.AddHosts {
		if _, _, err := network.ParseAddHost(h); err != nil {
			return fail("add_hosts", err)
		}
	}
	for _, d := range []struct {
		key string
		dns network.DNS
	}{{"dns", network.DNS{Servers: p.DNS}}, {"dns_search", network.DNS{Search: p.DNSSearch}}, {"dns_options", network.DNS{Options: p.DNSOptions}}} {
		if err := network.CheckDNS(d.dns); err != nil {
			return fail(d.key, err)
		}
	}
	return nil
}

// parseSecurityOpt parses one Docker --security-opt value into its kind
// (no-new-privileges, seccomp, apparmor) and value. The old "KEY:VALUE" form
// is accepted too.
func parseSecurityOpt(opt string) (kind, value string, err error) {
	sep := strings.IndexAny(opt, "=")
	if sep < 0 {
		sep = strings.IndexAny(opt, ":")
	}
	kind, value = opt, ""
	if sep >= 0 {
		kind, value = opt[:sep], opt[sep+1:]
	}
	switch kind {
	case "no-new-privileges":
		switch value {
		case "":
			if sep >= 0 {
				break
			}
			return kind, "true", nil
		case "true", "false":
			return kind, value, nil
		}
		return "", "", fmt.Errorf("invalid security-opt %q: use no-new-privileges, no-new-privileges=true or no-new-privileges=false", opt)
	case "seccomp":
		if value == "" {
			return "", "", fmt.Errorf("invalid security-opt %q: use seccomp=unconfined or seccomp=PROFILE.json", opt)
		}
		return kind, value, nil
	case "apparmor":
		if value == "" {
			return "", "", fmt.Errorf("invalid security-opt %q: use apparmor=unconfined or apparmor=PROFILE", opt)
		}
		return kind, value, nil
	case "label":
		return "", "", fmt.Errorf("security-opt %q is not supported: sbxrun does not apply SELinux labels; drop it", opt)
	}
	return "", "", fmt.Errorf("unknown security-opt %q: use no-new-privileges, seccomp=unconfined|PROFILE.json or apparmor=unconfined|PROFILE", opt)
}

// CreateDirs makes the missing sources of create mounts (caches).
func CreateDirs(sb *oci.Sandbox, dirs []string) error {
	for _, dir := range dirs {
		within := ""
		for _, m := range sb.Mounts {
			if m.Source == dir {
				within = m.Within
			}
		}
		var err error
		if within == "" {
			err = os.MkdirAll(dir, 0o755)
		} else {
			err = mkdirWithin(within, dir)
		}
		if err != nil {
			return badConfigf("creating cache directory %q: %w: create it yourself or drop the mount", dir, err)
		}
	}
	return nil
}

// mkdirWithin creates dir, which lies in root, without following a symlink
// out of root: a directory an untrusted project file asks for must not
// appear elsewhere because the repository holds a symlink on its way.
func mkdirWithin(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%q is outside %q", dir, root)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	return pathrs.MkdirAll(root, rel, 0o755)
}

// Expand expands and checks the resolved profile into an oci.Sandbox:
// everything but ID, Namespace, Args from "--", HostsFile and ResolvConf,
// which the run lifecycle fills. "~" in a mount source is h.Home, "." and
// relative sources are under h.Cwd, "~" in a target or the workdir is the
// sandbox user's home. It creates nothing: it returns the missing sources of
// create mounts, for CreateDirs once every other check passed; missing
// sources of optional mounts are skipped; other sources are left for
// oci.Validate to check.
func (r *Resolved) Expand(h HostEnv) (*oci.Sandbox, []string, error) {
	p := &r.Profile
	fail := func(key string, err error) error {
		where := r.Sources[key]
		if where == SourceFlag {
			where = "command line"
		}
		if where == "" {
			return badConfigf("%s: %w", key, err)
		}
		return badConfigf("%s: %s: %w", where, key, err)
	}
	// Flags were validated when they were layered, files when read: this
	// only catches a Resolved built by hand.
	if err := validateProfile(p, fail); err != nil {
		return nil, nil, err
	}

	sb := &oci.Sandbox{
		NoNewPrivileges: true,
		Args:            slices.Clone(p.Command),
	}
	// Capability names are normalized once, here, so every later check
	// sees the name the grant uses (" SYS_ADMIN" is CAP_SYS_ADMIN).
	var err error
	if sb.CapAdd, err = oci.NormalizeCaps(p.CapAdd); err != nil {
		return nil, nil, fail("cap_add", err)
	}
	if sb.CapDrop, err = oci.NormalizeCaps(p.CapDrop); err != nil {
		return nil, nil, fail("cap_drop", err)
	}
	if len(sb.CapAdd) == 0 {
		sb.CapAdd = nil
	}
	if len(sb.CapDrop) == 0 {
		sb.CapDrop = nil
	}
	if p.Entrypoint != nil {
		sb.Entrypoint = slices.Clone(p.Entrypoint)
		sb.EntrypointSet = true
	}
	for _, k := range sortedMapKeys(p.Env) {
		sb.Env = append(sb.Env, k+"="+p.Env[k])
	}
	copyIfSet(&sb.User, p.User)
	copyIfSet(&sb.Hostname, p.Hostname)
	copyIfSet(&sb.Network, p.Network)
	sb.ExtraHosts = slices.Clone(p.AddHosts)
	sb.DNSServers = slices.Clone(p.DNS)
	sb.DNSSearch = slices.Clone(p.DNSSearch)
	sb.DNSOptions = slices.Clone(p.DNSOptions)
	copyIfSet(&sb.ReadOnly, p.ReadOnly)
	copyIfSet(&sb.Userns, p.Userns)
	copyIfSet(&sb.Privileged, p.Privileged)
	copyIfSet(&sb.CPUs, p.CPUs)
	copyIfSet(&sb.PidsLimit, p.PidsLimit)
	if sb.PidsLimit < 0 {
		sb.PidsLimit = 0 // -1: no limit, as in Docker
	}
	if p.Memory != nil {
		if sb.Memory, err = oci.ParseSize(*p.Memory); err != nil {
			return nil, nil, fail("memory", err)
		}
	}
	if p.MemorySwap != nil {
		if sb.MemorySwap, err = oci.ParseSwap(*p.MemorySwap); err != nil {
			return nil, nil, fail("memory_swap", err)
		}
	}
	if p.ShmSize != nil {
		if sb.ShmSize, err = oci.ParseSize(*p.ShmSize); err != nil {
			return nil, nil, fail("shm_size", err)
		}
	}

	home := func() (string, error) { return sandboxHome(p) }
	if p.Workdir != nil {
		if sb.Workdir, err = expandTarget(*p.Workdir, home); err != nil {
			return nil, nil, fail("workdir", err)
		}
	}

	for _, o := range p.SecurityOpt {
		kind, value, err := parseSecurityOpt(o)
		if err != nil {
			return nil, nil, fail("security_opt", err)
		}
		switch kind {
		case "no-new-privileges":
			sb.NoNewPrivileges = value == "true"
		case "seccomp":
			switch value {
			case "unconfined":
				sb.Seccomp = value
			case "builtin":
				sb.Seccomp = "" // Docker's name for the default profile
			default:
				if sb.Seccomp, err = expandSource(value, h); err != nil {
					return nil, nil, fail("security_opt", fmt.Errorf("seccomp profile: %w", err))
				}
			}
		case "apparmor":
			sb.AppArmor = value
		}
	}

	var create []string
	for _, m := range p.Mounts {
		key := "mounts." + m.mountKey()
		om := oci.Mount{Type: m.Type, ReadOnly: m.ReadOnly}
		if om.Type == "" {
			om.Type = "bind"
		}
		if om.Destination, err = expandTarget(m.Target, home); err != nil {
			if m.Optional && errors.Is(err, errUnknownHome) {
				continue // e.g. ~/.gitconfig for -u 1000: optional, so run without it
			}
			return nil, nil, fail(key, err)
		}
		for _, o := range m.Options {
			if size, ok := strings.CutPrefix(o, "size="); ok && om.Type == "tmpfs" {
				n, err := oci.ParseSize(size)
				if err != nil {
					return nil, nil, fail(key, err)
				}
				o = "size=" + strconv.FormatInt(n, 10) // tmpfs does not read every unit go-units does
			}
			om.Options = append(om.Options, o)
		}
		if om.Type == "bind" {
			if om.Source, err = expandSource(m.Source, h); err != nil {
				return nil, nil, fail(key, err)
			}
			if at, dir, ok := r.fromUntrusted(key); ok {
				if om.Within, err = confineMount(at, dir, m, om.Source, h); err != nil {
					return nil, nil, err
				}
			}
			if m.Create || m.Optional {
				_, err := os.Stat(om.Source)
				switch {
				case err == nil:
				case errors.Is(err, fs.ErrNotExist) && m.Create:
					create = append(create, om.Source)
				case errors.Is(err, fs.ErrNotExist):
					continue // optional and missing: skip the mount
				default:
					return nil, nil, fail(key, fmt.Errorf("checking source %q: %w", om.Source, err))
				}
			}
		}
		// Targets written differently ("~/.ssh", "/root/.ssh") may meet
		// once expanded: the later layer's mount wins here too.
		if i := slices.IndexFunc(sb.Mounts, func(o oci.Mount) bool { return o.Destination == om.Destination }); i >= 0 {
			sb.Mounts[i] = om
			continue
		}
		sb.Mounts = append(sb.Mounts, om)
	}
	return sb, create, nil
}

// copyIfSet copies *v into *dst when v is set.
func copyIfSet[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// errUnknownHome: "~" in a target cannot be expanded for a numeric user.
var errUnknownHome = errors.New("cannot tell the home")

// sandboxHome is the sandbox user's home, which "~" in a target means:
// $HOME of the profile's env, else /root for root (or no user) and
// /home/NAME for a user given by name.
func sandboxHome(p *Profile) (string, error) {
	if h, ok := p.Env["HOME"]; ok && h != "" {
		if !path.IsAbs(h) {
			return "", fmt.Errorf("env HOME %q is not an absolute path: set HOME to the sandbox user's home", h)
		}
		return path.Clean(h), nil
	}
	user := ""
	if p.User != nil {
		user = *p.User
	}
	name, _, _ := strings.Cut(user, ":")
	switch {
	case name == "":
		// The image decides who runs and where home is: a placeholder that
		// the run resolves once the image config is known (imageHome).
		return HomeMarker, nil
	case name == "root" || name == "0":
		return "/root", nil
	case strings.Trim(name, "0123456789") == "":
		return "", fmt.Errorf("%w of user %q for \"~\": set env HOME (-e HOME=/home/NAME) or use an absolute target", errUnknownHome, user)
	}
	return "/home/" + name, nil
}

// expandTarget turns "~" and "~/x" into paths under the sandbox home.
func expandTarget(t string, home func() (string, error)) (string, error) {
	if isTilde(t) {
		h, err := home()
		if err != nil {
			return "", err
		}
		return path.Join(h, strings.TrimPrefix(t, "~")), nil
	}
	if !path.IsAbs(t) {
		return "", fmt.Errorf("target %q is not an absolute path: use a path such as /data or ~/data", t)
	}
	return path.Clean(t), nil
}

// expandSource turns "~" into the host home and relative paths into paths
// under the current directory.
func expandSource(s string, h HostEnv) (string, error) {
	switch {
	case isTilde(s):
		if !filepath.IsAbs(h.Home) {
			return "", fmt.Errorf("cannot expand %q: the home directory is unknown: set HOME or use an absolute path", s)
		}
		return filepath.Join(h.Home, strings.TrimPrefix(s, "~")), nil
	case strings.HasPrefix(s, "~"):
		return "", fmt.Errorf("source %q: ~user paths are not supported: use ~/PATH or an absolute path", s)
	case filepath.IsAbs(s):
		return filepath.Clean(s), nil
	case s == "":
		return "", errors.New("empty source: give a host path")
	}
	if !filepath.IsAbs(h.Cwd) {
		return "", fmt.Errorf("cannot expand %q: the current directory is unknown: use an absolute path", s)
	}
	return filepath.Join(h.Cwd, s), nil
}

// sortedMapKeys returns m's keys in order.
func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Describe writes the resolved profile for "sbxrun profiles show NAME": a
// YAML mapping, written by yaml/v3's encoder (which decides quoting), with
// the source of each value that is set as its line comment, in Profile's
// field order. Read back, it decodes to r.Profile.
func (r *Resolved) Describe(w io.Writer) error {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, value *yaml.Node, source string) {
		value.LineComment = source
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, value)
	}
	v := reflect.ValueOf(r.Profile)
	t := v.Type()
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if key == "extends" || f.IsZero() && !(f.Kind() == reflect.Slice && !f.IsNil()) {
			continue
		}
		switch x := f.Interface().(type) {
		case map[string]string:
			m := &yaml.Node{Kind: yaml.MappingNode}
			for _, k := range sortedMapKeys(x) {
				val := yamlStr(x[k])
				val.LineComment = r.Sources[key+"."+k]
				m.Content = append(m.Content, yamlStr(k), val)
			}
			add(key, m, "")
		case []MountSpec:
			seq := &yaml.Node{Kind: yaml.SequenceNode}
			for _, ms := range x {
				n := ms.yamlNode()
				n.LineComment = r.Sources[key+"."+ms.mountKey()]
				seq.Content = append(seq.Content, n)
			}
			add(key, seq, "")
		case []string:
			add(key, yamlList(x), r.Sources[key])
		default:
			n := &yaml.Node{}
			if err := n.Encode(f.Interface()); err != nil {
				return fmt.Errorf("describing %s: %w", key, err)
			}
			add(key, n, r.Sources[key])
		}
	}

	var b strings.Builder
	if r.Name == "" {
		image := ""
		if r.Profile.Image != nil {
			image = *r.Profile.Image
		}
		fmt.Fprintf(&b, "# image %s, no profile\n", strings.ToValidUTF8(strings.ReplaceAll(image, "\n", " "), "?"))
	} else {
		fmt.Fprintf(&b, "# profile %s", r.Name)
		if len(r.Chain) > 1 {
			fmt.Fprintf(&b, " (extends %s)", strings.Join(r.Chain[1:], " -> "))
		}
		b.WriteString("\n")
	}
	if len(doc.Content) > 0 {
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(doc); err != nil {
			return fmt.Errorf("describing the profile: %w", err)
		}
		if err := enc.Close(); err != nil {
			return fmt.Errorf("describing the profile: %w", err)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// yamlNode is a mount in flow style, keys in field order.
func (m MountSpec) yamlNode() *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	kv := func(k string, v *yaml.Node) { n.Content = append(n.Content, yamlStr(k), v) }
	if m.Type != "" {
		kv("type", yamlStr(m.Type))
	}
	if m.Source != "" {
		kv("source", yamlStr(m.Source))
	}
	kv("target", yamlStr(m.Target))
	for _, b := range []struct {
		key string
		set bool
	}{{"readonly", m.ReadOnly}, {"create", m.Create}, {"optional", m.Optional}} {
		if b.set {
			kv(b.key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		}
	}
	if m.Options != nil {
		kv("options", yamlList(m.Options))
	}
	return n
}

// yamlList is a flow list of strings.
func yamlList(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, yamlStr(s))
	}
	return n
}

// yamlStr is a string scalar; the encoder quotes it where YAML would read
// it as something else ("0x1", "1e3", "*x"), and so does this for YAML
// 1.1's booleans ("on", "yes"), which yaml/v3 reads as strings but older
// readers do not.
func yamlStr(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off":
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// Caches are the expanded sources of the profile's create mounts (the
// caches it keeps on the host, such as ~/.cache/huggingface), whether or
// not they exist yet.
func (r *Resolved) Caches(h HostEnv) []string {
	var out []string
	for _, m := range r.Profile.Mounts {
		if !m.Create || m.Type == "tmpfs" {
			continue
		}
		if src, err := expandSource(m.Source, h); err == nil {
			out = append(out, src)
		}
	}
	return out
}
