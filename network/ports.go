package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultHostIP is the address published ports bind unless -p names one:
// a notebook or model server in a development sandbox must not appear on
// every interface of the host by accident.
const DefaultHostIP = "127.0.0.1"

// Publish is one -p/--publish as written: [IP:][HOSTPORT:]CONTAINERPORT[/PROTO],
// where ports may be ranges (8000-8010).
type Publish struct {
	// HostIP is the host address to bind; empty is DefaultHostIP.
	HostIP string
	// HostStart and HostEnd are the host port range; 0 picks free ports.
	HostStart, HostEnd int
	// ContainerStart and ContainerEnd are the sandbox's port range.
	ContainerStart, ContainerEnd int
	// Protocol is "tcp" or "udp".
	Protocol string
}

// Port is one published port, resolved: a host address and port forwarded
// to a port of the sandbox.
type Port struct {
	HostIP        string `json:"host_ip"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Protocol      string `json:"protocol"`
}

// String is Docker's notation, 127.0.0.1:8080->8000/tcp.
func (p Port) String() string {
	return fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)), p.ContainerPort, p.Protocol)
}

// FormatPorts joins ports with ", " (ps and labels).
func FormatPorts(ports []Port) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// ParsePorts reads what FormatPorts wrote; entries it cannot read are
// skipped.
func ParsePorts(s string) []Port {
	var out []Port
	for _, f := range strings.Split(s, ", ") {
		host, rest, ok := strings.Cut(f, "->")
		if !ok {
			continue
		}
		cport, proto, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		ip, hport, err := net.SplitHostPort(host)
		if err != nil {
			continue
		}
		hp, err1 := strconv.Atoi(hport)
		cp, err2 := strconv.Atoi(cport)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, Port{HostIP: ip, HostPort: hp, ContainerPort: cp, Protocol: proto})
	}
	return out
}

// ParsePublish parses one -p value.
func ParsePublish(s string) (Publish, error) {
	bad := func(why string) (Publish, error) {
		return Publish{}, fmt.Errorf("invalid --publish %q: %s: use [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:8000-8001:8000-8001/udp", s, why)
	}
	p := Publish{Protocol: "tcp"}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		p.Protocol = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return bad("protocol must be tcp or udp")
		}
	}
	var ip, host, ctr string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("unclosed [")
		}
		ip, rest = rest[1:end], rest[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return bad("expected ':' after the address")
		}
		rest = rest[1:]
		var ok bool
		host, ctr, ok = strings.Cut(rest, ":")
		if !ok {
			return bad("an address needs a container port after it")
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctr = parts[0]
		case 2:
			host, ctr = parts[0], parts[1]
		case 3:
			ip, host, ctr = parts[0], parts[1], parts[2]
		default:
			return bad("too many ':'")
		}
	}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return bad(fmt.Sprintf("%q is not an IP address", ip))
		}
		if !a.Is4() {
			return bad("only IPv4 host addresses are supported")
		}
		p.HostIP = a.String()
	}
	var err error
	if p.ContainerStart, p.ContainerEnd, err = portRange(ctr); err != nil {
		return bad("container port: " + err.Error())
	}
	if host != "" {
		if p.HostStart, p.HostEnd, err = portRange(host); err != nil {
			return bad("host port: " + err.Error())
		}
		hn, cn := p.HostEnd-p.HostStart, p.ContainerEnd-p.ContainerStart
		if hn != cn && cn != 0 {
			return bad("the host and container ranges differ in size")
		}
	}
	return p, nil
}

func portRange(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := portNumber(lo)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return a, a, nil
	}
	b, err := portNumber(hi)
	if err != nil {
		return 0, 0, err
	}
	if b < a {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	if b-a >= 1024 {
		return 0, 0, fmt.Errorf("range %s is longer than 1024 ports", s)
	}
	return a, b, nil
}

func portNumber(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return n, nil
}

// PortTakenError is a host port that cannot be published: in use on the
// host, or published by another sandbox.
type PortTakenError struct {
	Port Port
	// By is who holds it, when known ("sandbox NS/NAME").
	By  string
	Err error
}

func (e *PortTakenError) Error() string {
	at := net.JoinHostPort(e.Port.HostIP, strconv.Itoa(e.Port.HostPort)) + "/" + e.Port.Protocol
	switch {
	case e.Err != nil && errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("cannot publish %s: the host has no address %s: use one of its addresses with -p IP:HOSTPORT:PORT", at, e.Port.HostIP)
	case e.Err != nil && errors.Is(e.Err, syscall.EACCES):
		return fmt.Sprintf("cannot publish %s: binding a port below 1024 needs root: choose a host port from 1024 up with -p", at)
	case e.Err != nil && !errors.Is(e.Err, syscall.EADDRINUSE):
		return fmt.Sprintf("cannot publish %s: %v: choose another host port with -p", at, e.Err)
	}
	by := ""
	if e.By != "" {
		by = " by " + e.By
	}
	return fmt.Sprintf("host port %s is already in use%s: choose another host port with -p", at, by)
}

// ResolvePorts turns -p values into ports: host addresses default to
// DefaultHostIP, host ports not given are picked free, and every host port
// is checked: not published by another sandbox (per p's records), and
// bindable now. It creates nothing.
func ResolvePorts(p Paths, pubs []Publish) ([]Port, error) {
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	var out []Port
	for _, pub := range pubs {
		ip := pub.HostIP
		if ip == "" {
			ip = DefaultHostIP
		}
		for c := pub.ContainerStart; c <= pub.ContainerEnd; c++ {
			port := Port{HostIP: ip, ContainerPort: c, Protocol: pub.Protocol}
			switch {
			case pub.HostStart == 0:
				hp, err := freePort(ip, pub.Protocol, recs, out)
				if err != nil {
					return nil, err
				}
				port.HostPort = hp
			case pub.ContainerStart == pub.ContainerEnd && pub.HostEnd > pub.HostStart:
				// One container port, a host range: the first free one.
				var err error
				for h := pub.HostStart; h <= pub.HostEnd; h++ {
					port.HostPort = h
					if err = checkPort(port, recs, out); err == nil {
						break
					}
				}
				if err != nil {
					return nil, fmt.Errorf("no free host port in %d-%d for %d/%s: choose another range with -p", pub.HostStart, pub.HostEnd, c, pub.Protocol)
				}
			default:
				port.HostPort = pub.HostStart + (c - pub.ContainerStart)
				if err := checkPort(port, recs, out); err != nil {
					return nil, err
				}
			}
			out = append(out, port)
		}
	}
	return out, nil
}

// overlaps reports whether two published ports would catch the same
// traffic.
func overlaps(a, b Port) bool {
	return a.HostPort == b.HostPort && a.Protocol == b.Protocol &&
		(a.HostIP == b.HostIP || a.HostIP == "0.0.0.0" || b.HostIP == "0.0.0.0")
}

// checkPort fails with a *PortTakenError when port is published by a
// record or by an earlier port of the same run, or cannot be bound.
func checkPort(port Port, recs []*record, mine []Port) error {
	for _, m := range mine {
		if overlaps(port, m) {
			return &PortTakenError{Port: port, By: "another -p of this run"}
		}
	}
	for _, r := range recs {
		for _, q := range r.Ports {
			if overlaps(port, q) {
				return &PortTakenError{Port: port, By: "sandbox " + r.Namespace + "/" + r.Name}
			}
		}
	}
	if err := tryBind(port.HostIP, port.HostPort, port.Protocol); err != nil {
		return &PortTakenError{Port: port, By: portHolder(port), Err: err}
	}
	return nil
}

// freePort is a host port the kernel picks as free on ip, that no
// record publishes.
func freePort(ip, proto string, recs []*record, mine []Port) (int, error) {
	for range 20 {
		hp, err := bindPort(ip, 0, proto)
		if err != nil {
			return 0, fmt.Errorf("finding a free host port on %s: %w: give one with -p HOSTPORT:PORT", ip, err)
		}
		if checkPort(Port{HostIP: ip, HostPort: hp, Protocol: proto}, recs, mine) == nil {
			return hp, nil
		}
	}
	return 0, fmt.Errorf("finding a free host port on %s: none found: give one with -p HOSTPORT:PORT", ip)
}

func tryBind(ip string, port int, proto string) error {
	_, err := bindPort(ip, port, proto)
	return err
}

// bindPort binds ip:port and lets go again; it returns the port bound.
func bindPort(ip string, port int, proto string) (int, error) {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portHolder names the process that has port bound, when this process
// may see it: the socket's inode in /proc/net/{tcp,udp}, then the process
// holding that socket. "" when unknown.
func portHolder(port Port) string {
	b, err := os.ReadFile("/proc/net/" + port.Protocol)
	if err != nil {
		return ""
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(n) != port.HostPort || f[9] == "0" {
			continue
		}
		if port.Protocol == "tcp" && f[3] != "0A" { // LISTEN
			continue
		}
		inode = f[9]
		break
	}
	if inode == "" {
		return ""
	}
	want := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == want {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
			}
		}
	}
	return ""
}

// portsTaken refuses a port of o that another sandbox's record publishes:
// one another run published since ResolvePorts looked.
func portsTaken(o AttachOptions, recs []*record) error {
	for _, port := range o.Ports {
		for _, r := range recs {
			if r.Namespace == o.Namespace && r.ID == o.ID {
				continue
			}
			for _, q := range r.Ports {
				if overlaps(port, q) {
					return &PortTakenError{Port: port, By: "sandbox " + r.Namespace + "/" + r.Name}
				}
			}
		}
	}
	return nil
}
