package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Named networks under rootless sbxrun. Without root there is no bridge
// or iptables rule to be made on the host, but inside RootlessKit's user
// namespace sbxrun may make network namespaces and everything in them.
// So the bridges of a user's named networks live in a namespace of their
// own, the user's bridge namespace (STATE/netns/_bridges, created when the
// first sandbox attaches to a named network and removed when the last
// one detaches): the CNI bridge plugin runs there, and each sandbox gets a
// veth (eth0) on its network's bridge and an address from its subnet, as
// a rootful one does. The bridges have no address and the namespace does
// not forward, so the networks cannot reach each other, nor the
// namespace itself. The way out is the sandbox's own pasta (eth1, as on
// the default network: pasta.go), which also carries its published ports;
// an internal network's sandboxes get none, so they have no route out and
// publish nothing. Names: the same /etc/hosts files as a rootful network.
//
// The networks' configuration lists say so (`"sbxrun": {"uplink": ...}`)
// and live in the user's configuration directory
// (~/.config/sbxrun/cni), their addresses in STATE/cni/networks.

// bridgeNSName is the bridge namespace's file in NetNSDir: no sandbox's
// (those are NAMESPACE-ID, and containerd namespaces start with a letter
// or a digit).
const bridgeNSName = "_bridges"

// pastaUplink is the interface pasta makes in the namespace of a sandbox
// on a rootless named network: eth0 is the network's.
const pastaUplink = "eth1"

// uplinkPasta and uplinkNone are the values of a rootless network's
// "uplink": pasta per sandbox, or nothing (internal).
const (
	uplinkPasta = "pasta"
	uplinkNone  = "none"
)

func (p Paths) bridgeNSPath() string { return filepath.Join(p.NetNSDir, bridgeNSName) }

// cacheDir is libcni's result cache of rootless sbxrun (libcni's default,
// /var/lib/cni, is root's).
func (p Paths) cacheDir() string { return filepath.Join(p.StateDir, "cache") }

// renderUser is the configuration list of a rootless named network: a
// bridge without an address, gateway or masquerading, host-local
// addresses without routes, and no portmap (pasta publishes).
func renderUser(name, bridge, subnet, ipamDir string, internal bool) map[string]any {
	uplink := uplinkPasta
	if internal {
		uplink = uplinkNone
	}
	return map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"sbxrun":     map[string]string{"uplink": uplink},
		"plugins": []map[string]any{{
			"type":        "bridge",
			"bridge":      bridge,
			"isGateway":   false,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": subnet}}},
				"dataDir": ipamDir,
			},
		}},
	}
}

// inNetNS runs f on a thread that has joined the network namespace at
// path; processes f starts are in it too. The thread is never used again
// (it stays locked and ends with its goroutine).
func inNetNS(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("opening network namespace %q: %w (rootless sbxrun runs this inside `sbxrun rootless`'s namespaces: is its daemon running?)", path, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("joining network namespace %q: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// ensureBridgeNS makes the user's bridge namespace unless it exists: a
// namespace that does not forward between its interfaces.
func (p Paths) ensureBridgeNS() error {
	path := p.bridgeNSPath()
	if isNetNS(path) {
		return nil
	}
	return newNetNS(path, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0o644)
	})
}

// dropBridgeNS removes the user's bridge namespace, and with it the
// bridges, once no attachment uses it.
func (p Paths) dropBridgeNS(recs []*record) error {
	for _, r := range recs {
		if r.UserBridge {
			return nil
		}
	}
	if _, err := os.Lstat(p.bridgeNSPath()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return removeNetNS(p.bridgeNSPath())
}

// userCNI is libcni for a rootless network's list.
func (p Paths) userCNI(conflist []byte, r *record, path string) (*libcni.CNIConfig, *libcni.NetworkConfigList, *libcni.RuntimeConf, error) {
	l, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("loading network config: %w", err)
	}
	c := libcni.NewCNIConfigWithCacheDir(p.PluginDirs, p.cacheDir(), nil)
	rt := &libcni.RuntimeConf{ContainerID: r.cniID(), NetNS: path, IfName: "eth0"}
	return c, l, rt, nil
}

// userAdd runs CNI ADD for r in the user's bridge namespace and returns
// the MAC and IPv4 address of the sandbox's eth0.
func (p Paths) userAdd(ctx context.Context, r *record) (mac, ip string, err error) {
	if err := p.ensureBridgeNS(); err != nil {
		return "", "", err
	}
	c, l, rt, err := p.userCNI(r.Conflist, r, r.NetNSPath)
	if err != nil {
		return "", "", err
	}
	var res *types100.Result
	err = inNetNS(p.bridgeNSPath(), func() error {
		out, err := c.AddNetworkList(ctx, l, rt)
		if err != nil {
			return err
		}
		res, err = types100.NewResultFromResult(out)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("attaching sandbox %q to network %q: %w", r.Name, r.Network, err)
	}
	for i, itf := range res.Interfaces {
		if itf.Name != "eth0" || itf.Sandbox == "" {
			continue
		}
		mac = itf.Mac
		for _, cfg := range res.IPs {
			if cfg.Interface != nil && *cfg.Interface == i && cfg.Address.IP.To4() != nil {
				ip = cfg.Address.IP.String()
				break
			}
		}
	}
	return mac, ip, nil
}

// userDel runs CNI DEL for r: in the bridge namespace when there is one
// here; else (outside RootlessKit's namespaces, or with the namespace
// gone) without a sandbox namespace, which releases the address.
func (p Paths) userDel(ctx context.Context, r *record) error {
	if len(r.Conflist) == 0 || string(r.Conflist) == "null" {
		return nil
	}
	path := r.NetNSPath
	if !isNetNS(path) {
		path = ""
	}
	c, l, rt, err := p.userCNI(r.Conflist, r, path)
	if err != nil {
		return err
	}
	del := func() error { return c.DelNetworkList(ctx, l, rt) }
	if isNetNS(p.bridgeNSPath()) {
		err = inNetNS(p.bridgeNSPath(), del)
	} else {
		rt.NetNS = ""
		err = del()
	}
	if err != nil {
		return fmt.Errorf("detaching sandbox %q from network %q: %w", r.Name, r.Network, err)
	}
	return nil
}

// removeUserBridge deletes a rootless network's bridge from the user's
// bridge namespace, when both are there.
func (p Paths) removeUserBridge(name string) error {
	if !isNetNS(p.bridgeNSPath()) {
		return nil
	}
	h, done, err := handleAt(p.bridgeNSPath())
	if err != nil {
		return err
	}
	defer done()
	return deleteLinkIn(h, name)
}

// addUser is add for a rootless named network: CNI ADD in the bridge
// namespace and (but on an internal network) the sandbox's pasta, at the
// same time: they configure interfaces of their own (eth0, eth1).
func (p Paths) addUser(ctx context.Context, r *record, n *Network, others []*record) (*Attachment, error) {
	type started struct {
		pi  *PastaInfo
		err error
	}
	var pc chan started
	if !n.Internal {
		pc = make(chan started, 1)
		go func() {
			pi, err := startPasta(ctx, r, pastaUplink)
			pc <- started{pi, err}
		}()
	}
	mac, ip, err := p.userAdd(ctx, r)
	if pc != nil {
		s := <-pc
		// Recorded before any return: detach ends it.
		r.Pasta = s.pi
		if err == nil {
			err = s.err
		}
	}
	if err != nil {
		return nil, err
	}
	if ip == "" {
		return nil, fmt.Errorf("network %q gave sandbox %q no IPv4 address: check %q", r.Network, r.Name, n.ConfigFile)
	}
	r.MAC, r.IP = mac, ip
	if r.Pasta != nil {
		_, r.Gateway, _ = pastaAddress(r.NetNSPath, pastaUplink)
		if err := p.fence(r); err != nil {
			return nil, err
		}
	}
	return p.complete(r, others)
}

// checkKind refuses a network made for the other kind of sbxrun: a
// rootless one's bridge is in a user's namespace, a rootful one's needs
// root.
func (p Paths) checkKind(n *Network) error {
	switch {
	case p.Rootless && !n.Rootless:
		return fmt.Errorf("network %q (%s) was made for root sbxrun, whose bridges rootless sbxrun cannot make: create one of your own with `sbxrun network create NAME`", n.Name, n.ConfigFile)
	case !p.Rootless && n.Rootless:
		return fmt.Errorf("network %q (%s) was made by rootless sbxrun: use it without root, or create a network as root", n.Name, n.ConfigFile)
	}
	return nil
}

// fence gives a rootless sandbox's namespace a prohibit route to each of
// the user's named networks but its own: their subnets exist only in the
// user's bridge namespace, and the sandbox's default route (pasta, the
// host's routes) would carry a packet for one out to the host's gateway.
// With the route it fails at once (EACCES) and never leaves. Networks
// created later are not fenced for sandboxes already running.
func (p Paths) fence(r *record) error {
	nets, err := p.all()
	if err != nil {
		return nil // a broken list elsewhere is `network ls`'s to report
	}
	var dsts []*net.IPNet
	for _, n := range nets {
		if !n.Rootless || n.Name == r.Network {
			continue
		}
		if _, dst, err := net.ParseCIDR(n.Subnet); err == nil {
			dsts = append(dsts, dst)
		}
	}
	if len(dsts) == 0 {
		return nil
	}
	h, done, err := handleAt(r.NetNSPath)
	if err != nil {
		return err
	}
	defer done()
	for _, dst := range dsts {
		if err := h.RouteAdd(&netlink.Route{Dst: dst, Type: unix.RTN_PROHIBIT}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("fencing off %s (another of your networks) in sandbox %q's namespace: %w", dst, r.Name, err)
		}
	}
	return nil
}
