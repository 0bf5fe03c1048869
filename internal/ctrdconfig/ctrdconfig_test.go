package ctrdconfig

import (
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestUnder: a daemon under a directory keeps its root, state and sockets
// there, and the file is exactly what hack/containerd.sh and the tests
// started containerd with before this package existed.
func TestUnder(t *testing.T) {
	want := `version = 2
root = "/var/lib/ctd/root"
state = "/var/lib/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "/var/lib/ctd/containerd.sock"

[ttrpc]
  address = "/var/lib/ctd/containerd.sock.ttrpc"
`
	if got := Under("/var/lib/ctd").TOML(); got != want {
		t.Errorf("Under(/var/lib/ctd).TOML() =\n%s\nwant\n%s", got, want)
	}
}

// TestTOMLDecodes: the file decodes as TOML to the settings it was given,
// also for paths with characters TOML strings must escape.
func TestTOMLDecodes(t *testing.T) {
	for _, c := range []Config{
		Under("/run/user/1000/sbxrun"),
		{Root: `/home/a "quoted" dir/root`, State: `/tmp/back\slash/state`, Address: "/tmp/spaced dir/é.sock"},
	} {
		var got struct {
			Version         int
			Root            string
			State           string
			DisabledPlugins []string                 `toml:"disabled_plugins"`
			GRPC            struct{ Address string } `toml:"grpc"`
			TTRPC           struct{ Address string } `toml:"ttrpc"`
		}
		if err := toml.Unmarshal([]byte(c.TOML()), &got); err != nil {
			t.Fatalf("decoding the config for %+v: %v\n%s", c, err, c.TOML())
		}
		if got.Version != 2 || got.Root != c.Root || got.State != c.State ||
			got.GRPC.Address != c.Address || got.TTRPC.Address != c.Address+".ttrpc" ||
			len(got.DisabledPlugins) != 1 || got.DisabledPlugins[0] != "io.containerd.grpc.v1.cri" {
			t.Errorf("config for %+v decodes to %+v", c, got)
		}
	}
}
