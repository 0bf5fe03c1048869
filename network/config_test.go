package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeRoutes(t *testing.T, rs ...string) {
	t.Helper()
	old := hostRoutes
	t.Cleanup(func() { hostRoutes = old })
	hostRoutes = func() ([]route, error) {
		var out []route
		for _, r := range rs {
			out = append(out, route{netip.MustParsePrefix(r), "eth9"})
		}
		return out, nil
	}
}

func testPaths(t *testing.T) Paths {
	d := t.TempDir()
	return Paths{ConfDir: filepath.Join(d, "conf"), StateDir: filepath.Join(d, "state"), NetNSDir: filepath.Join(d, "netns"), PluginDirs: []string{filepath.Join(d, "bin")}}
}

func TestParseRoutes(t *testing.T) {
	// /proc/net/route of a host with a default route, its LAN and a
	// bridge on 10.88.0.0/16.
	in := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"cni0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
	got := parseRoutes(in)
	if len(got) != 2 || got[0].pfx.String() != "192.0.2.0/24" || got[1].pfx.String() != "10.88.0.0/16" || got[1].dev != "cni0" {
		t.Errorf("parseRoutes = %+v", got)
	}
}

func TestCreatePicksFreeSubnet(t *testing.T) {
	fakeRoutes(t, "10.88.0.0/16", "10.89.3.0/24")
	p := testPaths(t)
	n, err := Create(CreateOptions{Paths: p, Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Subnet != "10.90.0.0/16" || n.Gateway != "10.90.0.1" || n.Internal || !strings.HasPrefix(n.Bridge, "sbx-") || len(n.Bridge) > 15 {
		t.Errorf("first network: %+v", n)
	}
	n2, err := Create(CreateOptions{Paths: p, Name: "two", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if n2.Subnet != "10.91.0.0/16" || !n2.Internal || n2.Gateway != "" || n2.Bridge == n.Bridge {
		t.Errorf("second network: %+v (first %+v)", n2, n)
	}
	// The conflist is what CNI reads: name, bridge, host-local under the
	// state dir, masquerading only with egress, portmap only with egress.
	b, err := os.ReadFile(filepath.Join(p.ConfDir, "two.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var l conflist
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.Name != "two" || l.CNIVersion != "1.0.0" || len(l.Plugins) != 1 || l.Plugins[0]["type"] != "bridge" || l.Plugins[0]["ipMasq"] != false {
		t.Errorf("internal conflist: %s", b)
	}
	if ipam := l.Plugins[0]["ipam"].(map[string]any); ipam["dataDir"] != p.ipamDir() || ipam["routes"] != nil {
		t.Errorf("internal ipam: %v", ipam)
	}
	if _, err := Create(CreateOptions{Paths: p, Name: "one"}); err == nil || !strings.Contains(err.Error(), `a network named "one" already exists`) {
		t.Errorf("second create of one: %v", err)
	}
	nets, err := List(p)
	if err != nil || len(nets) != 2 || nets[0].Name != "one" || nets[1].Name != "two" {
		t.Errorf("List = %+v, %v", nets, err)
	}
}

func TestCreateSubnetErrors(t *testing.T) {
	fakeRoutes(t, "192.168.1.0/24")
	p := testPaths(t)
	if _, err := Create(CreateOptions{Paths: p, Name: "a", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, subnet, want string }{
		{"b", "192.168.1.128/25", "subnet 192.168.1.128/25 overlaps the host's route to 192.168.1.0/24 via eth9: choose another --subnet"},
		{"b", "10.50.3.0/24", `subnet 10.50.3.0/24 overlaps network "a"`},
		{"b", "8.8.8.0/24", "is not a private range"},
		{"b", "10.0.0.0/30", "use a prefix length from /8 to /29"},
		{"b", "fd00::/64", "use an IPv4 CIDR"},
		{"bridge", "", `"bridge" is a network mode, not a network name`},
		{"-x", "", `invalid network name "-x"`},
	} {
		_, err := Create(CreateOptions{Paths: p, Name: tt.name, Subnet: tt.subnet})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Create(%s, %q) = %v, want %q", tt.name, tt.subnet, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(p.ConfDir, "b.conflist")); err == nil {
		t.Error("a refused create wrote a conflist")
	}
}

func TestPickSubnetExhausted(t *testing.T) {
	_, err := pickSubnet([]used{{netip.MustParsePrefix("0.0.0.0/1"), "x"}, {netip.MustParsePrefix("128.0.0.0/1"), "y"}})
	if err == nil || !strings.Contains(err.Error(), "--subnet CIDR") {
		t.Errorf("pickSubnet with everything used: %v", err)
	}
}

func TestRemoveRefusedInUse(t *testing.T) {
	fakeRoutes(t)
	p := testPaths(t)
	if _, err := Create(CreateOptions{Paths: p, Name: "busy"}); err != nil {
		t.Fatal(err)
	}
	if err := p.writeRecord(&record{Attachment: Attachment{Network: "busy"}, Namespace: "ns", ID: "a", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	err := Remove(p, "busy")
	if err == nil || err.Error() != `network "busy" is in use by ns/a: remove those sandboxes first (`+"`sbxrun rm -f NAME`)" {
		t.Errorf("Remove in use = %v", err)
	}
	if removed, err := Prune(p); err != nil || len(removed) != 0 {
		t.Errorf("Prune with the network in use = %v, %v", removed, err)
	}
	if err := Remove(p, "nope"); err == nil || !strings.Contains(err.Error(), `no network named "nope"`) {
		t.Errorf("Remove of a missing network = %v", err)
	}
}

func TestCheck(t *testing.T) {
	p := testPaths(t)
	if err := Check(p, "missing"); err == nil || !strings.Contains(err.Error(), "create it with `sbxrun network create missing`") {
		t.Errorf("Check of a missing network = %v", err)
	}
	err := Check(p, DefaultNetwork)
	if err == nil || !strings.Contains(err.Error(), `CNI plugin "bridge" not found`) || !strings.Contains(err.Error(), "apt-get install containernetworking-plugins") {
		t.Errorf("Check without plugins = %v", err)
	}
	if err := os.MkdirAll(p.PluginDirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pl := range []string{"bridge", "host-local", "portmap"} {
		if err := os.WriteFile(filepath.Join(p.PluginDirs[0], pl), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Check(p, DefaultNetwork); err != nil {
		t.Errorf("Check with plugins = %v", err)
	}
}

func TestWithoutPlugin(t *testing.T) {
	b, err := render("n", "br", "10.1.0.0/16", "/x", false)
	if err != nil {
		t.Fatal(err)
	}
	got := pluginTypes(withoutPlugin(b, "portmap"))
	if strings.Join(got, ",") != "bridge,host-local" {
		t.Errorf("plugins without portmap: %q", got)
	}
}

func TestBridgeName(t *testing.T) {
	if got := bridgeName(DefaultConfDir, DefaultNetwork, true); got != "sbxrun0" {
		t.Errorf("default bridge = %q", got)
	}
	a, b := bridgeName("/tmp/a", DefaultNetwork, false), bridgeName("/tmp/b", DefaultNetwork, false)
	if a == b || len(a) > 15 || a == "sbxrun0" {
		t.Errorf("bridges of two configuration directories: %q, %q", a, b)
	}
}
