package network

import (
	"strings"
	"testing"
)

func TestHostsFile(t *testing.T) {
	a := &record{Attachment: Attachment{Network: "web", IP: "10.1.0.2"}, Namespace: "ns", ID: "a", Name: "a", Hostname: "a", Aliases: []string{"api"}}
	b := &record{Attachment: Attachment{Network: "web", IP: "10.1.0.3"}, Namespace: "ns", ID: "b", Name: "b", Hostname: "bee"}
	other := &record{Attachment: Attachment{Network: "db", IP: "10.2.0.2"}, Namespace: "ns", ID: "c", Name: "c"}
	otherNS := &record{Attachment: Attachment{Network: "web", IP: "10.1.0.9"}, Namespace: "ns2", ID: "d", Name: "d"}
	pending := &record{Attachment: Attachment{Network: "web"}, Namespace: "ns", ID: "e", Name: "e"}
	recs := []*record{a, b, other, otherNS, pending}
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.0.2\ta api\n10.1.0.3\tb bee\n"
	if got := string(hostsFile(a, recs)); got != want {
		t.Errorf("hosts of a:\n%s\nwant:\n%s", got, want)
	}
	// The default network lists only the sandbox itself.
	d := &record{Attachment: Attachment{Network: DefaultNetwork, IP: "10.88.0.2"}, Namespace: "ns", ID: "x", Name: "x", Hostname: "x"}
	y := &record{Attachment: Attachment{Network: DefaultNetwork, IP: "10.88.0.3"}, Namespace: "ns", ID: "y", Name: "y"}
	if got := string(hostsFile(d, []*record{d, y})); strings.Contains(got, "10.88.0.3") || !strings.Contains(got, "10.88.0.2\tx\n") {
		t.Errorf("hosts on the default network:\n%s", got)
	}
}

func TestResolvConf(t *testing.T) {
	old := hostResolvConf
	t.Cleanup(func() { hostResolvConf = old })
	for _, tt := range []struct{ host, upstream, want string }{
		{"nameserver 10.0.0.53\nsearch example.com\n", "", "nameserver 10.0.0.53\nsearch example.com\n"},
		{"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n", "nameserver 192.168.1.1\nsearch lan\n", "nameserver 192.168.1.1\nsearch lan\n"},
		{"nameserver 127.0.0.1\nnameserver 9.9.9.9\n", "", "nameserver 9.9.9.9\n"},
		{"nameserver ::1\nsearch lan\n", "", "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
	} {
		hostResolvConf = func() ([]byte, []byte) { return []byte(tt.host), []byte(tt.upstream) }
		if got := string(resolvConf()); got != tt.want {
			t.Errorf("resolvConf of %q (upstream %q) = %q, want %q", tt.host, tt.upstream, got, tt.want)
		}
	}
}

func TestCheckAlias(t *testing.T) {
	for _, ok := range []string{"web", "db.internal", "a_b-1", strings.Repeat("a", 63)} {
		if err := CheckAlias(ok); err != nil {
			t.Errorf("CheckAlias(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "x\n10.0.0.1 evil", strings.Repeat("a", 64), "a/b"} {
		if err := CheckAlias(bad); err == nil || !strings.Contains(err.Error(), "invalid --network-alias") {
			t.Errorf("CheckAlias(%q) = %v", bad, err)
		}
	}
}
