package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sbxrun/sbxrun/internal/hostinfo"
)

// Rootless sandboxes cannot have a bridge: creating a veth or an iptables
// rule needs root on the host. Their namespace gets its uplink from pasta
// (Debian's passt package) instead, as podman's rootless networking does:
// sbxrun creates the namespace (inside RootlessKit's user namespace, which
// owns it), pasta joins it, creates a tap interface there with the host's
// address and routes (--config-net), and carries the sandbox's TCP, UDP and
// ICMP over ordinary sockets of the user on the host. Published ports are
// pasta's -t/-u forwards, bound by pasta on the host. It runs with
// --no-map-gw (the gateway address is not the host's loopback) and with no
// namespace-to-host forwards (-T none -U none), so the sandbox does not reach
// services on the host's loopback. pasta quits by itself when the namespace
// file goes (it watches the directory), so a namespace removed by Detach or
// GC takes its pasta along; Detach also ends it by pid, so its ports are free
// as soon as Detach returns.

// PastaNetwork is the network a rootless sandbox's record and labels name:
// its own namespace behind pasta, no bridge and no names.
const PastaNetwork = "pasta"

// PastaInfo is the pasta process of an attachment.
type PastaInfo struct {
	PID int `json:"pid"`
	// Start is the process's start time (hostinfo.ProcStart), so a pid
	// reused by another process is never signalled.
	Start string `json:"start"`
}

// CheckPasta says whether this host can give a rootless sandbox a network
// of its own: pasta installed (CheckPastaBinary) and /dev/net/tun usable by
// this user (CheckTun). The error is one line naming the missing piece and
// its fix.
func CheckPasta() error {
	if err := CheckPastaBinary(); err != nil {
		return err
	}
	return CheckTun()
}

// CheckPastaBinary reports a missing pasta, with the fix.
func CheckPastaBinary() error {
	if _, err := exec.LookPath("pasta"); err != nil {
		return errors.New("a rootless sandbox's own network needs pasta, which is not installed: `sudo apt-get install passt` (or run with --net host or --net none)")
	}
	return nil
}

// CheckTun reports a /dev/net/tun this user cannot open (pasta creates
// the sandbox's interface with it), with the fix.
func CheckTun() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		fix := "`sudo modprobe tun`"
		if errors.Is(err, os.ErrPermission) {
			fix = "`sudo chmod 0666 /dev/net/tun` (the mode udev usually gives it)"
		}
		return fmt.Errorf("a rootless sandbox's own network needs /dev/net/tun, which this user cannot open (%v): %s, or run with --net host or --net none", errors.Unwrap(err), fix)
	}
	f.Close()
	return nil
}

// pastaArgs are pasta's arguments for the namespace at path
// with ports published; ifname names its interface ("" is the host's
// interface's name).
func pastaArgs(path, pidFile, ifname string, ports []Port) []string {
	args := []string{"--netns", path, "--config-net", "--no-map-gw", "--quiet", "--pid", pidFile,
		// Nothing from the namespace to the host's loopback.
		"-T", "none", "-U", "none"}
	if ifname != "" {
		args = append(args, "-I", ifname)
	}
	tcp, udp := pastaForwards(ports)
	if len(tcp) == 0 {
		tcp = []string{"none"}
	}
	if len(udp) == 0 {
		udp = []string{"none"}
	}
	for _, s := range tcp {
		args = append(args, "-t", s)
	}
	for _, s := range udp {
		args = append(args, "-u", s)
	}
	return args
}

// pastaForwards are the -t and -u specs of ports, one per port:
// ADDR/HOSTPORT:CONTAINERPORT (an address of 0.0.0.0 binds every one).
func pastaForwards(ports []Port) (tcp, udp []string) {
	for _, p := range ports {
		s := strconv.Itoa(p.HostPort) + ":" + strconv.Itoa(p.ContainerPort)
		if p.HostIP != "" && p.HostIP != "0.0.0.0" {
			s = p.HostIP + "/" + s
		}
		if p.Protocol == "udp" {
			udp = append(udp, s)
		} else {
			tcp = append(tcp, s)
		}
	}
	return tcp, udp
}

// startPasta starts pasta for r's namespace and returns once the
// namespace is configured and the ports are bound (pasta forks into the
// background then). ifname is its interface's name ("": the host's
// interface's).
func startPasta(ctx context.Context, r *record, ifname string) (*PastaInfo, error) {
	bin, err := exec.LookPath("pasta")
	if err != nil {
		return nil, CheckPastaBinary()
	}
	pidFile := filepath.Join(filepath.Dir(r.HostsPath), r.ID+".pasta.pid")
	defer os.Remove(pidFile)
	// stderr goes to an unlinked file, not a pipe: pasta's background
	// child inherits it, and a pipe would hold Wait until pasta quits.
	errf, err := os.CreateTemp(filepath.Dir(r.HostsPath), ".pasta-stderr-")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(errf.Name())
	defer errf.Close()
	cmd := exec.CommandContext(ctx, bin, pastaArgs(r.NetNSPath, pidFile, ifname, r.Ports)...)
	cmd.Stdout, cmd.Stderr = errf, errf
	// Its own session: a ^C meant for the workload is not pasta's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		_, _ = errf.Seek(0, io.SeekStart)
		out, _ := io.ReadAll(errf)
		return nil, pastaError(r, err, string(out))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil, fmt.Errorf("pasta started but wrote no pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("pasta wrote a bad pid file: %q", b)
	}
	return &PastaInfo{PID: pid, Start: hostinfo.ProcStart(pid)}, nil
}

// pastaError turns a failed pasta start into one line: a port pasta could
// not bind is a PortTakenError, as a bridge's would be.
func pastaError(r *record, err error, stderr string) error {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		// Without a syslog daemon each message also reports that.
		if l != "" && !strings.HasPrefix(l, "Failed to send") {
			lines = append(lines, l)
		}
	}
	msg := strings.Join(lines, "; ")
	if strings.Contains(msg, "Failed to bind") {
		for _, p := range r.Ports {
			spec := strconv.Itoa(p.HostPort) + ":" + strconv.Itoa(p.ContainerPort)
			if strings.Contains(msg, spec+"'") {
				return &PortTakenError{Port: p, By: portHolder(p), Err: syscall.EADDRINUSE}
			}
		}
	}
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("starting pasta for the sandbox's network: %s: run `sbxrun doctor`, or use --net host", msg)
}

// stopPasta ends the pasta of an attachment and waits (up to 2s) until it
// is gone, so its host ports are free again.
func stopPasta(pi *PastaInfo) {
	if pi == nil || pi.PID <= 0 || pi.Start == "" || hostinfo.ProcStart(pi.PID) != pi.Start {
		return
	}
	_ = syscall.Kill(pi.PID, syscall.SIGTERM)
	for i := 0; i < 200; i++ {
		if hostinfo.ProcStart(pi.PID) != pi.Start {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(pi.PID, syscall.SIGKILL)
}

// pastaAddress reads the IPv4 address, gateway and MAC pasta gave the
// namespace at path (on interface ifname; "": the first that is not
// loopback), for the record and /etc/hosts.
func pastaAddress(path, ifname string) (ip, gw, mac string) {
	h, done, err := handleAt(path)
	if err != nil {
		return "", "", ""
	}
	defer done()
	links, err := h.LinkList()
	if err != nil {
		return "", "", ""
	}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 || ifname != "" && l.Attrs().Name != ifname {
			continue
		}
		addrs, err := h.AddrList(l, unix.AF_INET)
		if err != nil || len(addrs) == 0 {
			continue
		}
		ip, mac = addrs[0].IP.String(), l.Attrs().HardwareAddr.String()
		if routes, err := h.RouteList(l, unix.AF_INET); err == nil {
			for _, rt := range routes {
				if rt.Gw != nil && (rt.Dst == nil || rt.Dst.IP.IsUnspecified()) {
					gw = rt.Gw.String()
				}
			}
		}
		return ip, gw, mac
	}
	return "", "", ""
}

// beginPasta is Begin for a rootless sandbox: record, namespace, its
// /etc/resolv.conf and /etc/hosts, then pasta, in the background while the
// task is created.
func beginPasta(ctx context.Context, o AttachOptions) (*Pending, error) {
	p := o.Paths
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
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	if err := portsTaken(o, recs); err != nil {
		return nil, err
	}
	r := &record{
		Attachment: Attachment{
			Network:    PastaNetwork,
			NetNSPath:  p.NetNSPath(o.Namespace, o.ID),
			Ports:      o.Ports,
			HostsPath:  p.HostsPath(o.Namespace, o.ID),
			ResolvPath: p.ResolvPath(o.Namespace, o.ID),
		},
		Namespace: o.Namespace, ID: o.ID, Name: o.Name, Hostname: o.Hostname, ExtraHosts: o.ExtraHosts,
		Created: time.Now().UTC(),
	}
	// --add-host and --dns* as on a CNI network (they were dropped here).
	if err := p.stage(ctx, r, o.DNS, nil); err != nil {
		return nil, err
	}
	locked = false
	return p.background(ctx, r, unlock, func() (*Attachment, error) { return p.addPasta(ctx, r) }), nil
}

// addPasta starts r's pasta and completes its record and /etc/hosts.
func (p Paths) addPasta(ctx context.Context, r *record) (*Attachment, error) {
	pi, err := startPasta(ctx, r, "")
	if err != nil {
		return nil, err
	}
	r.Pasta = pi
	r.IP, r.Gateway, r.MAC = pastaAddress(r.NetNSPath, "")
	if err := p.fence(r); err != nil {
		stopPasta(pi)
		return nil, err
	}
	r.Attached = true
	if err := p.writeRecord(r); err != nil {
		stopPasta(pi)
		return nil, err
	}
	// In place: the task has this inode mounted already.
	if err := os.WriteFile(r.HostsPath, hostsFile(r, nil), 0o644); err != nil {
		return nil, fmt.Errorf("writing %q: %w", r.HostsPath, err)
	}
	a := r.Attachment
	return &a, nil
}

// DetachPasta detaches every sandbox whose uplink is pasta or whose
// network's bridge is in the user's bridge namespace, of every containerd
// namespace: the rootless daemon is stopping, and with its
// mount namespace go the namespaces' mounts, which pasta would no longer
// see removed. A sandbox started again is attached anew.
func DetachPasta(ctx context.Context, p Paths) error {
	if _, err := os.Stat(p.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := p.lock()
	if err != nil {
		return err
	}
	defer unlock()
	recs, err := p.records()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		if r.Network == PastaNetwork || r.UserBridge {
			errs = append(errs, p.detach(ctx, r))
		}
	}
	// Its mount goes with the daemon's mount namespace; the file stays.
	errs = append(errs, removeNetNS(p.bridgeNSPath()))
	return errors.Join(errs...)
}
