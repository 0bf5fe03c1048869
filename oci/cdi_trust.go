package oci

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Who may own the files runc acts on as root: CDI spec files, their
// directories, hook binaries and the directories above those.
//
// Inside a user namespace that does not map the whole id range (rootless
// sbxrun runs in RootlessKit's), every host user the namespace does not map
// shows as the kernel's overflow uid: host root, but also any other local
// user. The owner seen there cannot tell them apart, so sbxrun, before it
// enters the namespace (running as the user, in the host's namespaces),
// records the owners of the CDI files it may use as the host sees them
// (HostOwners), and the process inside trusts an overflow-owned file only
// when that record says root owns it (UseHostOwners). Files are matched by
// device, inode and change time, not by path: RootlessKit's copy-up shows
// /etc and /run through symlinks there.

// HostOwnersEnv names the variable that carries HostOwners' record from the
// process that enters the rootless namespaces to the one inside them.
const HostOwnersEnv = "SBXRUN_CDI_HOST_OWNERS"

// maxHostOwners bounds the record, so that it always fits in one
// environment variable (the kernel takes at most 128 KiB per string).
const maxHostOwners = 1024

// fileKey identifies one file across mount and user namespaces.
type fileKey struct {
	dev, ino uint64
	// ctime, in nanoseconds, tells a new file on a reused inode from the
	// recorded one. Directories have none here: theirs changes with every
	// entry added (/tmp's all the time); the directories recorded are root's
	// and nobody else can replace them while they stay (sticky or not).
	ctime int64
}

func keyOf(st *syscall.Stat_t) fileKey {
	k := fileKey{dev: st.Dev, ino: st.Ino}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		k.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return k
}

// hostOwners is the record UseHostOwners accepted: host uid by file.
var hostOwners struct {
	sync.RWMutex
	m map[fileKey]uint32
}

// TrustedUIDs are the owners whose CDI spec files and hook binaries sbxrun
// trusts: root, and the invoking user when sbxrun is not root (rootless
// containerd runs hooks as that user anyway). Inside a user namespace it
// also holds the overflow uid, which stands for host root there; a file of
// that uid passes only when HostOwners recorded it as root's.
func TrustedUIDs() []uint32 {
	uids := []uint32{0}
	if euid := os.Geteuid(); euid != 0 {
		uids = append(uids, uint32(euid))
	}
	if o, ok := overflowUID(); ok {
		uids = append(uids, o)
	}
	return uids
}

// InUserNamespace reports whether this process runs in a user namespace
// that does not map the whole id range: its uid 0 is not the host's root,
// and files of unmapped owners show as the overflow uid.
func InUserNamespace() bool {
	m, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(m))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// overflowUID returns the kernel's overflow uid when this process runs in
// a user namespace that does not map the whole id range.
func overflowUID() (uint32, bool) {
	if !InUserNamespace() {
		return 0, false
	}
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err != nil {
		return 65534, true
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 65534, true
	}
	return uint32(n), true
}

// ownership is a file's owner as sbxrun judges it.
type ownership struct {
	uid     uint32 // the host's uid when the record has it, else the uid seen here
	trusted bool
	unknown bool // the overflow uid, and no record says whose it is
}

// judgeOwner decides whether the owner of st is trusted.
func judgeOwner(st *syscall.Stat_t, trusted []uint32) ownership {
	o := ownership{uid: st.Uid, trusted: slices.Contains(trusted, st.Uid)}
	overflow, inUserns := overflowUID()
	if !inUserns {
		return o
	}
	hostOwners.RLock()
	host, known := hostOwners.m[keyOf(st)]
	hostOwners.RUnlock()
	if known {
		o.uid = host
	}
	if st.Uid != overflow || !o.trusted {
		return o
	}
	// Host root, or any other host user: only the record can tell.
	o.trusted = known && host == 0
	o.unknown = !known
	return o
}

// Why an overflow-owned file is refused when no record says whose it is,
// and the fix.
const (
	unknownOwnerWhy = "which in this user namespace stands for root or any other user outside it, and sbxrun did not check which before entering it"
	unknownOwnerFix = "run sbxrun outside the user namespace: it checks owners on the host before it enters the rootless one"
)

// trustedWho describes the trusted owners for an error message.
func trustedWho(trusted []uint32) string {
	if len(trusted) == 1 && trusted[0] == 0 {
		return "not root"
	}
	return "neither root nor you"
}

// checkDir refuses a spec directory that a user other than a trusted one
// can add files to or replace them in.
func checkDir(dir string, trusted []uint32) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("CDI spec directory %q: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("CDI spec directory %q: cannot read its owner", dir)
	}
	switch o := judgeOwner(st, trusted); {
	case o.unknown:
		return fmt.Errorf("CDI spec directory %q is owned by uid %d, %s: %s", dir, o.uid, unknownOwnerWhy, unknownOwnerFix)
	case !o.trusted:
		return fmt.Errorf("CDI spec directory %q is owned by uid %d, %s: chown root %s", dir, o.uid, trustedWho(trusted), dir)
	}
	// No exception for sticky directories: anyone could still add files,
	// FIFOs or links there.
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("CDI spec directory %q is writable by group or others: chmod go-w %s", dir, dir)
	}
	return nil
}

// CheckTrustedFile checks that fi, the file at path described as what, is
// owned by a trusted user and not writable by group or others. The error
// names the file and the command that fixes it.
func CheckTrustedFile(what, path string, fi fs.FileInfo, trusted []uint32) error {
	return checkTrusted(fmt.Sprintf("%s %q", what, path), path, fi, trusted)
}

// checkTrusted is CheckTrustedFile for a file subject names.
func checkTrusted(subject, path string, fi fs.FileInfo, trusted []uint32) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", subject)
	}
	switch o := judgeOwner(st, trusted); {
	case o.unknown:
		return fmt.Errorf("%s is owned by uid %d, %s: refusing it (%s)", subject, o.uid, unknownOwnerWhy, unknownOwnerFix)
	case !o.trusted:
		return fmt.Errorf("%s is owned by uid %d, %s: refusing it (chown root %s if it is yours to trust)", subject, o.uid, trustedWho(trusted), path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others: refusing it (chmod go-w %s)", subject, path)
	}
	return nil
}

// CheckHookPath checks a hook binary exactly as a run does before it hands
// the hook to runc, which executes it on the host (as root in rootful use):
// an absolute path that resolves to an executable regular file owned by a
// trusted user and not writable by others, in directories that nobody else
// can change. It returns the symlink-free path it checked, which is the
// one to execute: a link on the way could be repointed after the check.
// specPath, when not "", is the CDI spec that names the hook, for errors.
func CheckHookPath(path, specPath string, trusted []uint32) (string, error) {
	of := ""
	if specPath != "" {
		of = fmt.Sprintf(" of CDI spec %q", specPath)
	}
	subject := fmt.Sprintf("hook %q%s", path, of)
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%s is not an absolute path: fix the spec", subject)
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w: regenerate the spec (`sbxrun gpu setup` for NVIDIA GPUs)", subject, unwrapPath(err))
	}
	if resolved != path {
		subject = fmt.Sprintf("hook %q (-> %q)%s", path, resolved, of)
	}
	// Lstat: the resolved path must still be the file itself.
	fi, err := os.Lstat(resolved)
	if err != nil {
		return "", fmt.Errorf("%s: %w: regenerate the spec (`sbxrun gpu setup` for NVIDIA GPUs)", subject, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file: fix the spec", subject)
	}
	if err := checkTrusted(subject, resolved, fi, trusted); err != nil {
		return "", err
	}
	// runc runs the hook by path, later: no directory on the way may let
	// someone else swap the binary in between.
	if err := checkAncestors(resolved, trusted); err != nil {
		return "", fmt.Errorf("%s: %w", subject, err)
	}
	return resolved, nil
}

// unwrapPath drops the *fs.PathError around err, whose path the message
// names already.
func unwrapPath(err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkAncestors checks every directory above path, a symlink-free path:
// each a directory (not a link that could be repointed), owned by a trusted
// user and not writable by group or others (a sticky directory such as
// /tmp is fine: others cannot replace what they do not own there).
func checkAncestors(path string, trusted []uint32) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Lstat(dir)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("cannot read the owner of %q", dir)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%q is not a directory any more (it changed while sbxrun checked it): run sbxrun again", dir)
		}
		o := judgeOwner(st, trusted)
		if o.unknown {
			return fmt.Errorf("it lies in %q, owned by uid %d, %s: %s", dir, o.uid, unknownOwnerWhy, unknownOwnerFix)
		}
		if !o.trusted || (fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0) {
			return fmt.Errorf("it lies in %q, which others can change: install sbxrun in a root-owned directory (e.g. /usr/local/bin) and run `sbxrun gpu setup` again", dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// HostOwners records, as this process sees them, the owners of the files
// whose owner a process inside a rootless user namespace cannot tell: the
// CDI spec directories dirs, the spec files in them, the hook binaries
// those specs (when owned by root or this user) and hooks name, and every
// directory above a hook, resolved and not. Files of this user are left out
// (they show as the namespace's root). It returns the record encoded for
// HostOwnersEnv; sbxrun computes it in the host's namespaces, as the
// invoking user, just before it enters the rootless namespaces.
func HostOwners(dirs []string, hooks ...string) string {
	return hostOwnersOf(uint32(os.Geteuid()), dirs, hooks)
}

// hostOwnersOf is HostOwners for the user self.
func hostOwnersOf(self uint32, dirs, hooks []string) string {
	rec := map[fileKey]uint32{}
	record := func(st *syscall.Stat_t) {
		if st.Uid != self && len(rec) < maxHostOwners {
			rec[keyOf(st)] = st.Uid
		}
	}
	stat := func(path string) (*syscall.Stat_t, bool) {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			record(st)
		}
		return st, ok
	}
	ours := func(st *syscall.Stat_t) bool { return st.Uid == 0 || st.Uid == self }
	var hookPaths []string
	for _, dir := range dirs {
		if !filepath.IsAbs(dir) {
			continue
		}
		st, ok := stat(dir)
		if !ok || !ours(st) {
			continue // its files are refused whatever their owners
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); (ext != ".yaml" && ext != ".json") || e.IsDir() {
				continue
			}
			hookPaths = append(hookPaths, specFileHooks(filepath.Join(dir, e.Name()), record, ours)...)
		}
	}
	for _, h := range append(hookPaths, hooks...) {
		if !filepath.IsAbs(h) {
			continue
		}
		paths := []string{filepath.Clean(h)}
		if r, err := filepath.EvalSymlinks(h); err == nil && r != paths[0] {
			paths = append(paths, r)
		}
		for _, p := range paths {
			stat(p)
			for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
				stat(dir)
				if dir == "/" {
					break
				}
			}
		}
	}
	entries := make([]string, 0, len(rec))
	for k, uid := range rec {
		entries = append(entries, fmt.Sprintf("%d:%d:%d:%d", k.dev, k.ino, k.ctime, uid))
	}
	slices.Sort(entries)
	return strings.Join(entries, ",")
}

// specFileHooks records the owner of the spec file at path and, when ours
// says it is one sbxrun may trust, returns the hook paths it names (at most
// maxHostOwners); a file that cannot be read or parsed names none.
func specFileHooks(path string, record func(*syscall.Stat_t), ours func(*syscall.Stat_t) bool) []string {
	f, err := openRegular(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	record(st)
	if !ours(st) {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil
	}
	type edits struct {
		Hooks []struct {
			Path string `yaml:"path"`
		} `yaml:"hooks"`
	}
	var spec struct {
		ContainerEdits edits `yaml:"containerEdits"`
		Devices        []struct {
			ContainerEdits edits `yaml:"containerEdits"`
		} `yaml:"devices"`
	}
	if yaml.Unmarshal(b, &spec) != nil {
		return nil
	}
	var paths []string
	add := func(e edits) {
		for _, h := range e.Hooks {
			if h.Path != "" && !slices.Contains(paths, h.Path) && len(paths) < maxHostOwners {
				paths = append(paths, h.Path)
			}
		}
	}
	add(spec.ContainerEdits)
	for _, d := range spec.Devices {
		add(d.ContainerEdits)
	}
	return paths
}

// UseHostOwners makes this process, which runs inside the rootless user
// namespace, judge an overflow-owned file by its owner in v, the record
// HostOwners made before entering: trusted only when root owns it there.
// An empty or malformed v trusts no overflow-owned file at all.
func UseHostOwners(v string) {
	m := map[fileKey]uint32{}
	for _, e := range strings.Split(v, ",") {
		if e == "" {
			continue
		}
		f := strings.Split(e, ":")
		if len(f) != 4 {
			m = nil
			break
		}
		dev, err1 := strconv.ParseUint(f[0], 10, 64)
		ino, err2 := strconv.ParseUint(f[1], 10, 64)
		ctime, err3 := strconv.ParseInt(f[2], 10, 64)
		uid, err4 := strconv.ParseUint(f[3], 10, 32)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			m = nil
			break
		}
		m[fileKey{dev: dev, ino: ino, ctime: ctime}] = uint32(uid)
	}
	hostOwners.Lock()
	hostOwners.m = m
	hostOwners.Unlock()
}
