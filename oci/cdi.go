package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"go.yaml.in/yaml/v3"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sbxrun/sbxrun/hooks"
)

// DefaultCDISpecDirs are the directories CDI specs are read from unless
// others are given, lowest priority first: a device defined in a later
// directory overrides one of the same name in an earlier one (CDI's rule).
var DefaultCDISpecDirs = []string{"/etc/cdi", "/var/run/cdi"}

// CDIAnnotation is the spec annotation that lists the CDI devices injected
// into a sandbox, comma-separated, so `sbxrun spec` shows what a request
// resolved to.
const CDIAnnotation = "sbxrun.cdi-devices"

// CDISpec is one CDI spec sbxrun trusts and loaded.
type CDISpec struct {
	*cdi.Spec
	// Path is the file the spec was read from. A spec generated in memory
	// keeps the path of the file it stands in for.
	Path string
	// InMemory is true for a spec generated in memory (Replace).
	InMemory bool
}

// RefusedCDISpec is a spec file sbxrun did not load, and why.
type RefusedCDISpec struct {
	// Path is the file.
	Path string
	// Kind is the spec's VENDOR/CLASS when the file could be parsed, else "".
	Kind string
	// Err says why, naming the file and the fix.
	Err error
}

// CDIRegistry is the set of CDI specs sbxrun trusts, read from spec
// directories by LoadCDI. Specs are decoded strictly (unknown fields are
// errors) and validated by the CDI library; files that are not owned by a
// trusted user, that others can write, or that fail validation are refused
// and reported by name when a device they might define is asked for.
type CDIRegistry struct {
	dirs      []string
	trusted   []uint32
	specs     []*CDISpec
	devices   map[string]cdiDevice
	conflicts map[string][]string
	refused   []RefusedCDISpec
}

// cdiDevice is a device and the spec that defines it.
type cdiDevice struct {
	dev  *cdi.Device
	spec *CDISpec
}

// LoadCDI reads the CDI specs (*.yaml, *.json) of dirs, lowest priority
// first; a missing directory is skipped. trusted lists the owners a spec
// file (and its directory) may have; nil is TrustedUIDs(). Refused files
// are kept in Refused; LoadCDI itself fails only for a directory it cannot
// list or a relative directory.
func LoadCDI(dirs []string, trusted []uint32) (*CDIRegistry, error) {
	if trusted == nil {
		trusted = TrustedUIDs()
	}
	r := &CDIRegistry{dirs: slices.Clone(dirs), trusted: slices.Clone(trusted)}
	for prio, dir := range dirs {
		if !filepath.IsAbs(dir) {
			return nil, invalidf("CDI spec directory %q is not an absolute path: give an absolute --cdi-spec-dir", dir)
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading CDI spec directory %q: %w", dir, err)
		}
		dirErr := checkDir(dir, trusted)
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			if ext := filepath.Ext(e.Name()); (ext != ".yaml" && ext != ".json") || e.IsDir() {
				continue
			}
			if dirErr != nil {
				r.refused = append(r.refused, RefusedCDISpec{Path: path, Kind: peekKind(path), Err: fmt.Errorf("CDI spec %q: %w", path, dirErr)})
				continue
			}
			spec, err := readCDISpec(path, prio, trusted)
			if err != nil {
				r.refused = append(r.refused, RefusedCDISpec{Path: path, Kind: peekKind(path), Err: err})
				continue
			}
			r.specs = append(r.specs, spec)
		}
	}
	r.index()
	return r, nil
}

// readCDISpec opens a spec file, checks the opened file's owner and mode,
// and parses and validates exactly what was checked (through
// /proc/self/fd, so the file cannot be swapped in between).
func readCDISpec(path string, prio int, trusted []uint32) (*CDISpec, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("CDI spec %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("CDI spec %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("CDI spec %q is not a regular file: remove it", path)
	}
	if err := CheckTrustedFile("CDI spec", path, fi, trusted); err != nil {
		return nil, err
	}
	return parseCDISpecFd(f, path, prio)
}

// parseCDISpecFd reads the spec behind f with the CDI library's strict
// parser and validation; errors name path.
func parseCDISpecFd(f *os.File, path string, prio int) (*CDISpec, error) {
	fdPath := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	s, err := cdi.ReadSpec(fdPath, prio)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), fdPath, path)
		msg = strings.TrimPrefix(msg, fmt.Sprintf("failed to parse CDI Spec %q: ", path))
		// The YAML decoder lists its errors one per indented line: one
		// line for the user, without the decoder's headings.
		msg = strings.ReplaceAll(msg, "failed to unmarshal CDI Spec: yaml: unmarshal errors:\n", "")
		msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
		if !strings.Contains(msg, path) {
			msg = fmt.Sprintf("%q: %s", path, msg)
		}
		return nil, fmt.Errorf("invalid CDI spec %s: fix or remove the file", msg)
	}
	if err := checkSpecPaths(s.Spec, path); err != nil {
		return nil, err
	}
	return &CDISpec{Spec: s, Path: path}, nil
}

// checkSpecPaths adds to the CDI library's validation what the CDI schema
// requires of paths: absolute hook paths, container paths and host paths.
func checkSpecPaths(raw *cdispecs.Spec, path string) error {
	all := []cdispecs.ContainerEdits{raw.ContainerEdits}
	for _, d := range raw.Devices {
		all = append(all, d.ContainerEdits)
	}
	for _, e := range all {
		for _, h := range e.Hooks {
			if !filepath.IsAbs(h.Path) {
				return fmt.Errorf("invalid CDI spec %q: hook path %q is not absolute: fix or remove the file", path, h.Path)
			}
		}
		for _, m := range e.Mounts {
			if !filepath.IsAbs(m.ContainerPath) || (m.Type != "tmpfs" && !filepath.IsAbs(m.HostPath)) {
				return fmt.Errorf("invalid CDI spec %q: mount %q -> %q: paths must be absolute: fix or remove the file", path, m.HostPath, m.ContainerPath)
			}
		}
		for _, d := range e.DeviceNodes {
			if !filepath.IsAbs(d.Path) || (d.HostPath != "" && !filepath.IsAbs(d.HostPath)) {
				return fmt.Errorf("invalid CDI spec %q: device node %q: paths must be absolute: fix or remove the file", path, d.Path)
			}
		}
	}
	return nil
}

// peekKind returns the kind a spec file declares, "" when it cannot be
// read; it is only used to tell which requests a refused file concerns.
func peekKind(path string) string {
	f, err := openRegular(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return ""
	}
	var head struct {
		Kind string `yaml:"kind"`
	}
	if yaml.Unmarshal(b, &head) != nil {
		return ""
	}
	vendor, class := parser.ParseQualifier(head.Kind)
	if parser.ValidateVendorName(vendor) != nil || parser.ValidateClassName(class) != nil {
		return ""
	}
	return head.Kind
}

// index rebuilds the device table: a device of a higher-priority spec wins;
// two specs of one priority that define one device make it a conflict.
func (r *CDIRegistry) index() {
	r.devices = map[string]cdiDevice{}
	r.conflicts = map[string][]string{}
	for _, s := range r.specs {
		for _, d := range s.Devices {
			name := parser.QualifiedName(s.GetVendor(), s.GetClass(), d.Name)
			dev := cdiDevice{dev: s.GetDevice(d.Name), spec: s}
			old, seen := r.devices[name]
			switch {
			case !seen && r.conflicts[name] == nil:
				r.devices[name] = dev
			case seen && old.spec.GetPriority() < s.GetPriority():
				r.devices[name] = dev
			case seen && old.spec.GetPriority() == s.GetPriority():
				r.conflicts[name] = []string{old.spec.Path, s.Path}
				delete(r.devices, name)
			}
		}
	}
}

// Dirs are the spec directories, lowest priority first.
func (r *CDIRegistry) Dirs() []string { return slices.Clone(r.dirs) }

// Specs are the loaded specs, lowest priority first.
func (r *CDIRegistry) Specs() []*CDISpec { return slices.Clone(r.specs) }

// Refused are the spec files that were not loaded.
func (r *CDIRegistry) Refused() []RefusedCDISpec { return slices.Clone(r.refused) }

// Trusted are the owners the registry trusts for spec files and hooks.
func (r *CDIRegistry) Trusted() []uint32 { return slices.Clone(r.trusted) }

// Devices returns the sorted names (without VENDOR/CLASS=) of the devices
// of kind ("nvidia.com/gpu").
func (r *CDIRegistry) Devices(kind string) []string {
	var names []string
	for q := range r.devices {
		if k, name, ok := strings.Cut(q, "="); ok && k == kind {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// SpecFor returns the spec that defines the fully qualified device name,
// or nil.
func (r *CDIRegistry) SpecFor(name string) *CDISpec {
	return r.devices[name].spec
}

// Replace puts raw, generated in memory, in place of the loaded spec read
// from path (keeping that spec's priority), for this process only: what a
// user who may not rewrite the file gets when the file is stale.
func (r *CDIRegistry) Replace(path string, raw *cdispecs.Spec) error {
	i := slices.IndexFunc(r.specs, func(s *CDISpec) bool { return s.Path == path })
	if i < 0 {
		return fmt.Errorf("no loaded CDI spec %q to replace", path)
	}
	s, err := parseInMemory(path, raw, r.specs[i].GetPriority())
	if err != nil {
		return err
	}
	r.specs[i] = s
	r.index()
	return nil
}

// Resolve checks that every fully qualified device name can be injected:
// a trusted spec defines it, its hooks are trusted executables and the host
// files it names exist. It returns the first problem, naming the device,
// the spec file and what is wrong.
func (r *CDIRegistry) Resolve(names []string) error {
	for _, n := range names {
		d, err := r.lookup(n)
		if err != nil {
			return err
		}
		for _, e := range []cdispecs.ContainerEdits{d.spec.ContainerEdits, d.dev.ContainerEdits} {
			if _, err := checkedEdits(e, d.spec.Path, r.trusted); err != nil {
				return unavailable{fmt.Errorf("CDI device %q: %w", n, err)}
			}
		}
	}
	return nil
}

// ErrCDIUnavailable marks a CDI device that no trusted spec defines.
var ErrCDIUnavailable = errors.New("CDI device unavailable")

// unavailable is an error that is ErrCDIUnavailable and an invalid argument.
type unavailable struct{ error }

// Unwrap makes errors.Is see both the cause and ErrCDIUnavailable.
func (u unavailable) Unwrap() []error { return []error{u.error, ErrCDIUnavailable} }

// lookup resolves one fully qualified device name.
func (r *CDIRegistry) lookup(name string) (cdiDevice, error) {
	vendor, class, _, err := parser.ParseQualifiedName(name)
	if err != nil {
		return cdiDevice{}, invalidf("invalid CDI device %q: use VENDOR/CLASS=NAME, such as nvidia.com/gpu=all", name)
	}
	kind := vendor + "/" + class
	if paths := r.conflicts[name]; paths != nil {
		return cdiDevice{}, unavailable{fmt.Errorf("CDI device %q is defined by both %q and %q with the same priority: remove one", name, paths[0], paths[1])}
	}
	// A refused file of the device's kind (or of no readable kind, when
	// nothing else defines the device) may be the one meant: say so rather
	// than use another or nothing.
	d, found := r.devices[name]
	for _, rf := range r.refused {
		if rf.Kind == kind || (rf.Kind == "" && !found) {
			return cdiDevice{}, unavailable{fmt.Errorf("CDI device %q: %w", name, rf.Err)}
		}
	}
	if found {
		return d, nil
	}
	if known := r.Devices(kind); len(known) > 0 {
		return cdiDevice{}, unavailable{fmt.Errorf("CDI device %q not found: the %s devices are %s", name, kind, strings.Join(known, ", "))}
	}
	return cdiDevice{}, unavailable{fmt.Errorf("no CDI spec for %s devices in %s", kind, strings.Join(r.dirs, ", "))}
}

// withCDI injects the CDI devices, last of all spec options: after
// everything that sets env, mounts or hooks, so nothing resets what it adds.
// Each spec's common edits are applied once, then each device's. Every
// injected hook gets hooks.Env as its explicit environment, must pass
// CheckHookPath and is run by the symlink-free path that was checked; host
// paths must exist. Mounted
// bin directories that PATH lacks are appended to it (nvidia-smi under
// /usr/local/nvidia/bin on some hosts). Without cgroups the device rules
// CDI adds are dropped again.
func withCDI(reg *CDIRegistry, names []string, noCgroups bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		edits := &cdi.ContainerEdits{ContainerEdits: &cdispecs.ContainerEdits{}}
		applied := map[*CDISpec]bool{}
		for _, n := range names {
			d, err := reg.lookup(n)
			if err != nil {
				return err
			}
			if !applied[d.spec] {
				applied[d.spec] = true
				e, err := checkedEdits(d.spec.ContainerEdits, d.spec.Path, reg.trusted)
				if err != nil {
					return fmt.Errorf("CDI device %q: %w", n, err)
				}
				edits.Append(e)
			}
			e, err := checkedEdits(d.dev.ContainerEdits, d.spec.Path, reg.trusted)
			if err != nil {
				return fmt.Errorf("CDI device %q: %w", n, err)
			}
			edits.Append(e)
		}
		if err := edits.Apply(s); err != nil {
			return fmt.Errorf("injecting CDI devices %s: %w", strings.Join(names, ", "), err)
		}
		addBinDirsToPath(s, edits.Mounts)
		if noCgroups && s.Linux != nil {
			s.Linux.Resources = nil
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[CDIAnnotation] = strings.Join(names, ",")
		return nil
	}
}

// checkedEdits copies e with every hook's environment made explicit and
// its path resolved (CheckHookPath), and checks its hooks and host paths.
func checkedEdits(e cdispecs.ContainerEdits, specPath string, trusted []uint32) (*cdi.ContainerEdits, error) {
	hs := make([]*cdispecs.Hook, 0, len(e.Hooks))
	for _, h := range e.Hooks {
		resolved, err := CheckHookPath(h.Path, specPath, trusted)
		if err != nil {
			return nil, err
		}
		c := *h
		// runc executes exactly the file that was checked.
		c.Path = resolved
		c.Args = slices.Clone(h.Args)
		c.Env = hooks.Env(h.Env)
		hs = append(hs, &c)
	}
	e.Hooks = hs
	for _, m := range e.Mounts {
		if m.Type == "tmpfs" {
			continue
		}
		if _, err := os.Stat(m.HostPath); err != nil {
			return nil, fmt.Errorf("%q mounted by CDI spec %q: %w: the spec is stale: regenerate it (`sbxrun gpu setup` for NVIDIA GPUs)", m.HostPath, specPath, errors.Unwrap(err))
		}
	}
	for _, d := range e.DeviceNodes {
		p := d.HostPath
		if p == "" {
			p = d.Path
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("device %q of CDI spec %q: %w: the spec is stale or the driver is not loaded: regenerate it (`sbxrun gpu setup` for NVIDIA GPUs)", p, specPath, errors.Unwrap(err))
		}
	}
	return &cdi.ContainerEdits{ContainerEdits: &e}, nil
}

// addBinDirsToPath appends to the process's PATH the directories of mounted
// files that live in a bin or sbin directory PATH does not hold yet.
func addBinDirsToPath(s *oci.Spec, mounts []*cdispecs.Mount) {
	if s.Process == nil {
		return
	}
	var extra []string
	for _, m := range mounts {
		dir := filepath.Dir(filepath.Clean(m.ContainerPath))
		if b := filepath.Base(dir); (b == "bin" || b == "sbin") && !slices.Contains(extra, dir) {
			extra = append(extra, dir)
		}
	}
	if len(extra) == 0 {
		return
	}
	idx := -1
	path := DefaultPath
	for i, kv := range s.Process.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			idx, path = i, v
		}
	}
	have := strings.Split(path, ":")
	for _, d := range extra {
		if !slices.Contains(have, d) {
			path += ":" + d
			have = append(have, d)
		}
	}
	if idx < 0 {
		s.Process.Env = append(s.Process.Env, "PATH="+path)
		return
	}
	s.Process.Env[idx] = "PATH=" + path
}

// validateCDIDevices checks the syntax of fully qualified device names.
func validateCDIDevices(names []string) error {
	for _, n := range names {
		if _, _, _, err := parser.ParseQualifiedName(n); err != nil {
			return invalidf("invalid CDI device %q: use VENDOR/CLASS=NAME, such as nvidia.com/gpu=all", n)
		}
	}
	return nil
}

// openRegular opens path for reading only if it is a regular file: a FIFO
// would block the open forever and a device node may act on being opened
// (a watchdog arms), so neither is opened at all. The open is non-blocking
// and the opened file is checked again.
func openRegular(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file: remove it from the spec directory")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("not a regular file: remove it from the spec directory")
	}
	return f, nil
}
