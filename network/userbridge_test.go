package network

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rootless named network: a bridge without address, gateway or
// masquerading, no portmap, and the uplink said in the list, which parse
// reads back (internal or not, no gateway: each sandbox's pasta is its).
func TestCreateRootless(t *testing.T) {
	fakeRoutes(t)
	p := testPaths(t)
	p.Rootless = true
	for _, internal := range []bool{false, true} {
		name := "dev"
		if internal {
			name = "sealed"
		}
		n, err := Create(CreateOptions{Paths: p, Name: name, Internal: internal})
		if err != nil {
			t.Fatal(err)
		}
		if !n.Rootless || n.Internal != internal || n.Gateway != "" || n.Subnet == "" || !strings.HasPrefix(n.Bridge, "sbx-") {
			t.Errorf("rootless network %q: %+v, want rootless, internal %v, a subnet, a bridge and no gateway", name, n, internal)
		}
		b, err := os.ReadFile(n.ConfigFile)
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			Sbxrun  map[string]string `json:"sbxrun"`
			Plugins []map[string]any  `json:"plugins"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		want := "pasta"
		if internal {
			want = "none"
		}
		if l.Sbxrun["uplink"] != want || len(l.Plugins) != 1 || l.Plugins[0]["type"] != "bridge" || l.Plugins[0]["isGateway"] != false || l.Plugins[0]["ipMasq"] != false {
			t.Errorf("rootless network %q's list:\n%s\nwant uplink %q and one bridge plugin without gateway or masquerading", name, b, want)
		}
		if ipam, _ := l.Plugins[0]["ipam"].(map[string]any); ipam["routes"] != nil {
			t.Errorf("rootless network %q has routes %v: its sandboxes' default route is pasta's", name, ipam["routes"])
		}
	}
}

// Each kind of sbxrun refuses the other's networks, in one line that
// says what to do, before anything is created.
func TestCheckKind(t *testing.T) {
	fakeRoutes(t)
	p := testPaths(t)
	if err := os.MkdirAll(p.PluginDirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pl := range []string{"bridge", "host-local", "portmap"} {
		if err := os.WriteFile(filepath.Join(p.PluginDirs[0], pl), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := p
	user.Rootless = true
	if _, err := Create(CreateOptions{Paths: p, Name: "rootnet"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(CreateOptions{Paths: user, Name: "usernet"}); err != nil {
		t.Fatal(err)
	}
	if err := Check(p, "rootnet"); err != nil {
		t.Errorf("root, a root network: %v", err)
	}
	if err := Check(user, "usernet"); err != nil {
		t.Errorf("rootless, a rootless network: %v", err)
	}
	if err := Check(user, "rootnet"); err == nil || !strings.Contains(err.Error(), "made for root sbxrun") || !strings.Contains(err.Error(), "sbxrun network create") {
		t.Errorf("rootless, a root network: %v", err)
	}
	if err := Check(p, "usernet"); err == nil || !strings.Contains(err.Error(), "made by rootless sbxrun") {
		t.Errorf("root, a rootless network: %v", err)
	}
	if _, err := Begin(t.Context(), AttachOptions{Paths: user, Network: "rootnet", Namespace: "ns", ID: "x"}); err == nil || !strings.Contains(err.Error(), "made for root sbxrun") {
		t.Errorf("Begin, rootless, a root network: %v", err)
	}
	if recs, _ := user.records(); len(recs) != 0 {
		t.Errorf("a refused Begin left records: %v", recs)
	}
}

// Names rootless sbxrun gives a meaning of its own are refused: "pasta"
// is what rootless sandboxes' own networks are recorded under (a network
// so named would have every such sandbox as a member), and under rootless
// "sbxrun", the default network, is pasta's.
func TestCreateReservedNames(t *testing.T) {
	fakeRoutes(t)
	p := testPaths(t)
	if _, err := Create(CreateOptions{Paths: p, Name: PastaNetwork}); err == nil || !strings.Contains(err.Error(), "choose another name") {
		t.Errorf("network create pasta: %v", err)
	}
	user := p
	user.Rootless = true
	if _, err := Create(CreateOptions{Paths: user, Name: DefaultNetwork}); err == nil || !strings.Contains(err.Error(), "choose another name") {
		t.Errorf("rootless network create sbxrun: %v", err)
	}
	if nets, _ := user.all(); len(nets) != 0 {
		t.Errorf("refused creates left networks: %v", nets)
	}
}

// GC removes libcni's cached results of sandboxes it has no record of, in
// its own containerd namespace only.
func TestGCCachedResults(t *testing.T) {
	p := testPaths(t)
	dir := filepath.Join(p.cacheDir(), "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	live := &record{Namespace: "ns", ID: "live", Name: "live", Attached: true}
	live.CNIID = p.cniPrefix("ns") + "live"
	if err := p.writeRecord(live); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{
		"net-" + p.cniPrefix("ns") + "live-eth0":       true,
		"net-" + p.cniPrefix("ns") + "gone-id-eth0":    false,
		"net-" + p.cniPrefix("other") + "gone-id-eth0": true,
		"net-" + "somebody-else-s-container-eth0":      true,
	}
	for f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := GC(t.Context(), p, "ns", func(id string) bool { return id == "live" }); err != nil {
		t.Fatal(err)
	}
	for f, keep := range files {
		_, err := os.Stat(filepath.Join(dir, f))
		if (err == nil) != keep {
			t.Errorf("cached result %s: kept %v, want %v", f, err == nil, keep)
		}
	}
}
