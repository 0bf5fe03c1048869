package network

import (
	"strings"
	"testing"
)

func TestParseAddHost(t *testing.T) {
	for _, tt := range []struct{ in, host, ip string }{
		{"db.internal:10.1.2.3", "db.internal", "10.1.2.3"},
		{"db=10.1.2.3", "db", "10.1.2.3"},
		{"v6:2001:db8::33", "v6", "2001:db8::33"},
		{"v6:[2001:db8::33]", "v6", "2001:db8::33"},
		{"v6=::1", "v6", "::1"},
		{"host.docker.internal:host-gateway", "host.docker.internal", HostGateway},
	} {
		host, ip, err := ParseAddHost(tt.in)
		if err != nil || host != tt.host || ip != tt.ip {
			t.Errorf("ParseAddHost(%q) = %q, %q, %v; want %q, %q", tt.in, host, ip, err, tt.host, tt.ip)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"db", `"db" has no IP address: use HOST:IP`},
		{"db:1.2.3", `"1.2.3" is not an IP address: use HOST:IP`},
		{"db:", `"" is not an IP address`},
		{":10.1.2.3", "no host name before the colon"},
		{"a b:10.1.2.3", "is not a host name"},
		{"x\n10.0.0.1 evil:10.1.2.3", "is not a host name"},
		{"-x:10.1.2.3", "is not a host name"},
		{"db:fe80::1%eth0", "is not an IP address"},
	} {
		if _, _, err := ParseAddHost(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseAddHost(%q) = %v, want an error with %q", tt.in, err, tt.want)
		}
	}
}

func TestCheckDNS(t *testing.T) {
	ok := DNS{Servers: []string{"192.0.2.53", "2001:db8::53"}, Search: []string{"example.test", "."}, Options: []string{"ndots:2", "edns0"}}
	if err := CheckDNS(ok); err != nil {
		t.Errorf("CheckDNS(%+v) = %v", ok, err)
	}
	for _, tt := range []struct {
		d    DNS
		want string
	}{
		{DNS{Servers: []string{"1.2.3"}}, `"1.2.3" is not an IP address`},
		{DNS{Servers: []string{"dns.example"}}, "is not an IP address"},
		{DNS{Search: []string{"a b"}}, "is not one domain"},
		{DNS{Search: []string{"a\nnameserver 6.6.6.6"}}, "is not one domain"},
		{DNS{Options: []string{""}}, "is not one option"},
		{DNS{Options: []string{"ndots:2 rotate"}}, "is not one option"},
	} {
		if err := CheckDNS(tt.d); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckDNS(%+v) = %v, want an error with %q", tt.d, err, tt.want)
		}
	}
}

func TestWithDNS(t *testing.T) {
	host := "# generated\nnameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch lan corp\ndomain corp\noptions edns0\n"
	for _, tt := range []struct {
		name string
		d    DNS
		want string
	}{
		{"nothing set keeps the host's", DNS{}, host},
		{"servers replace the nameservers", DNS{Servers: []string{"192.0.2.53", "192.0.2.54"}},
			"# generated\nsearch lan corp\ndomain corp\noptions edns0\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"},
		{"search replaces search and domain", DNS{Search: []string{"example.test", "b.test"}},
			"# generated\nnameserver 10.0.0.53\nnameserver 10.0.0.54\noptions edns0\nsearch example.test b.test\n"},
		{"search . clears it", DNS{Search: []string{"."}},
			"# generated\nnameserver 10.0.0.53\nnameserver 10.0.0.54\noptions edns0\n"},
		{"options replace options", DNS{Options: []string{"ndots:2", "rotate"}},
			"# generated\nnameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch lan corp\ndomain corp\noptions ndots:2 rotate\n"},
		{"all three", DNS{Servers: []string{"192.0.2.53"}, Search: []string{"example.test"}, Options: []string{"ndots:2"}},
			"# generated\nnameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n"},
	} {
		if got := string(withDNS([]byte(host), tt.d)); got != tt.want {
			t.Errorf("%s: withDNS = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHostsFileExtraHosts(t *testing.T) {
	extra := []string{"db.internal:10.1.2.3", "v6:2001:db8::33", "host.docker.internal:host-gateway"}
	r := &record{Attachment: Attachment{Network: DefaultNetwork, IP: "10.88.0.2", Gateway: "10.88.0.1"}, Namespace: "ns", ID: "x", Name: "x", Hostname: "x", ExtraHosts: extra}
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.2\tx\n10.1.2.3\tdb.internal\n2001:db8::33\tv6\n10.88.0.1\thost.docker.internal\n"
	if got := string(hostsFile(r, []*record{r})); got != want {
		t.Errorf("hosts with extra hosts:\n%s\nwant:\n%s", got, want)
	}
	// Before CNI ADD gave an address and a gateway: the gateway's line
	// waits for the rewrite.
	pending := &record{Attachment: Attachment{Network: "web"}, Namespace: "ns", ID: "y", Name: "y", ExtraHosts: extra}
	got := string(hostsFile(pending, nil))
	if !strings.Contains(got, "10.1.2.3\tdb.internal\n") || strings.Contains(got, "host.docker.internal") {
		t.Errorf("hosts before ADD:\n%s", got)
	}
}
