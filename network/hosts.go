package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Names between sandboxes: each sandbox's /etc/hosts is a file sbxrun
// writes (HostsPath), bind-mounted read-only. On a named network it lists
// every member of the network in the same containerd namespace by name,
// hostname and alias; Attach and Detach rewrite the files of the running
// members in place (the bind mount keeps the inode), so a sandbox that
// joins later is found by those already running. Plain hosts files need no
// resolver process and work with every libc; the default network, as
// Docker's default bridge, lists only the sandbox itself.

// hostsFile is the /etc/hosts of r, given the records of its network.
func hostsFile(r *record, recs []*record) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if r.IP != "" {
		fmt.Fprintf(&b, "%s\t%s\n", r.IP, strings.Join(names(r), " "))
	}
	b.WriteString(extraHostLines(r.ExtraHosts, r.Gateway))
	if r.Network == DefaultNetwork || r.Network == PastaNetwork {
		return b.Bytes()
	}
	for _, m := range recs {
		if m == r || m.ID == r.ID && m.Namespace == r.Namespace || m.Network != r.Network || m.Namespace != r.Namespace || m.IP == "" {
			continue
		}
		fmt.Fprintf(&b, "%s\t%s\n", m.IP, strings.Join(names(m), " "))
	}
	return b.Bytes()
}

// names are the names r is known by: its name, its hostname, its aliases.
func names(r *record) []string {
	var out []string
	for _, n := range append([]string{r.Name, r.Hostname}, r.Aliases...) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// refreshHosts rewrites the hosts files of the members of changed's
// network (every member of every network when changed is nil).
func (p Paths) refreshHosts(recs []*record, changed *record) error {
	for _, r := range recs {
		if r.IP == "" {
			continue
		}
		if changed != nil && r != changed && (r.Network != changed.Network || r.Namespace != changed.Namespace) {
			continue
		}
		// In place: the running sandbox has this inode mounted.
		if err := os.WriteFile(r.HostsPath, hostsFile(r, recs), 0o644); err != nil {
			if r == changed {
				return fmt.Errorf("writing %q: %w", r.HostsPath, err)
			}
		}
	}
	return nil
}

// hostResolvConf is the host's resolver configuration (a variable for
// tests).
var hostResolvConf = func() ([]byte, []byte) {
	b, _ := os.ReadFile("/etc/resolv.conf")
	upstream, _ := os.ReadFile("/run/systemd/resolve/resolv.conf")
	return b, upstream
}

// resolvConf is a sandbox's /etc/resolv.conf: the host's, except that a
// loopback nameserver (systemd-resolved's 127.0.0.53, a local dnsmasq),
// which the sandbox cannot reach, is replaced by the upstream servers
// systemd-resolved knows, else by public resolvers, as Docker does.
func resolvConf() []byte {
	host, upstream := hostResolvConf()
	out, ok := withoutLoopback(host)
	if ok {
		return out
	}
	if up, ok := withoutLoopback(upstream); ok {
		return up
	}
	return append(out, []byte("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")...)
}

// withoutLoopback drops loopback nameservers from a resolv.conf and
// reports whether any nameserver is left.
func withoutLoopback(b []byte) ([]byte, bool) {
	var out bytes.Buffer
	left := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() {
				continue
			}
			left = true
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes(), left
}
