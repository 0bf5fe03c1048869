package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// Labels of a sandbox on a CNI network: the network, and the published
// ports as `ps` and `port` show them (network.FormatPorts).
const (
	LabelNetwork = "sbxrun.network"
	LabelPorts   = "sbxrun.ports"
)

// netPaths is where this sbxrun keeps network configuration and state.
func (g *Global) netPaths() network.Paths { return network.DefaultPaths(g.stateDir()) }

// planNetwork prepares a sandbox on a CNI network (bridge or a name)
// without creating anything: the network must exist (the default one is
// created on first use) with its plugins installed, the published ports
// must be free, and the spec gets the paths of the namespace, hosts and
// resolv.conf files that Attach creates before the task starts.
func (o *RunOptions) planNetwork(sb *oci.Sandbox) error {
	name, cni := network.Resolve(sb.Network)
	if !cni {
		if len(o.Publish) > 0 {
			return fmt.Errorf("-p needs a network of the sandbox's own, and --net %s shares %s: add --net bridge", netMode(sb.Network), netShares(sb.Network))
		}
		if len(o.NetworkAliases) > 0 {
			return fmt.Errorf("--network-alias needs a named network: add --net NAME (`sbxrun network create NAME`)")
		}
		return nil
	}
	if rootless.Active() {
		return fmt.Errorf("--net %s is not supported by rootless sbxrun yet: use --net host or --net none", sb.Network)
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
	if len(o.Publish) > 0 {
		if n, _, err := network.Inspect(paths, name); err == nil && n.Internal {
			return fmt.Errorf("network %q is internal: it publishes no ports; drop -p, or use a network with a route out", name)
		}
	}
	var pubs []network.Publish
	for _, s := range o.Publish {
		pub, err := network.ParsePublish(s)
		if err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	// `sbxrun spec` and unit generation check the syntax only: a unit
	// regenerated for its running service must not find its own port taken.
	if !o.readOnlyHost {
		ports, err := network.ResolvePorts(paths, pubs)
		if err != nil {
			return err
		}
		o.ports = ports
	}
	ns := o.namespace()
	sb.NetNSPath = paths.NetNSPath(ns, sb.ID)
	sb.HostsFile = paths.HostsPath(ns, sb.ID)
	sb.ResolvConf = paths.ResolvPath(ns, sb.ID)
	return nil
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
	return "the host's"
}

// networkLabels records the network and ports of a sandbox in l.
func (o *RunOptions) networkLabels(sb *oci.Sandbox, l map[string]string) {
	if name, ok := network.Resolve(sb.Network); ok {
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
	if rootless.Active() {
		return nil, errors.New("networks are not supported by rootless sbxrun yet: use --net host or --net none")
	}
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
