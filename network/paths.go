package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
)

// DefaultNetwork is the network `--net bridge` uses; it is created on
// first use.
const DefaultNetwork = "sbxrun"

// DefaultConfDir holds the CNI configuration lists of sbxrun's networks.
const DefaultConfDir = "/etc/sbxrun/cni"

// DefaultPluginDirs are where CNI plugins are looked for: Debian's
// containernetworking-plugins, then the upstream default.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Paths says where network configuration and state live. The runtime
// derives it from sbxrun's state directory (DefaultPaths); tests point it
// at temporary directories.
type Paths struct {
	// ConfDir holds NAME.conflist, one CNI configuration list per network.
	ConfDir string
	// StateDir holds what sbxrun creates per sandbox: attachment records,
	// hosts and resolv.conf files, and host-local's address allocations.
	StateDir string
	// NetNSDir holds the sandboxes' network namespaces (bind mounts).
	NetNSDir string
	// PluginDirs are searched for CNI plugin binaries.
	PluginDirs []string
	// Rootless is set for rootless sbxrun (inside RootlessKit's user
	// namespace): the default network is pasta's, and named networks'
	// bridges are in the user's bridge namespace (userbridge.go).
	Rootless bool
}

// DefaultPaths is the layout under sbxrun's state directory stateDir:
// configs in SBXRUN_CNI_CONF_DIR or DefaultConfDir, state in
// stateDir/cni, namespaces in stateDir/netns, plugins in SBXRUN_CNI_PATH
// (colon-separated) or DefaultPluginDirs.
func DefaultPaths(stateDir string) Paths {
	p := Paths{
		ConfDir:    DefaultConfDir,
		StateDir:   filepath.Join(stateDir, "cni"),
		NetNSDir:   filepath.Join(stateDir, "netns"),
		PluginDirs: DefaultPluginDirs,
	}
	if d := os.Getenv("SBXRUN_CNI_CONF_DIR"); d != "" {
		p.ConfDir = d
	}
	if d := os.Getenv("SBXRUN_CNI_PATH"); d != "" {
		p.PluginDirs = filepath.SplitList(d)
	}
	return p
}

// NetNSPath is where the network namespace of sandbox id in containerd
// namespace ns is mounted. It is known before the namespace exists, so the
// spec (and `sbxrun spec`) can name it.
func (p Paths) NetNSPath(ns, id string) string {
	return filepath.Join(p.NetNSDir, ns+"-"+id)
}

// HostsPath is the sandbox's /etc/hosts, which Attach writes and keeps in
// step with the other members of its network.
func (p Paths) HostsPath(ns, id string) string {
	return filepath.Join(p.attachDir(ns), id+".hosts")
}

// ResolvPath is the sandbox's /etc/resolv.conf, which Attach writes.
func (p Paths) ResolvPath(ns, id string) string {
	return filepath.Join(p.attachDir(ns), id+".resolv.conf")
}

func (p Paths) attachRoot() string         { return filepath.Join(p.StateDir, "attachments") }
func (p Paths) attachDir(ns string) string { return filepath.Join(p.attachRoot(), ns) }
func (p Paths) recordPath(ns, id string) string {
	return filepath.Join(p.attachDir(ns), id+".json")
}
func (p Paths) ipamDir() string               { return filepath.Join(p.StateDir, "networks") }
func (p Paths) confPath(name string) string   { return filepath.Join(p.ConfDir, name+".conflist") }
func (p Paths) defaultConfDir() bool          { return filepath.Clean(p.ConfDir) == DefaultConfDir }
func (p Paths) lockPath() string              { return filepath.Join(p.StateDir, ".lock") }
func (p Paths) bridgeName(name string) string { return bridgeName(p.ConfDir, name, p.defaultConfDir()) }

// bridgeName is the Linux bridge of network name: sbxrun0 for the default
// network in the default configuration directory, else "sbx-" and a hash
// of the directory and name (interface names have at most 15 bytes, and
// two configuration directories must not share a bridge).
func bridgeName(confDir, name string, defaultDir bool) string {
	if defaultDir && name == DefaultNetwork {
		return "sbxrun0"
	}
	sum := sha256.Sum256([]byte(filepath.Clean(confDir) + "\x00" + name))
	return "sbx-" + hex.EncodeToString(sum[:4])
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// CheckName accepts the names a network may have: letters, digits, '_',
// '.' and '-', at most 63, not one of the modes --net takes.
func CheckName(name string) error {
	switch name {
	case "host", "none", "bridge", "default", "container":
		return fmt.Errorf("%q is a network mode, not a network name: choose another name", name)
	case PastaNetwork:
		return fmt.Errorf("%q is the name rootless sandboxes' own networks are recorded under: choose another name", name)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid network name %q: use letters, digits, '_', '.' and '-' (at most 63, starting with a letter or digit)", name)
	}
	return nil
}

var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62})$`)

// CheckAlias accepts a --network-alias: a host name (letters, digits,
// '_', '.' and '-', at most 63), as it goes into /etc/hosts.
func CheckAlias(a string) error {
	if !aliasRE.MatchString(a) {
		return fmt.Errorf("invalid --network-alias %q: use a host name of letters, digits, '_', '.' and '-' (at most 63, starting with a letter or digit)", a)
	}
	return nil
}

// lock takes sbxrun's network lock: attach, detach and network changes
// are one at a time per state directory.
func (p Paths) lock() (func(), error) {
	if err := os.MkdirAll(p.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating network state directory %q: %w", p.StateDir, err)
	}
	f, err := os.OpenFile(p.lockPath(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening network lock %q: %w", p.lockPath(), err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %q: %w", p.lockPath(), err)
	}
	return func() { f.Close() }, nil
}
