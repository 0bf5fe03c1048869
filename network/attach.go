package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	gocni "github.com/containerd/go-cni"
)

// AttachOptions say which sandbox joins which network.
type AttachOptions struct {
	Paths
	// Network is a network name; "" and "bridge" are DefaultNetwork.
	Network string
	// Namespace and ID are the sandbox's containerd namespace and
	// container ID: together they name everything Attach creates.
	Namespace, ID string
	// Name is the sandbox's name, Hostname its hostname: the names the
	// other members of a named network reach it by, with Aliases.
	Name, Hostname string
	Aliases        []string
	// Ports are the published ports (ResolvePorts).
	Ports []Port
	// ExtraHosts are --add-host values (HOST:IP, checked with
	// ParseAddHost), added to the sandbox's /etc/hosts; HostGateway is
	// the network's gateway.
	ExtraHosts []string
	// DNS replaces the host's resolver settings in the sandbox's
	// /etc/resolv.conf (CheckDNS).
	DNS DNS
}

// Attachment is a sandbox's place on a network.
type Attachment struct {
	// Network is the network's name.
	Network string `json:"network"`
	// NetNSPath is the sandbox's network namespace.
	NetNSPath string `json:"netns"`
	// IP and Gateway are the sandbox's address and its default gateway
	// (empty on an internal network).
	IP      string `json:"ip"`
	Gateway string `json:"gateway,omitempty"`
	// MAC is the hardware address of the sandbox's eth0.
	MAC string `json:"mac,omitempty"`
	// Ports are the published ports.
	Ports []Port `json:"ports,omitempty"`
	// HostsPath and ResolvPath are the sandbox's /etc/hosts and
	// /etc/resolv.conf on the host.
	HostsPath  string `json:"hosts"`
	ResolvPath string `json:"resolv_conf"`
}

// record is what Attach writes before it creates anything, and Detach
// removes after everything is gone: it says what to undo and with which
// configuration.
type record struct {
	Attachment
	Namespace string   `json:"namespace"`
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Hostname  string   `json:"hostname"`
	Aliases   []string `json:"aliases,omitempty"`
	// ExtraHosts are kept for the rewrites of the hosts file.
	ExtraHosts []string        `json:"extra_hosts,omitempty"`
	Conflist   json.RawMessage `json:"conflist"`
	Created    time.Time       `json:"created"`
	// CNIID is the container ID CNI knows the sandbox by.
	CNIID string `json:"cni_id"`
	// Attached is set once CNI ADD has completed. Until then a plugin a
	// killed sbxrun started may still be running: GC leaves such a record
	// alone for addGrace.
	Attached bool `json:"attached"`
	// Pasta is the pasta process of a rootless sandbox's namespace.
	Pasta *PastaInfo `json:"pasta,omitempty"`
	// UserBridge is set when the network's bridge is in the user's
	// bridge namespace (a rootless named network: userbridge.go).
	UserBridge bool `json:"user_bridge,omitempty"`
}

// addGrace is how long GC waits before it undoes an attachment whose
// CNI ADD never completed: long enough for a plugin whose sbxrun was
// killed to finish what it was doing.
const addGrace = 10 * time.Second

// cniID is the container ID CNI sees (recorded as CNIID): unique across
// state directories and containerd namespaces, since portmap's and the
// bridge's chains and libcni's result cache (/var/lib/cni/results) are
// named by it and shared by every CNI user of the host.
func (r *record) cniID() string {
	if r.CNIID != "" {
		return r.CNIID
	}
	return r.Namespace + "-" + r.ID
}

// cniPrefix starts the CNI container IDs of this state directory's
// containerd namespace ns.
func (p Paths) cniPrefix(ns string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(p.StateDir)))
	return "sbx" + hex.EncodeToString(sum[:3]) + "-" + ns + "-"
}

// Resolve maps a --net value to the network it names: "bridge" is the
// default network; "host", "none", "" and container:NAME are not networks
// (ok false).
func Resolve(mode string) (name string, ok bool) {
	switch mode {
	case "", "host", "none":
		return "", false
	case "bridge":
		return DefaultNetwork, true
	}
	if _, ok := ContainerMode(mode); ok {
		return "", false
	}
	return mode, true
}

// ContainerPrefix starts Docker's --net container:NAME: the sandbox joins
// the network namespace of the running sandbox NAME (the containers of a
// pod share one).
const ContainerPrefix = "container:"

// ContainerMode returns the sandbox a --net container:NAME value names.
func ContainerMode(mode string) (name string, ok bool) {
	return strings.CutPrefix(mode, ContainerPrefix)
}

// Check validates that network name can be attached to now: it exists
// (or is the default network) and the CNI plugins its config names are
// installed. It creates nothing.
func Check(p Paths, name string) error {
	if err := Exists(p, name); err != nil {
		return err
	}
	types := []string{"bridge", "host-local", "portmap"}
	if n, found, err := p.load(name); err == nil && found {
		if err := p.checkKind(n); err != nil {
			return err
		}
		types = pluginTypes(n.conflist)
	}
	return CheckPlugins(p, types...)
}

// CheckPlugins reports the first of the CNI plugins types that is not
// installed, with the fix.
func CheckPlugins(p Paths, types ...string) error {
	for _, t := range types {
		if !p.hasPlugin(t) {
			return fmt.Errorf("CNI plugin %q not found in %s: install it (apt-get install containernetworking-plugins) or point SBXRUN_CNI_PATH at its directory", t, strings.Join(p.PluginDirs, ":"))
		}
	}
	return nil
}

func pluginTypes(conflist []byte) []string {
	var l struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Type string `json:"type"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	_ = json.Unmarshal(conflist, &l)
	var out []string
	for _, pl := range l.Plugins {
		out = append(out, pl.Type)
		if pl.IPAM.Type != "" {
			out = append(out, pl.IPAM.Type)
		}
	}
	return out
}

func (p Paths) hasPlugin(t string) bool {
	for _, d := range p.PluginDirs {
		if fi, err := os.Stat(filepath.Join(d, t)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// Attach gives sandbox o.ID its network: the network namespace at
// NetNSPath, an address on the network's bridge, its published ports, and
// its /etc/hosts and /etc/resolv.conf. On failure everything it created
// is removed again. The caller undoes a success with Detach.
func Attach(ctx context.Context, o AttachOptions) (*Attachment, error) {
	p, err := Begin(ctx, o)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Pending is an attachment under way: its namespace and files exist (a
// task may be created in it), CNI ADD is running.
type Pending struct {
	done chan struct{}
	a    *Attachment
	err  error
}

// Wait waits until the attachment is complete; on an error everything
// Begin created is gone again.
func (pd *Pending) Wait() (*Attachment, error) {
	<-pd.done
	return pd.a, pd.err
}

// Begin is Attach in two steps, so the slowest part overlaps the
// creation of the task: it returns once the network namespace and the
// sandbox's /etc/hosts and /etc/resolv.conf exist, and runs CNI ADD in the
// background; the workload must not start before Wait returns.
func Begin(ctx context.Context, o AttachOptions) (*Pending, error) {
	name, ok := Resolve(o.Network)
	if !ok {
		return nil, fmt.Errorf("network %q is not a network to attach to: use bridge or a network name", o.Network)
	}
	p := o.Paths
	if p.Rootless && name == DefaultNetwork {
		return beginPasta(ctx, o)
	}
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	n, found, err := p.load(name)
	if err != nil {
		return nil, err
	}
	if !found {
		if name != DefaultNetwork {
			return nil, Exists(p, name)
		}
		if n, err = p.create(CreateOptions{Paths: p, Name: name}); err != nil {
			return nil, fmt.Errorf("creating the default network: %w", err)
		}
	}
	if err := p.checkKind(n); err != nil {
		return nil, err
	}
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	others := recs[:0:0]
	for _, r := range recs {
		if r.Namespace != o.Namespace || r.ID != o.ID {
			others = append(others, r)
		}
	}
	if err := portsTaken(o, recs); err != nil {
		return nil, err
	}
	r := &record{
		Attachment: Attachment{
			Network:    name,
			NetNSPath:  p.NetNSPath(o.Namespace, o.ID),
			Ports:      o.Ports,
			HostsPath:  p.HostsPath(o.Namespace, o.ID),
			ResolvPath: p.ResolvPath(o.Namespace, o.ID),
		},
		Namespace: o.Namespace, ID: o.ID, Name: o.Name, Hostname: o.Hostname, Aliases: o.Aliases,
		ExtraHosts: o.ExtraHosts,
		Conflist:   n.conflist, Created: time.Now().UTC(), CNIID: p.cniPrefix(o.Namespace) + o.ID,
		UserBridge: n.Rootless,
	}
	if len(o.Ports) == 0 {
		// portmap has nothing to do: one plugin execution less each way.
		r.Conflist = withoutPlugin(n.conflist, "portmap")
	}
	if err := p.stage(ctx, r, o.DNS, others); err != nil {
		return nil, err
	}
	locked = false
	return p.background(ctx, r, unlock, func() (*Attachment, error) {
		if r.UserBridge {
			return p.addUser(ctx, r, n, others)
		}
		// The guard rules (an iptables-save, and a restore when one is
		// missing) are in place before ADD gives the namespace its
		// link: in the background too, off the run's critical path.
		if br := bridgeOf(n.conflist); br != "" {
			if err := ensureGuards(br, n.Subnet, n.Internal); err != nil {
				return nil, err
			}
		}
		return p.add(ctx, r, n, others)
	}), nil
}

// background completes staged attachment r with add, in the background
// and under the lock (unlock releases it once add is done); what add
// fails to complete is undone.
func (p Paths) background(ctx context.Context, r *record, unlock func(), add func() (*Attachment, error)) *Pending {
	pd := &Pending{done: make(chan struct{})}
	go func() {
		defer close(pd.done)
		defer unlock()
		pd.a, pd.err = add()
		if pd.err != nil {
			_ = p.detach(context.WithoutCancel(ctx), r)
		}
	}()
	return pd
}

// stage lays out what a sandbox's attachment needs before its task is
// created, for a CNI network and for pasta alike: what a killed run of the
// same sandbox left is undone, then r's record, its network namespace, its
// /etc/resolv.conf (with dns) and a first /etc/hosts (with others' names;
// rewritten in place once the sandbox has its address). On failure it
// undoes what it made.
func (p Paths) stage(ctx context.Context, r *record, dns DNS, others []*record) (err error) {
	if old, err := p.readRecord(r.Namespace, r.ID); err == nil {
		_ = p.detach(ctx, old)
	}
	if err := p.writeRecord(r); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = p.detach(context.WithoutCancel(ctx), r)
		}
	}()
	if err := newNetNS(r.NetNSPath); err != nil {
		return err
	}
	if err := os.WriteFile(r.ResolvPath, withDNS(resolvConf(), dns), 0o644); err != nil {
		return fmt.Errorf("writing %q: %w", r.ResolvPath, err)
	}
	if err := os.WriteFile(r.HostsPath, hostsFile(r, others), 0o644); err != nil {
		return fmt.Errorf("writing %q: %w", r.HostsPath, err)
	}
	return nil
}

// add runs CNI ADD for r and completes its record and hosts files.
func (p Paths) add(ctx context.Context, r *record, n *Network, others []*record) (*Attachment, error) {
	res, err := p.cniAdd(ctx, r)
	if err != nil {
		return nil, err
	}
	if cfg, ok := res.Interfaces["eth0"]; ok {
		r.MAC = cfg.Mac
		for _, ip := range cfg.IPConfigs {
			if ip.IP.To4() != nil {
				r.IP = ip.IP.String()
				if ip.Gateway != nil {
					r.Gateway = ip.Gateway.String()
				}
				break
			}
		}
	}
	if r.IP == "" {
		return nil, fmt.Errorf("network %q gave sandbox %q no IPv4 address: check %q", r.Network, r.Name, n.ConfigFile)
	}
	return p.complete(r, others)
}

// complete records r as attached (its address known) and rewrites the
// hosts files of its network's members, r's among them.
func (p Paths) complete(r *record, others []*record) (*Attachment, error) {
	r.Attached = true
	if err := p.writeRecord(r); err != nil {
		return nil, err
	}
	if err := p.refreshHosts(append(others, r), r); err != nil {
		return nil, err
	}
	a := r.Attachment
	return &a, nil
}

// Detach undoes Attach for sandbox id of containerd namespace ns: CNI DEL
// with the configuration ADD used (so ports, masquerading and the address
// are released even if the network's config changed or is gone), then the
// network namespace and the sandbox's files. Detaching a sandbox that has
// no network is a no-op.
func Detach(ctx context.Context, p Paths, ns, id string) error {
	unlock, err := p.lock()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := p.readRecord(ns, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return p.detach(ctx, r)
}

// detach is Detach under the lock.
func (p Paths) detach(ctx context.Context, r *record) error {
	// On failure the record and the namespace stay, for gc to try again:
	// the bridge plugin finds the masquerading rules to remove through
	// the addresses in the namespace.
	// pasta first: its ports are free once Detach returns.
	if r.UserBridge {
		// pasta's end and CNI DEL at the same time.
		stopped := make(chan struct{})
		go func() { stopPasta(r.Pasta); close(stopped) }()
		err := p.userDel(ctx, r)
		<-stopped
		if err != nil {
			return err
		}
	} else {
		stopPasta(r.Pasta)
		var unfinished []string
		if !r.Attached {
			unfinished = p.allocated(r.cniID())
		}
		if err := p.cniDel(ctx, r); err != nil {
			return err
		}
		if len(unfinished) > 0 {
			removeFirewallRules(unfinished)
		}
	}
	if err := removeNetNS(r.NetNSPath); err != nil {
		return err
	}
	_ = os.Remove(r.HostsPath)
	_ = os.Remove(r.ResolvPath)
	if err := os.Remove(p.recordPath(r.Namespace, r.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing network record: %w", err)
	}
	if recs, err := p.records(); err == nil {
		_ = p.refreshHosts(recs, nil)
		if r.UserBridge {
			_ = p.dropBridgeNS(recs)
		}
	}
	return nil
}

// GC detaches the sandboxes of containerd namespace ns that no longer
// exist (exists reports false; one whose CNI ADD never completed only
// after addGrace), removes network namespaces nothing records, and
// address allocations of no recorded sandbox. It returns the
// names of the sandboxes it detached.
func GC(ctx context.Context, p Paths, ns string, exists func(id string) bool) ([]string, error) {
	if _, err := os.Stat(p.StateDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	live := map[string]bool{}
	netns := map[string]bool{}
	for _, r := range recs {
		if r.Namespace == ns && !exists(r.ID) && (r.Attached || time.Since(r.Created) > addGrace) {
			if err := p.detach(ctx, r); err != nil {
				errs = append(errs, fmt.Errorf("detaching %s/%s: %w", r.Namespace, r.Name, err))
				live[r.cniID()] = true
				netns[r.NetNSPath] = true
				continue
			}
			done = append(done, r.Name)
			continue
		}
		live[r.cniID()] = true
		netns[r.NetNSPath] = true
	}
	// Namespaces of this containerd namespace without a record: a run
	// killed between creating one and writing... never, as the record
	// comes first; but a record removed by hand leaves one.
	if entries, err := os.ReadDir(p.NetNSDir); err == nil {
		for _, e := range entries {
			path := filepath.Join(p.NetNSDir, e.Name())
			if strings.HasPrefix(e.Name(), ns+"-") && !netns[path] {
				if err := removeNetNS(path); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	// libcni's cached results (rootless networks) of no recorded sandbox:
	// results/NETWORK-CNIID-eth0.
	results, _ := filepath.Glob(filepath.Join(p.cacheDir(), "results", "*"))
	for _, f := range results {
		name := strings.TrimSuffix(filepath.Base(f), "-eth0")
		if i := strings.Index(name, p.cniPrefix(ns)); i >= 0 && !live[name[i:]] {
			_ = os.Remove(f)
		}
	}
	// The user's bridge namespace, when no attachment is left in it.
	if recs, err := p.records(); err == nil {
		if err := p.dropBridgeNS(recs); err != nil {
			errs = append(errs, err)
		}
	}
	// host-local allocations whose owner has no record.
	files, _ := filepath.Glob(filepath.Join(p.ipamDir(), "*", "*"))
	for _, f := range files {
		if _, err := netip.ParseAddr(filepath.Base(f)); err != nil {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		owner := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if strings.HasPrefix(owner, p.cniPrefix(ns)) && !live[owner] {
			_ = os.Remove(f)
		}
	}
	return done, errors.Join(errs...)
}

// Lookup returns the attachment of sandbox id in namespace ns, nil when
// it has none.
func Lookup(p Paths, ns, id string) (*Attachment, error) {
	r, err := p.readRecord(ns, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := r.Attachment
	return &a, nil
}

func (p Paths) readRecord(ns, id string) (*record, error) {
	b, err := os.ReadFile(p.recordPath(ns, id))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading network record %q: %w", p.recordPath(ns, id), err)
	}
	return &r, nil
}

func (p Paths) writeRecord(r *record) error {
	dir := p.attachDir(r.Namespace)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating network state directory %q: %w", dir, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := p.recordPath(r.Namespace, r.ID)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing network record %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing network record %q: %w", path, err)
	}
	return nil
}

// records are every attachment in StateDir, of every namespace.
func (p Paths) records() ([]*record, error) {
	files, err := filepath.Glob(filepath.Join(p.attachRoot(), "*", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var r record
		if json.Unmarshal(b, &r) != nil || r.ID == "" {
			continue
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// cni is a go-cni instance for one configuration list.
func (p Paths) cni(conflist []byte) (gocni.CNI, error) {
	c, err := gocni.New(gocni.WithPluginDir(p.PluginDirs), gocni.WithInterfacePrefix("eth"), gocni.WithMinNetworkCount(1))
	if err != nil {
		return nil, err
	}
	if err := c.Load(gocni.WithConfListBytes(conflist)); err != nil {
		return nil, fmt.Errorf("loading network config: %w", err)
	}
	return c, nil
}

func portMappings(ports []Port) []gocni.PortMapping {
	var pm []gocni.PortMapping
	for _, p := range ports {
		pm = append(pm, gocni.PortMapping{HostPort: int32(p.HostPort), ContainerPort: int32(p.ContainerPort), Protocol: p.Protocol, HostIP: p.HostIP})
	}
	return pm
}

func (p Paths) cniAdd(ctx context.Context, r *record) (*gocni.Result, error) {
	c, err := p.cni(r.Conflist)
	if err != nil {
		return nil, err
	}
	res, err := c.Setup(ctx, r.cniID(), r.NetNSPath, gocni.WithCapabilityPortMap(portMappings(r.Ports)))
	if err != nil {
		return nil, fmt.Errorf("attaching sandbox %q to network %q: %w", r.Name, r.Network, err)
	}
	return res, nil
}

func (p Paths) cniDel(ctx context.Context, r *record) error {
	if len(r.Conflist) == 0 || string(r.Conflist) == "null" {
		return nil
	}
	c, err := p.cni(r.Conflist)
	if err != nil {
		return err
	}
	path := r.NetNSPath
	if !isNetNS(path) {
		// Missing, or a file a run killed before the mount left: plugins
		// release addresses and rules without the namespace.
		path = ""
	}
	if err := c.Remove(ctx, r.cniID(), path, gocni.WithCapabilityPortMap(portMappings(r.Ports))); err != nil {
		return fmt.Errorf("detaching sandbox %q from network %q: %w", r.Name, r.Network, err)
	}
	return nil
}

// withoutPlugin is conflist without the plugins of type typ (conflist
// itself when it cannot be read).
func withoutPlugin(conflist []byte, typ string) []byte {
	var l map[string]any
	if json.Unmarshal(conflist, &l) != nil {
		return conflist
	}
	plugins, ok := l["plugins"].([]any)
	if !ok {
		return conflist
	}
	var keep []any
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == typ {
			continue
		}
		keep = append(keep, p)
	}
	l["plugins"] = keep
	b, err := json.Marshal(l)
	if err != nil {
		return conflist
	}
	return b
}

// allocated are the addresses host-local holds for CNI container id.
func (p Paths) allocated(id string) []string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(p.ipamDir(), "*", "*"))
	for _, f := range files {
		if _, err := netip.ParseAddr(filepath.Base(f)); err != nil {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil && strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]) == id {
			out = append(out, filepath.Base(f))
		}
	}
	return out
}
