package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// HostGateway is Docker's special --add-host address: the gateway of the
// sandbox's network, the host as the sandbox reaches it.
const HostGateway = "host-gateway"

// DNS is what --dns, --dns-search and --dns-option put in a sandbox's
// /etc/resolv.conf: each list that is set replaces the host's lines of
// its kind (nameserver, search and domain, options), as Docker does.
type DNS struct {
	Servers []string `json:"servers,omitempty"`
	Search  []string `json:"search,omitempty"`
	Options []string `json:"options,omitempty"`
}

// ParseAddHost splits an --add-host value, HOST:IP (Docker's form; the
// first colon separates, so an IPv6 address may follow) or HOST=IP
// (Compose's), into the name and the address. The address is an IP
// address, bracketed or not, or HostGateway.
func ParseAddHost(s string) (host, ip string, err error) {
	host, ip, ok := strings.Cut(s, "=")
	if !ok {
		host, ip, ok = strings.Cut(s, ":")
	}
	if !ok {
		return "", "", fmt.Errorf("%q has no IP address: use HOST:IP, such as db.internal:10.1.2.3 or host.docker.internal:host-gateway", s)
	}
	if err := checkHostName(host); err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	if ip == HostGateway {
		return host, ip, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", "", fmt.Errorf("%q: %q is not an IP address: use HOST:IP, such as db.internal:10.1.2.3 or host.docker.internal:host-gateway", s, ip)
	}
	return host, a.String(), nil
}

// checkHostName accepts a name /etc/hosts can hold: letters, digits, '-',
// '_' and '.', not starting with '-' or '.'.
func checkHostName(h string) error {
	if h == "" {
		return fmt.Errorf("no host name before the colon: use HOST:IP")
	}
	if len(h) > 253 || h[0] == '-' || h[0] == '.' || strings.Trim(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return fmt.Errorf("%q is not a host name: use letters, digits, '-', '_' and '.'", h)
	}
	return nil
}

// CheckDNS validates DNS settings: servers are IP addresses, search
// domains and options single words.
func CheckDNS(d DNS) error {
	for _, s := range d.Servers {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP address: use a DNS server's address, such as 192.0.2.53", s)
		}
	}
	for _, s := range d.Search {
		if s == "" || s == "." {
			continue // Docker: no search domain
		}
		if strings.ContainsAny(s, " \t\n#;") {
			return fmt.Errorf("%q is not one domain: use one domain, such as example.test (repeat the flag for more)", s)
		}
	}
	for _, s := range d.Options {
		if s == "" || strings.ContainsAny(s, " \t\n#;") {
			return fmt.Errorf("%q is not one option: use one resolv.conf option, such as ndots:2 (repeat the flag for more)", s)
		}
	}
	return nil
}

// extraHostLines are the /etc/hosts lines of --add-host values (valid,
// see ParseAddHost), HostGateway being gateway; without a gateway (an
// internal network) its lines are left out.
func extraHostLines(extra []string, gateway string) string {
	var b strings.Builder
	for _, e := range extra {
		host, ip, err := ParseAddHost(e)
		if err != nil {
			continue
		}
		if ip == HostGateway {
			if gateway == "" {
				continue
			}
			ip = gateway
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, host)
	}
	return b.String()
}

// withDNS is resolv.conf base with d applied: the lines of each kind d
// sets are replaced by d's.
func withDNS(base []byte, d DNS) []byte {
	if len(d.Servers) == 0 && len(d.Search) == 0 && len(d.Options) == 0 {
		return base
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(base))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) > 0 {
			switch {
			case f[0] == "nameserver" && len(d.Servers) > 0,
				(f[0] == "search" || f[0] == "domain") && len(d.Search) > 0,
				f[0] == "options" && len(d.Options) > 0:
				continue
			}
		}
		out.WriteString(line + "\n")
	}
	for _, s := range d.Servers {
		fmt.Fprintf(&out, "nameserver %s\n", s)
	}
	var search []string
	for _, s := range d.Search {
		if s != "" && s != "." {
			search = append(search, s)
		}
	}
	if len(search) > 0 {
		fmt.Fprintf(&out, "search %s\n", strings.Join(search, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&out, "options %s\n", strings.Join(d.Options, " "))
	}
	return out.Bytes()
}
