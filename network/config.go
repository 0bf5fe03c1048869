package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Network is one CNI network as sbxrun sees it.
type Network struct {
	// Name is the network's name (its conflist's "name").
	Name string `json:"name"`
	// Subnet is the IPv4 range its sandboxes get addresses from.
	Subnet string `json:"subnet"`
	// Gateway is the bridge's address, empty for an internal network.
	Gateway string `json:"gateway,omitempty"`
	// Bridge is the host's bridge interface.
	Bridge string `json:"bridge"`
	// Internal networks have no route out and no masquerading.
	Internal bool `json:"internal"`
	// ConfigFile is the conflist the network is defined by.
	ConfigFile string `json:"config_file"`
	// Members are the sandboxes attached to it, "NAMESPACE/NAME".
	Members []string `json:"members"`
	// Rootless networks are rootless sbxrun's: their bridge is in the
	// user's bridge namespace, their way out each sandbox's pasta
	// (userbridge.go).
	Rootless bool `json:"rootless,omitempty"`

	conflist []byte
}

// CreateOptions are the settings of `sbxrun network create`.
type CreateOptions struct {
	Paths
	// Name of the network.
	Name string
	// Subnet is an IPv4 CIDR; empty picks a /16 no host route and no other
	// network uses.
	Subnet string
	// Internal leaves the network without a route out.
	Internal bool
}

// conflist is the CNI configuration list sbxrun writes for a network.
type conflist struct {
	CNIVersion string           `json:"cniVersion"`
	Name       string           `json:"name"`
	Plugins    []map[string]any `json:"plugins"`
}

// render is the configuration list of a network: a bridge with
// host-local addresses (state under ipamDir), a default route unless
// internal (masquerading is sbxrun's: guard.go), and published ports
// (portmap, which also lets the host's 127.0.0.1 reach them).
func render(name, bridge, subnet, ipamDir string, internal bool) ([]byte, error) {
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": subnet}}},
		"dataDir": ipamDir,
	}
	if !internal {
		ipam["routes"] = []map[string]string{{"dst": "0.0.0.0/0"}}
	}
	br := map[string]any{
		"type":        "bridge",
		"bridge":      bridge,
		"isGateway":   !internal,
		"ipMasq":      false, // SBXRUN-MASQ, one rule pair per network (guard.go)
		"hairpinMode": true,
		"ipam":        ipam,
	}
	l := conflist{CNIVersion: "1.0.0", Name: name, Plugins: []map[string]any{br}}
	if !internal {
		l.Plugins = append(l.Plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	}
	// No firewall plugin: sbxrun's SBXRUN-FORWARD rules, two per network
	// (guard.go), let the network's traffic through a FORWARD chain that
	// drops, where the plugin ran iptables a dozen times per sandbox.
	return json.MarshalIndent(l, "", "  ")
}

// parse reads what sbxrun needs from a conflist: name, bridge, subnet and
// whether it is internal (no gateway).
func parse(path string, b []byte) (*Network, error) {
	var l struct {
		Name   string `json:"name"`
		Sbxrun struct {
			Uplink string `json:"uplink"`
		} `json:"sbxrun"`
		Plugins []struct {
			Type      string `json:"type"`
			Bridge    string `json:"bridge"`
			IsGateway bool   `json:"isGateway"`
			IPAM      struct {
				Subnet string `json:"subnet"`
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("reading network config %q: %w: fix or remove the file", path, err)
	}
	n := &Network{Name: l.Name, ConfigFile: path, conflist: b, Members: []string{}}
	for _, p := range l.Plugins {
		if p.Type != "bridge" {
			continue
		}
		n.Bridge = p.Bridge
		n.Internal = !p.IsGateway
		n.Subnet = p.IPAM.Subnet
		if len(p.IPAM.Ranges) > 0 && len(p.IPAM.Ranges[0]) > 0 {
			n.Subnet = p.IPAM.Ranges[0][0].Subnet
		}
	}
	if u := l.Sbxrun.Uplink; u != "" {
		// Each sandbox's pasta is its gateway.
		n.Rootless, n.Internal = true, u == uplinkNone
		return n, nil
	}
	if pfx, err := netip.ParsePrefix(n.Subnet); err == nil && !n.Internal {
		n.Gateway = pfx.Masked().Addr().Next().String()
	}
	return n, nil
}

// load reads network name from its conflist; found is false when there is
// none.
func (p Paths) load(name string) (n *Network, found bool, err error) {
	path := p.confPath(name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading network config %q: %w", path, err)
	}
	n, err = parse(path, b)
	if err != nil {
		return nil, true, err
	}
	if n.Name != name {
		return nil, true, fmt.Errorf("network config %q names network %q: rename the file to %s.conflist or set \"name\" to %q", path, n.Name, n.Name, name)
	}
	return n, true, nil
}

// all reads every network in ConfDir.
func (p Paths) all() ([]*Network, error) {
	files, err := filepath.Glob(filepath.Join(p.ConfDir, "*.conflist"))
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, f := range files {
		n, _, err := p.load(strings.TrimSuffix(filepath.Base(f), ".conflist"))
		if err != nil {
			return nil, err
		}
		if n != nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Exists reports whether network name can be used: it has a config, or it
// is the default network, which is created on first use.
func Exists(p Paths, name string) error {
	if name == DefaultNetwork {
		return nil
	}
	_, found, err := p.load(name)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no network named %q: create it with `sbxrun network create %s` (`sbxrun network ls` lists networks)", name, name)
	}
	return nil
}

// Create writes the conflist of a new network. The bridge itself appears
// when the first sandbox attaches.
func Create(o CreateOptions) (*Network, error) {
	if err := CheckName(o.Name); err != nil {
		return nil, err
	}
	if o.Rootless && o.Name == DefaultNetwork {
		return nil, fmt.Errorf("%q is the default network, which rootless sbxrun gives each sandbox of its own through pasta: choose another name", o.Name)
	}
	unlock, err := o.Paths.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return o.Paths.create(o)
}

// create is Create under the lock.
func (p Paths) create(o CreateOptions) (*Network, error) {
	if _, found, _ := p.load(o.Name); found {
		return nil, fmt.Errorf("a network named %q already exists: choose another name, or remove it with `sbxrun network rm %s`", o.Name, o.Name)
	}
	used, err := p.usedSubnets()
	if err != nil {
		return nil, err
	}
	subnet := o.Subnet
	if subnet == "" {
		if subnet, err = pickSubnet(used); err != nil {
			return nil, err
		}
	} else if subnet, err = checkSubnet(subnet, used); err != nil {
		return nil, err
	}
	var b []byte
	if p.Rootless {
		b, err = json.MarshalIndent(renderUser(o.Name, p.bridgeName(o.Name), subnet, p.ipamDir(), o.Internal), "", "  ")
	} else {
		b, err = render(o.Name, p.bridgeName(o.Name), subnet, p.ipamDir(), o.Internal)
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.ConfDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating network config directory %q: %w", p.ConfDir, err)
	}
	path := p.confPath(o.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("writing network config %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("writing network config %q: %w", path, err)
	}
	return parse(path, b)
}

// usedSubnets are the IPv4 ranges a new network must not overlap: the
// host's routes (but the default route) and the other networks' subnets,
// in this configuration directory and in the default one.
func (p Paths) usedSubnets() ([]used, error) {
	var out []used
	routes, err := hostRoutes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		out = append(out, used{r.pfx, fmt.Sprintf("the host's route to %s via %s", r.pfx, r.dev)})
	}
	dirs := []Paths{p}
	if !p.defaultConfDir() {
		dirs = append(dirs, Paths{ConfDir: DefaultConfDir})
	}
	for _, d := range dirs {
		nets, err := d.all()
		if err != nil {
			// A broken config elsewhere must not stop this one.
			continue
		}
		for _, n := range nets {
			if pfx, err := netip.ParsePrefix(n.Subnet); err == nil {
				out = append(out, used{pfx.Masked(), fmt.Sprintf("network %q (%s)", n.Name, n.ConfigFile)})
			}
		}
	}
	return out, nil
}

type used struct {
	pfx netip.Prefix
	by  string
}

// candidates are the subnets tried for a new network, CNI's habit first.
var candidates = func() []netip.Prefix {
	var c []netip.Prefix
	for i := 88; i < 128; i++ {
		c = append(c, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	for i := 20; i < 32; i++ {
		c = append(c, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	return c
}()

// pickSubnet is the first candidate that overlaps nothing used.
func pickSubnet(taken []used) (string, error) {
next:
	for _, c := range candidates {
		for _, u := range taken {
			if c.Overlaps(u.pfx) {
				continue next
			}
		}
		return c.String(), nil
	}
	return "", errors.New("no free subnet among 10.88-127.0.0/16 and 172.20-31.0.0/16: give one with `sbxrun network create --subnet CIDR NAME`")
}

// checkSubnet validates a subnet the user gave and returns it in its
// canonical form.
func checkSubnet(s string, taken []used) (string, error) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil || !pfx.Addr().Is4() {
		return "", fmt.Errorf("invalid subnet %q: use an IPv4 CIDR such as 10.99.0.0/24", s)
	}
	if pfx.Bits() > 29 || pfx.Bits() < 8 {
		return "", fmt.Errorf("invalid subnet %q: use a prefix length from /8 to /29", s)
	}
	pfx = pfx.Masked()
	if !pfx.Addr().IsPrivate() {
		return "", fmt.Errorf("subnet %s is not a private range: use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16", pfx)
	}
	for _, u := range taken {
		if pfx.Overlaps(u.pfx) {
			return "", fmt.Errorf("subnet %s overlaps %s: choose another --subnet", pfx, u.by)
		}
	}
	return pfx.String(), nil
}

type route struct {
	pfx netip.Prefix
	dev string
}

// hostRoutes are the host's IPv4 routes, but the default route, from
// /proc/net/route (a variable for tests).
var hostRoutes = func() ([]route, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("reading the host's routes: %w", err)
	}
	return parseRoutes(string(b)), nil
}

// parseRoutes reads /proc/net/route: destination and mask are hex in host
// (little-endian) byte order.
func parseRoutes(s string) []route {
	var out []route
	for _, line := range strings.Split(s, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		var dst, mask uint32
		if _, err := fmt.Sscanf(f[1], "%X", &dst); err != nil {
			continue
		}
		if _, err := fmt.Sscanf(f[7], "%X", &mask); err != nil {
			continue
		}
		if mask == 0 {
			continue // the default route
		}
		d := netip.AddrFrom4([4]byte{byte(dst), byte(dst >> 8), byte(dst >> 16), byte(dst >> 24)})
		m := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
		bits, _ := m.Size()
		out = append(out, route{netip.PrefixFrom(d, bits).Masked(), f[0]})
	}
	return out
}

// List returns every network in ConfDir with its members, by name. The
// default network is listed once it exists.
func List(p Paths) ([]*Network, error) {
	nets, err := p.all()
	if err != nil {
		return nil, err
	}
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		n.Members = membersOf(recs, n.Name)
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
	return nets, nil
}

// Inspect returns network name with its members and its conflist.
func Inspect(p Paths, name string) (*Network, []byte, error) {
	n, found, err := p.load(name)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, fmt.Errorf("no network named %q: `sbxrun network ls` lists networks", name)
	}
	recs, err := p.records()
	if err != nil {
		return nil, nil, err
	}
	n.Members = membersOf(recs, name)
	return n, n.conflist, nil
}

func membersOf(recs []*record, name string) []string {
	out := []string{}
	for _, r := range recs {
		if r.Network == name {
			out = append(out, r.Namespace+"/"+r.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Remove deletes network name: its conflist, its bridge and its address
// allocations. A network a sandbox is attached to is refused.
func Remove(p Paths, name string) error {
	unlock, err := p.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return p.remove(name)
}

func (p Paths) remove(name string) error {
	n, found, err := p.load(name)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no network named %q: `sbxrun network ls` lists networks", name)
	}
	recs, err := p.records()
	if err != nil {
		return err
	}
	if m := membersOf(recs, name); len(m) > 0 {
		return fmt.Errorf("network %q is in use by %s: remove those sandboxes first (`sbxrun rm -f NAME`)", name, strings.Join(m, ", "))
	}
	if err := os.Remove(n.ConfigFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing network config %q: %w", n.ConfigFile, err)
	}
	if n.Bridge != "" && n.Rootless {
		if err := p.removeUserBridge(n.Bridge); err != nil {
			return fmt.Errorf("removing bridge %s of network %q: %w", n.Bridge, name, err)
		}
	} else if n.Bridge != "" {
		_ = removeGuards(n.Bridge, n.Subnet)
		if err := deleteLink(n.Bridge); err != nil {
			return fmt.Errorf("removing bridge %s of network %q: %w", n.Bridge, name, err)
		}
	}
	_ = os.RemoveAll(filepath.Join(p.ipamDir(), name))
	return nil
}

// Prune removes every network no sandbox is attached to, but the default
// one, and returns their names.
func Prune(p Paths) ([]string, error) {
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	nets, err := p.all()
	if err != nil {
		return nil, err
	}
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, n := range nets {
		if n.Name == DefaultNetwork || len(membersOf(recs, n.Name)) > 0 {
			continue
		}
		if err := p.remove(n.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, n.Name)
	}
	return removed, errors.Join(errs...)
}

// bridgeOf is the bridge a conflist's bridge plugin uses, "" when none.
func bridgeOf(conflist []byte) string {
	n, err := parse("", conflist)
	if err != nil {
		return ""
	}
	return n.Bridge
}
