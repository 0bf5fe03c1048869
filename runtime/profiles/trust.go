package profiles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sbxrun/sbxrun/network"
)

// A project file is one that comes with a directory someone else may have
// written: ./sbxrun.yaml of a cloned repository (and, later, its compose
// files and manifests). Until the user trusts it, it may not widen what a
// sandbox touches (see CheckTrust): the user's own trust, recorded per file
// with the hash of the content they reviewed, as direnv's `allow` and VS
// Code's workspace trust do. A changed file is untrusted again.

// TrustFileEnv overrides where trust is recorded (tests, and users who keep
// state elsewhere).
const TrustFileEnv = "SBXRUN_TRUST_FILE"

// DefaultTrustFile is where the invoking user's trust is recorded:
// $SBXRUN_TRUST_FILE, else $XDG_STATE_HOME/sbxrun/trust.json, else
// ~/.local/state/sbxrun/trust.json. It is the user's own state, never the
// project's.
func DefaultTrustFile() string {
	if f := os.Getenv(TrustFileEnv); f != "" {
		return f
	}
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "sbxrun", "trust.json")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state", "sbxrun", "trust.json")
}

// TrustEntry is one trusted file.
type TrustEntry struct {
	// File is the file's absolute path.
	File string `json:"file"`
	// SHA256 is the hex digest of the content the user trusted.
	SHA256 string `json:"sha256"`
	// Trusted is when the user trusted it.
	Trusted time.Time `json:"trusted"`
}

// trustStore is the recorded trust, as read from its file.
type trustStore struct {
	Files []TrustEntry `json:"files"`
}

// contentDigest is the hex SHA-256 of a file's content.
func contentDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// readTrust reads the store at path; a missing file is an empty store.
func readTrust(path string) (*trustStore, error) {
	st := &trustStore{}
	if path == "" {
		return st, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading trust file %q: %w", path, err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("trust file %q is not valid JSON (%v): remove it and trust your projects again", path, err)
	}
	return st, nil
}

// write replaces the store at path atomically, readable by its owner only.
func (st *trustStore) write(path string) error {
	if path == "" {
		return errors.New("cannot tell where to record trust: set HOME or " + TrustFileEnv)
	}
	sort.Slice(st.Files, func(i, j int) bool { return st.Files[i].File < st.Files[j].File })
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %q: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".trust-*.json")
	if err != nil {
		return fmt.Errorf("writing trust file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing trust file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing trust file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing trust file %q: %w", path, err)
	}
	return nil
}

// trusts reports whether file is trusted with exactly this content.
func (st *trustStore) trusts(file, digest string) bool {
	for _, e := range st.Files {
		if e.File == file && e.SHA256 == digest {
			return true
		}
	}
	return false
}

// ProjectFiles are the files of a project directory that `sbxrun trust`
// covers: the ones sbxrun reads from the current directory.
var ProjectFiles = append([]string{"sbxrun.yaml"}, ComposeFiles...)

// TrustOptions is `sbxrun trust`.
type TrustOptions struct {
	// Dir is the project directory ("" is the current directory).
	Dir string
	// File is the trust store; "" is DefaultTrustFile().
	File string
}

func (o TrustOptions) store() string {
	if o.File != "" {
		return o.File
	}
	return DefaultTrustFile()
}

// projectFiles lists the project files present in o.Dir, absolute.
func (o TrustOptions) projectFiles() (string, []string, error) {
	dir := o.Dir
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, badConfigf("project directory %q: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() {
		return filepath.Dir(abs), []string{abs}, nil // one file: a manifest (kube play)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return "", nil, badConfigf("%q is not a directory: give the project directory, such as `sbxrun trust .`", dir)
	}
	var files []string
	for _, name := range ProjectFiles {
		p := filepath.Join(abs, name)
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	return abs, files, nil
}

// Trust records the project files of o.Dir, with their current content, as
// trusted, and returns the entries it wrote.
func Trust(o TrustOptions) ([]TrustEntry, error) {
	dir, files, err := o.projectFiles()
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, badConfigf("%s has no project file (%v) to trust: run `sbxrun trust` in the project's directory", dir, ProjectFiles)
	}
	st, err := readTrust(o.store())
	if err != nil {
		return nil, err
	}
	var added []TrustEntry
	for _, f := range files {
		data, err := readProfileFile(f)
		if err != nil {
			return nil, badConfigf("reading %q: %w", f, err)
		}
		e := TrustEntry{File: f, SHA256: contentDigest(data), Trusted: time.Now().UTC().Truncate(time.Second)}
		st.Files = removeEntry(st.Files, f)
		st.Files = append(st.Files, e)
		added = append(added, e)
	}
	return added, st.write(o.store())
}

// Revoke forgets the trust of o.Dir's project files (also of files that are
// gone) and returns the entries it removed.
func Revoke(o TrustOptions) ([]TrustEntry, error) {
	dir, files, err := o.projectFiles()
	if err != nil {
		return nil, err
	}
	st, err := readTrust(o.store())
	if err != nil {
		return nil, err
	}
	// A directory's project files, also those that are gone; or the one
	// file (a manifest) given.
	var candidates []string
	for _, name := range ProjectFiles {
		candidates = append(candidates, filepath.Join(dir, name))
	}
	if len(files) == 1 && filepath.Dir(files[0]) == dir && !slices.Contains(candidates, files[0]) {
		candidates = files
	}
	var removed []TrustEntry
	for _, f := range candidates {
		for _, e := range st.Files {
			if e.File == f {
				removed = append(removed, e)
			}
		}
		st.Files = removeEntry(st.Files, f)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, st.write(o.store())
}

// TrustStatus is a trusted file and whether it still has the content the
// user trusted.
type TrustStatus struct {
	TrustEntry
	// State is "trusted", "changed" (untrusted again until trusted anew) or
	// "missing".
	State string `json:"state"`
}

// ListTrusted lists the recorded trust with each file's state now.
func ListTrusted(o TrustOptions) ([]TrustStatus, error) {
	st, err := readTrust(o.store())
	if err != nil {
		return nil, err
	}
	out := make([]TrustStatus, 0, len(st.Files))
	for _, e := range st.Files {
		s := TrustStatus{TrustEntry: e, State: "trusted"}
		data, err := readProfileFile(e.File)
		switch {
		case err != nil:
			s.State = "missing"
		case contentDigest(data) != e.SHA256:
			s.State = "changed"
		}
		out = append(out, s)
	}
	return out, nil
}

func removeEntry(es []TrustEntry, file string) []TrustEntry {
	out := es[:0]
	for _, e := range es {
		if e.File != file {
			out = append(out, e)
		}
	}
	return out
}

// untrustedLayer is a profile layer from an untrusted project file, with
// the file's directory.
type untrustedLayer struct {
	fileLayer
	dir string
}

// untrustedError is the one line for a setting an untrusted project file
// may not make: where it was written, what it asks for, and the fixes.
func untrustedError(at, dir, what, flag string) error {
	fix := fmt.Sprintf("review the file, then run `sbxrun trust %s`", dir)
	if flag != "" {
		fix += fmt.Sprintf(" (or pass %s yourself)", flag)
	}
	return badConfigf("%s: %s is not allowed from an untrusted project file: %s", at, what, fix)
}

// fromUntrusted says whether an untrusted project file wrote key's value
// (for scalars and mounts, the value that won), where, and that file's
// directory.
func (r *Resolved) fromUntrusted(key string) (at, dir string, ok bool) {
	if len(r.projectDirs) == 0 {
		return "", "", false
	}
	for _, src := range strings.Split(r.Sources[key], ", ") {
		for file, d := range r.projectDirs {
			if src == file || strings.HasPrefix(src, file+":") {
				return src, d, true
			}
		}
	}
	return "", "", false
}

// CheckTrust refuses what an untrusted project file (./sbxrun.yaml of a
// cloned repository) may not ask for. It is an allowlist: such a file may
// choose the image, command, env, workdir, user, limits, GPUs, extra hosts
// and DNS settings (add_hosts, dns*: names inside the sandbox only), tmpfs
// mounts and bind mounts of paths inside its own directory or of the caches the
// built-in profiles declare (Resolved.sandbox confines those), and may
// narrow the sandbox (cap_drop, read_only, network: none, bridge or a
// named network, no-new-privileges). It may not add capabilities, change security options,
// add devices, run privileged or choose a namespace. Flags, --config and
// the files of the user and of root are the user's own choice and are not
// checked; neither is a project file the user trusted with this content.
func CheckTrust(res *Resolved) error {
	p := &res.Profile
	if at, dir, ok := res.fromUntrusted("privileged"); ok && p.Privileged != nil && *p.Privileged {
		return untrustedError(at, dir, "privileged: true", "--privileged")
	}
	if at, dir, ok := res.fromUntrusted("network"); ok && p.Network != nil && !untrustedNetworkOK(*p.Network) {
		return untrustedError(at, dir, "network: "+*p.Network, "--net "+*p.Network)
	}
	for _, l := range res.untrusted {
		if len(l.profile.CapAdd) > 0 {
			c := strings.TrimSpace(l.profile.CapAdd[0])
			return untrustedError(l.at("cap_add"), l.dir, "cap_add: "+c, "--cap-add "+c)
		}
		for _, so := range l.profile.SecurityOpt {
			if kind, value, err := parseSecurityOpt(so); err == nil && kind == "no-new-privileges" && value == "true" {
				continue
			}
			return untrustedError(l.at("security_opt"), l.dir, "security_opt: "+so, "--security-opt "+so)
		}
		if len(l.profile.Devices) > 0 {
			return untrustedError(l.at("devices"), l.dir, "devices: "+strings.Join(l.profile.Devices, ", "), "--device")
		}
	}
	return nil
}

// builtinCaches are the host directories the built-in profiles mount and
// create (model-dev's model caches), as written ("~/.cache/torch"): an
// untrusted project file may mount them too.
func builtinCaches() []string {
	var caches []string
	for _, p := range builtinProfiles() {
		for _, m := range p.Mounts {
			if m.Create {
				caches = append(caches, m.Source)
			}
		}
	}
	sort.Strings(caches)
	return caches
}

// confineMount checks a bind mount an untrusted project file asked for and
// returns the directory its source must stay within: the project directory
// or a built-in cache. The source is checked as written and, when it
// exists, as resolved (a symlink in the repository pointing at /etc is
// refused); the run checks it once more on the descriptor it mounts
// (pinMounts), so it cannot be swapped in between.
func confineMount(at, dir string, m MountSpec, src string, h HostEnv) (string, error) {
	for _, o := range m.Options {
		if o != "private" && o != "rprivate" {
			return "", untrustedError(at, dir, fmt.Sprintf("mount option %q", o), "")
		}
	}
	within := ""
	for _, c := range builtinCaches() {
		if cache, err := expandSource(c, h); err == nil && pathWithin(src, cache) {
			within = cache
		}
	}
	if within == "" && pathWithin(src, dir) {
		within = dir
	}
	outside := func(p string) error {
		return untrustedError(at, dir, fmt.Sprintf("bind mount of %q (outside the project directory %q)", p, dir), "-v")
	}
	if within == "" {
		return "", outside(src)
	}
	// A missing source (create: true) is judged by its nearest existing
	// ancestor: a symlink on the way out of the project is refused before
	// anything is created.
	existing := src
	for {
		if _, err := os.Lstat(existing); err == nil || existing == within || existing == "/" {
			break
		}
		existing = filepath.Dir(existing)
	}
	if resolved, err := filepath.EvalSymlinks(existing); err == nil {
		root, err := filepath.EvalSymlinks(within)
		if (err == nil || !errors.Is(err, fs.ErrNotExist)) && !pathWithin(resolved, root) {
			return "", outside(resolved)
		}
	}
	return within, nil
}

// pathWithin reports whether the clean absolute path p is dir or lies
// under it.
func pathWithin(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// untrustedNetworkOK reports whether an untrusted project file may ask for
// network mode: none, the default bridge and named networks each give the
// sandbox a namespace of its own (more isolated than the host's); host
// and container:NAME (another sandbox's namespace) are the user's choice.
func untrustedNetworkOK(mode string) bool {
	switch mode {
	case "host", "":
		return false
	}
	return !strings.HasPrefix(mode, network.ContainerPrefix)
}
