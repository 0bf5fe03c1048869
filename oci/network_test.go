package oci

import (
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// netNS is the network namespace entry of a spec, nil when it has none.
func netNS(s *specs.Spec) *specs.LinuxNamespace {
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return &s.Linux.Namespaces[i]
		}
	}
	return nil
}

func TestNetworkNamespace(t *testing.T) {
	img := ocispec.ImageConfig{Cmd: []string{"sh"}}
	tests := []struct {
		name    string
		s       Sandbox
		present bool
		path    string
	}{
		{name: "host shares the host's", s: Sandbox{Network: "host"}, present: false},
		{name: "default is host", s: Sandbox{}, present: false},
		{name: "none gets a new one", s: Sandbox{Network: "none"}, present: true, path: ""},
		{name: "bridge joins the runtime's", s: Sandbox{Network: "bridge", NetNSPath: "/var/lib/sbxrun/netns/ns-a"}, present: true, path: "/var/lib/sbxrun/netns/ns-a"},
		{name: "a named network joins the runtime's", s: Sandbox{Network: "backend", NetNSPath: "/run/n/ns-b"}, present: true, path: "/run/n/ns-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := netNS(generate(t, &tt.s, img))
			if (got != nil) != tt.present {
				t.Fatalf("network namespace present = %v, want %v", got != nil, tt.present)
			}
			if got != nil && got.Path != tt.path {
				t.Errorf("network namespace path = %q, want %q", got.Path, tt.path)
			}
		})
	}
}

func TestNetworkNamespaceValidate(t *testing.T) {
	tests := []struct {
		name string
		s    Sandbox
		want string
	}{
		{name: "bridge without a path", s: Sandbox{Network: "bridge"}, want: `network "bridge" needs the absolute path of its network namespace`},
		{name: "relative path", s: Sandbox{Network: "n1", NetNSPath: "netns/x"}, want: `network "n1" needs the absolute path`},
		{name: "host with a path", s: Sandbox{Network: "host", NetNSPath: "/run/x"}, want: `network "host" takes no network namespace path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// A sandbox on a bridge has no NET_RAW unless it asks: a raw socket there
// forges other sandboxes' addresses, and ping needs none.
func TestBridgeDropsNetRaw(t *testing.T) {
	img := ocispec.ImageConfig{Cmd: []string{"sh"}}
	s := Sandbox{Network: "bridge", NetNSPath: "/run/x"}
	if c := generate(t, &s, img).Process.Capabilities; slices.Contains(c.Bounding, "CAP_NET_RAW") {
		t.Errorf("bridge sandbox has CAP_NET_RAW: %q", c.Bounding)
	}
	s.CapAdd = []string{"net_raw"}
	if c := generate(t, &s, img).Process.Capabilities; !slices.Contains(c.Bounding, "CAP_NET_RAW") {
		t.Errorf("bridge sandbox with --cap-add net_raw lacks CAP_NET_RAW: %q", c.Bounding)
	}
}
