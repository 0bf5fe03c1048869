package network

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGC: records of sandboxes that are gone are undone (an unfinished
// ADD only after addGrace), others are kept; address allocations and
// namespace files nothing records go.
func TestGC(t *testing.T) {
	p := testPaths(t)
	now := time.Now()
	recs := []*record{
		{Namespace: "ns", ID: "live", Name: "live", Attached: true, Created: now},
		{Namespace: "ns", ID: "gone", Name: "gone", Attached: true, Created: now},
		{Namespace: "ns", ID: "adding", Name: "adding", Created: now},
		{Namespace: "ns", ID: "stuck", Name: "stuck", Created: now.Add(-time.Minute)},
		{Namespace: "other", ID: "gone", Name: "other-gone", Attached: true, Created: now},
	}
	for _, r := range recs {
		r.CNIID = p.cniPrefix(r.Namespace) + r.ID
		r.NetNSPath = p.NetNSPath(r.Namespace, r.ID)
		r.HostsPath = p.HostsPath(r.Namespace, r.ID)
		if err := p.writeRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	ipam := filepath.Join(p.ipamDir(), "net")
	if err := os.MkdirAll(ipam, 0o755); err != nil {
		t.Fatal(err)
	}
	for ip, owner := range map[string]string{"10.1.0.2": "ns-live", "10.1.0.3": "ns-lost", "10.1.0.4": "other-lost", "10.1.0.5": "ns-adding"} {
		ns, id, _ := strings.Cut(owner, "-")
		if err := os.WriteFile(filepath.Join(ipam, ip), []byte(p.cniPrefix(ns)+id+"\r\neth0"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(p.NetNSDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ns-live", "ns-orphan", "other-orphan"} {
		if err := os.WriteFile(filepath.Join(p.NetNSDir, f), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	done, err := GC(context.Background(), p, "ns", func(id string) bool { return id == "live" })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(done)
	if !slices.Equal(done, []string{"gone", "stuck"}) {
		t.Errorf("GC detached %q, want gone and stuck", done)
	}
	left, _ := p.records()
	var names []string
	for _, r := range left {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"adding", "live", "other-gone"}) {
		t.Errorf("records left: %q", names)
	}
	for f, want := range map[string]bool{
		filepath.Join(ipam, "10.1.0.2"):           true,  // live
		filepath.Join(ipam, "10.1.0.3"):           false, // no record in ns
		filepath.Join(ipam, "10.1.0.4"):           true,  // another namespace's
		filepath.Join(ipam, "10.1.0.5"):           true,  // still adding
		filepath.Join(p.NetNSDir, "ns-live"):      true,
		filepath.Join(p.NetNSDir, "ns-orphan"):    false,
		filepath.Join(p.NetNSDir, "other-orphan"): true,
	} {
		if _, err := os.Stat(f); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", f, err == nil, want)
		}
	}
}
