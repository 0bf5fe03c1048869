package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/profiles"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// Labels of a sandbox on a CNI network: the network, and the published
// ports as `ps` and `port` show them (network.FormatPorts).
const (
	LabelNetwork = "sbxrun.network"
	LabelPorts   = "sbxrun.ports"
)

// netPaths is where this sbxrun keeps network configuration and state.
func (g *Global) netPaths() network.Paths { return netPathsAt(g.stateDir()) }

// netPathsAt is network.DefaultPaths for state directory dir; rootless,
// the networks are the user's own, configured in
// $XDG_CONFIG_HOME/sbxrun/cni (~/.config/sbxrun/cni) unless
// SBXRUN_CNI_CONF_DIR says otherwise.
func netPathsAt(dir string) network.Paths {
	p := network.DefaultPaths(dir)
	if rootless.Active() {
		p.Rootless = true
		if os.Getenv("SBXRUN_CNI_CONF_DIR") == "" {
			if cfg, err := os.UserConfigDir(); err == nil {
				p.ConfDir = filepath.Join(cfg, "sbxrun", "cni")
			} else {
				// Neither HOME nor XDG_CONFIG_HOME: beside the state.
				p.ConfDir = filepath.Join(dir, "cni-conf")
			}
		}
	}
	return p
}

// planNetwork prepares a sandbox on a CNI network (bridge or a name)
// without creating anything: the network must exist (the default one is
// created on first use) with its plugins installed, the published ports
// must be free, and the spec gets the paths of the namespace, hosts and
// resolv.conf files that Attach creates before the task starts.
func (o *RunOptions) planNetwork(sb *oci.Sandbox) error {
	name, cni := network.Resolve(sb.Network)
	if err := checkHostsDNS(sb, cni); err != nil {
		return err
	}
	if !cni {
		if len(o.Publish) > 0 || o.PublishAll {
			return fmt.Errorf("%s needs a network of the sandbox's own, and --net %s shares %s: %s", publishFlag(o), netMode(sb.Network), netShares(sb.Network), publishFix(sb.Network))
		}
		if len(o.NetworkAliases) > 0 {
			return fmt.Errorf("--network-alias needs a named network: add --net NAME (`sbxrun network create NAME`)")
		}
		if target, ok := network.ContainerMode(sb.Network); ok {
			return o.planJoin(sb, target)
		}
		return nil
	}
	if rootless.Active() && name == network.DefaultNetwork {
		return o.planPasta(sb)
	}
	if len(o.NetworkAliases) > 0 && name == network.DefaultNetwork {
		return fmt.Errorf("--network-alias needs a named network, and the default one has no names: add --net NAME (`sbxrun network create NAME`)")
	}
	for _, a := range o.NetworkAliases {
		if err := network.CheckAlias(a); err != nil {
			return err
		}
	}
	paths := o.netPaths()
	if err := network.Check(paths, name); err != nil {
		return err
	}
	if hostGateway(sb) != "" {
		if n, _, err := network.Inspect(paths, name); err == nil && n.Internal {
			return fmt.Errorf("--add-host %s: network %q is internal and has no gateway: give an address, or use a network with a route out", hostGateway(sb), name)
		}
	}
	if len(o.Publish) > 0 {
		if n, _, err := network.Inspect(paths, name); err == nil && n.Internal {
			return fmt.Errorf("network %q is internal: it publishes no ports; drop -p, or use a network with a route out", name)
		}
	}
	if o.PublishAll {
		if n, _, err := network.Inspect(paths, name); err == nil && n.Internal {
			return fmt.Errorf("network %q is internal: it publishes no ports; drop -P, or use a network with a route out", name)
		}
	}
	if rootless.Active() && !o.readOnlyHost {
		// The way out and the published ports are pasta's.
		if n, _, err := network.Inspect(paths, name); err == nil && !n.Internal {
			if err := network.CheckPasta(); err != nil {
				return err
			}
		}
	}
	if err := o.planPorts(); err != nil {
		return err
	}
	ns := o.namespace()
	sb.NetNSPath = paths.NetNSPath(ns, sb.ID)
	sb.HostsFile = paths.HostsPath(ns, sb.ID)
	sb.ResolvConf = paths.ResolvPath(ns, sb.ID)
	return nil
}

// planPasta is planNetwork for the default network under rootless
// sbxrun: the sandbox gets a namespace of its own with pasta as its uplink
// (network.PastaNetwork); pasta and a usable /dev/net/tun are checked
// here, before anything is created.
func (o *RunOptions) planPasta(sb *oci.Sandbox) error {
	if len(o.NetworkAliases) > 0 {
		return fmt.Errorf("--network-alias needs a named network, and the default one has no names: add --net NAME (`sbxrun network create NAME`)")
	}
	if !o.readOnlyHost {
		if err := network.CheckPasta(); err != nil {
			return err
		}
	}
	if err := o.planPorts(); err != nil {
		return err
	}
	ns := o.namespace()
	paths := o.netPaths()
	sb.NetNSPath = paths.NetNSPath(ns, sb.ID)
	sb.HostsFile = paths.HostsPath(ns, sb.ID)
	sb.ResolvConf = paths.ResolvPath(ns, sb.ID)
	return nil
}

// planPorts parses -p, fills in the default publish address, and picks
// and checks the host ports: the sandbox has a network of its own.
func (o *RunOptions) planPorts() error {
	addr, err := o.publishAddress()
	if err != nil {
		return err
	}
	var pubs []network.Publish
	for _, s := range o.Publish {
		pub, err := network.ParsePublish(s)
		if err != nil {
			return err
		}
		if pub.HostIP == "" {
			pub.HostIP = addr
		}
		pubs = append(pubs, pub)
	}
	o.net.pubs, o.net.cni = pubs, true
	return o.resolvePorts(pubs)
}

// checkHostsDNS refuses --add-host and --dns* where sbxrun does not write
// the sandbox's /etc/hosts and /etc/resolv.conf: --net container:NAME uses
// NAME's (Docker refuses the same), and host and none share the host's
// files (none: a loopback-only hosts file) as they always have.
func checkHostsDNS(sb *oci.Sandbox, cni bool) error {
	flag := ""
	switch {
	case len(sb.ExtraHosts) > 0:
		flag = "--add-host"
	case len(sb.DNSServers) > 0:
		flag = "--dns"
	case len(sb.DNSSearch) > 0:
		flag = "--dns-search"
	case len(sb.DNSOptions) > 0:
		flag = "--dns-option"
	}
	if cni || flag == "" {
		return nil
	}
	if _, ok := network.ContainerMode(sb.Network); ok {
		return fmt.Errorf("conflicting options: %s and --net %s: the sandbox uses the files of the one it joins; give %s to that sandbox", flag, sb.Network, flag)
	}
	if g := hostGateway(sb); g != "" {
		return fmt.Errorf("--add-host %s: --net %s has no gateway of its own: give the host's address instead, or use --net bridge", g, netMode(sb.Network))
	}
	what := "/etc/hosts"
	if flag != "--add-host" {
		what = "/etc/resolv.conf"
	}
	return fmt.Errorf("%s needs a %s of the sandbox's own, which sbxrun writes on bridge and named networks, not with --net %s: use --net bridge (or a network's name)", flag, what, netMode(sb.Network))
}

// hostGateway is the first --add-host value that asks for the gateway.
func hostGateway(sb *oci.Sandbox) string {
	for _, h := range sb.ExtraHosts {
		if _, ip, err := network.ParseAddHost(h); err == nil && ip == network.HostGateway {
			return h
		}
	}
	return ""
}

// netPlan is what planning the network found, for the steps after it.
type netPlan struct {
	// cni: the sandbox is on a network of its own (CNI, or pasta under
	// rootless sbxrun); pubs are its -p values with their host addresses
	// filled in.
	cni  bool
	pubs []network.Publish
	// exposed is set once -P added the image's ports.
	exposed bool
	// joined is the sandbox whose network namespace --net container:NAME
	// joins.
	joined string
}

// resolvePorts picks and checks the host ports of pubs into o.ports.
// `sbxrun spec` and unit generation check the syntax only: a unit
// regenerated for its running service must not find its own port taken.
func (o *RunOptions) resolvePorts(pubs []network.Publish) error {
	if o.readOnlyHost {
		return nil
	}
	ports, err := network.ResolvePorts(o.netPaths(), pubs)
	if err != nil {
		return err
	}
	o.ports = ports
	return nil
}

// publishExposed is -P, once the image is known: the ports its config
// EXPOSEs, but those -p already publishes, on free host ports of the
// default publish address.
func (o *RunOptions) publishExposed(img ocispec.ImageConfig) error {
	if !o.PublishAll || !o.net.cni || o.net.exposed {
		return nil
	}
	o.net.exposed = true
	addr, err := o.publishAddress()
	if err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, p := range o.net.pubs {
		for c := p.ContainerStart; c <= p.ContainerEnd; c++ {
			taken[strconv.Itoa(c)+"/"+p.Protocol] = true
		}
	}
	keys := make([]string, 0, len(img.ExposedPorts))
	for k := range img.ExposedPorts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pubs := slices.Clone(o.net.pubs)
	for _, k := range keys {
		num, proto, _ := strings.Cut(k, "/")
		if proto == "" {
			proto = "tcp"
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp") {
			continue // sctp, or what no runtime would publish
		}
		if taken[strconv.Itoa(n)+"/"+proto] {
			continue
		}
		taken[strconv.Itoa(n)+"/"+proto] = true
		pubs = append(pubs, network.Publish{HostIP: addr, ContainerStart: n, ContainerEnd: n, Protocol: proto})
	}
	return o.resolvePorts(pubs)
}

// publishAddress is the host address -p and -P bind when they name none:
// default_publish_address of the configuration, else 127.0.0.1.
func (o *RunOptions) publishAddress() (string, error) {
	addr, err := profiles.DefaultPublishAddress(o.Load)
	if err != nil {
		return "", err
	}
	if addr == "" {
		addr = network.DefaultHostIP
	}
	return addr, nil
}

func publishFlag(o *RunOptions) string {
	if len(o.Publish) == 0 {
		return "-P"
	}
	return "-p"
}

func publishFix(n string) string {
	if target, ok := network.ContainerMode(n); ok {
		return fmt.Sprintf("publish the port on sandbox %q instead", target)
	}
	return "add --net bridge"
}

func netMode(n string) string {
	if n == "" {
		return "host"
	}
	return n
}

func netShares(n string) string {
	if n == "none" {
		return "no network"
	}
	if target, ok := network.ContainerMode(n); ok {
		return fmt.Sprintf("sandbox %q's", target)
	}
	return "the host's"
}

// defaultNetwork sets what the sandbox's network needs before it is
// validated: the path of a network's namespace follows from the sandbox's
// ID, so it is set here already, before planNetwork. (Rootless sbxrun
// gives the default, bridge, through pasta: planPasta.)
func (o *RunOptions) defaultNetwork(sb *oci.Sandbox) {
	if _, ok := network.Resolve(sb.Network); ok {
		sb.NetNSPath = o.netPaths().NetNSPath(o.namespace(), sb.ID)
	} else if _, ok := network.ContainerMode(sb.Network); ok {
		sb.NetNSPath = "/proc/self/ns/net" // until planJoin finds the sandbox's
	}
}

// planJoin is --net container:NAME: the sandbox joins the network
// namespace of the running sandbox NAME, and uses its /etc/hosts and
// /etc/resolv.conf. Nothing is attached or detached for it: the namespace
// is NAME's.
func (o *RunOptions) planJoin(sb *oci.Sandbox, target string) error {
	notRunning := func(why string) error {
		return fmt.Errorf("--net container:%s: %s: start it first (`sbxrun ps -a` lists sandboxes)", target, why)
	}
	if target == "" {
		return errors.New("--net container: names no sandbox: use --net container:NAME")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, ctx, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctr, err := c.LoadContainer(ctx, containerID(target))
	if errdefs.IsNotFound(err) {
		return notRunning(fmt.Sprintf("no sandbox named %q is running", target))
	}
	if err != nil {
		return fmt.Errorf("loading sandbox %q: %w", target, err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return notRunning(fmt.Sprintf("sandbox %q is not running", target))
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != client.Running {
		return notRunning(fmt.Sprintf("sandbox %q is not running", target))
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return fmt.Errorf("reading the spec of sandbox %q: %w", target, err)
	}
	// The namespace the target joined (its CNI namespace, which outlives
	// a restart of its task), else the one its task holds.
	sb.NetNSPath = fmt.Sprintf("/proc/%d/ns/net", task.Pid())
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace && ns.Path != "" {
				sb.NetNSPath = ns.Path
			}
		}
	}
	for _, m := range spec.Mounts {
		switch m.Destination {
		case "/etc/hosts":
			sb.HostsFile = m.Source
		case "/etc/resolv.conf":
			sb.ResolvConf = m.Source
		}
	}
	o.net.joined = target
	return nil
}

// networkLabels records the network and ports of a sandbox in l.
func (o *RunOptions) networkLabels(sb *oci.Sandbox, l map[string]string) {
	if _, ok := network.ContainerMode(sb.Network); ok {
		l[LabelNetwork] = sb.Network
	}
	if name, ok := network.Resolve(sb.Network); ok {
		if rootless.Active() && name == network.DefaultNetwork {
			name = network.PastaNetwork
		}
		l[LabelNetwork] = name
		if len(o.ports) > 0 {
			l[LabelPorts] = network.FormatPorts(o.ports)
		}
	}
}

// netHold is a run's attachment: released (detached) when the run ends,
// unless the sandbox outlives it (kept or detached), when `sbxrun rm` or
// `sbxrun gc` detaches it. A nil netHold (host, none) does nothing.
type netHold struct {
	paths    network.Paths
	ns, id   string
	pending  *network.Pending
	kept     bool
	detached chan struct{}
}

// attachNetwork starts attaching the created container to its CNI network:
// the namespace exists when it returns, so the task can be created while
// CNI ADD runs; ready waits for ADD before the workload starts.
func (o *RunOptions) attachNetwork(ctx context.Context, sb *oci.Sandbox) (*netHold, error) {
	if _, ok := network.Resolve(sb.Network); !ok {
		return nil, nil
	}
	h := &netHold{paths: o.netPaths(), ns: o.namespace(), id: sb.ID}
	pd, err := network.Begin(ctx, network.AttachOptions{
		Paths: h.paths, Network: sb.Network, Namespace: h.ns, ID: sb.ID,
		Name: o.Name, Hostname: sb.Hostname, Aliases: o.NetworkAliases, Ports: o.ports,
		ExtraHosts: sb.ExtraHosts,
		DNS:        network.DNS{Servers: sb.DNSServers, Search: sb.DNSSearch, Options: sb.DNSOptions},
	})
	if err != nil {
		return nil, err
	}
	h.pending = pd
	return h, nil
}

// ready waits until the sandbox's network is complete.
func (h *netHold) ready() error {
	if h == nil {
		return nil
	}
	_, err := h.pending.Wait()
	return err
}

// keep leaves the network to the sandbox that outlives this run.
func (h *netHold) keep() {
	if h != nil {
		h.kept = true
	}
}

// detachSoon starts detaching once the workload has exited, so CNI DEL
// runs while the task and container are deleted; release waits for it.
func (h *netHold) detachSoon() {
	if h == nil || h.kept || h.detached != nil {
		return
	}
	h.detached = make(chan struct{})
	go func() {
		defer close(h.detached)
		h.detach()
	}()
}

// release detaches unless kept, or waits for detachSoon's detach.
func (h *netHold) release() {
	if h == nil || h.kept {
		return
	}
	if h.detached != nil {
		<-h.detached
		return
	}
	h.detach()
}

func (h *netHold) detach() {
	_, _ = h.pending.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = network.Detach(ctx, h.paths, h.ns, h.id)
}

// detachNetwork releases the network of a removed sandbox (rm, stop of a
// detached --rm sandbox).
func (g *Global) detachNetwork(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = network.Detach(ctx, g.netPaths(), g.namespace(), id)
}

// gcNetworks detaches the sandboxes of the namespace that no longer
// exist: runs killed before they could detach, sandboxes gc removed.
func gcNetworks(ctx context.Context, c *client.Client, g *Global) ([]string, error) {
	exists := func(id string) bool {
		_, err := c.LoadContainer(ctx, id)
		return err == nil || !errdefs.IsNotFound(err)
	}
	return network.GC(ctx, g.netPaths(), g.namespace(), exists)
}

// Port writes the published ports of sandbox name, Docker's way
// ("8000/tcp -> 127.0.0.1:8080"); with private ("8000" or "8000/udp") only
// that port's host address and port.
func Port(ctx context.Context, g *Global, name, private string, w io.Writer) error {
	c, ctx, ctr, err := g.load(ctx, name)
	if err != nil {
		return err
	}
	defer c.Close()
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return err
	}
	ports := network.ParsePorts(labels[LabelPorts])
	if private == "" {
		for _, p := range ports {
			fmt.Fprintf(w, "%d/%s -> %s:%d\n", p.ContainerPort, p.Protocol, p.HostIP, p.HostPort)
		}
		return nil
	}
	num, proto, _ := strings.Cut(private, "/")
	if proto == "" {
		proto = "tcp"
	}
	n, err := strconv.Atoi(num)
	if err != nil || (proto != "tcp" && proto != "udp") {
		return fmt.Errorf("invalid port %q: use PORT or PORT/tcp|udp", private)
	}
	found := false
	for _, p := range ports {
		if p.ContainerPort == n && p.Protocol == proto {
			fmt.Fprintf(w, "%s:%d\n", p.HostIP, p.HostPort)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("sandbox %q does not publish %d/%s: `sbxrun port %s` lists what it publishes", name, n, proto, name)
	}
	return nil
}

// InspectionNet is Docker's .NetworkSettings of `sbxrun inspect`: where the
// sandbox is on its network.
type InspectionNet struct {
	Network    string         `json:"Network"`
	IPAddress  string         `json:"IPAddress"`
	Gateway    string         `json:"Gateway"`
	MacAddress string         `json:"MacAddress"`
	SandboxKey string         `json:"SandboxKey"`
	Ports      []network.Port `json:"Ports"`
}

// networkSettings is the network of sandbox id, nil when it has none.
func (g *Global) networkSettings(id string) *InspectionNet {
	a, err := network.Lookup(g.netPaths(), g.namespace(), id)
	if err != nil || a == nil {
		return nil
	}
	return &InspectionNet{Network: a.Network, IPAddress: a.IP, Gateway: a.Gateway, MacAddress: a.MAC, SandboxKey: a.NetNSPath, Ports: a.Ports}
}

// NetworkOptions are the settings of the `sbxrun network` commands.
type NetworkOptions struct {
	Global
	// Name is the network (create, inspect, rm).
	Name string
	// Subnet and Internal are create's --subnet and --internal.
	Subnet   string
	Internal bool
}

// CreateNetwork creates a named network.
func CreateNetwork(o NetworkOptions) (*network.Network, error) {
	n, err := network.Create(network.CreateOptions{Paths: o.netPaths(), Name: o.Name, Subnet: o.Subnet, Internal: o.Internal})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// ListNetworks returns the networks with their members.
func ListNetworks(o NetworkOptions) ([]*network.Network, error) {
	l, err := network.List(o.netPaths())
	if err != nil {
		return nil, err
	}
	return l, nil
}

// InspectNetwork returns a network and its CNI configuration list.
func InspectNetwork(o NetworkOptions) (*network.Network, []byte, error) {
	n, conf, err := network.Inspect(o.netPaths(), o.Name)
	if err != nil {
		return nil, nil, err
	}
	return n, conf, nil
}

// RemoveNetwork removes a network no sandbox is attached to.
func RemoveNetwork(o NetworkOptions) error {
	if err := network.Remove(o.netPaths(), o.Name); err != nil {
		return err
	}
	return nil
}

// PruneNetworks removes the networks no sandbox is attached to, but the
// default one.
func PruneNetworks(o NetworkOptions) ([]string, error) {
	removed, err := network.Prune(o.netPaths())
	if err != nil {
		return removed, err
	}
	return removed, nil
}
