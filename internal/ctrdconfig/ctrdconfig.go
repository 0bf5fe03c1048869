// Package ctrdconfig writes the configuration of the private containerds
// sbxrun starts: the per-user rootless daemon (runtime/rootless), the
// integration tests' daemon and the hack/ scripts' daemons (through
// hack/ctrdconfig). It is the one place that says what such a daemon looks
// like, so a setting added here reaches all of them.
//
// A private daemon has its own root, state and sockets, and runs without
// the CRI plugin, which sbxrun does not use and which would only slow its
// start.
package ctrdconfig

import (
	"fmt"
	"path/filepath"
)

// Config is what differs between private daemons: where they keep their
// data and where they listen.
type Config struct {
	// Root is containerd's persistent data (content, snapshots, metadata).
	Root string
	// State is containerd's runtime state (bundles, shim sockets' state).
	State string
	// Address is the gRPC socket clients dial; the ttrpc socket the shims
	// use lies beside it, at Address + ".ttrpc".
	Address string
}

// Under is the configuration of a daemon that keeps everything under dir:
// dir/root, dir/state and dir/containerd.sock. hack/containerd.sh, the GPU
// check and the integration tests lay their daemons out this way.
func Under(dir string) Config {
	return Config{
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Address: filepath.Join(dir, "containerd.sock"),
	}
}

// TOML returns the config file containerd reads with --config (config
// version 2, which containerd 1.6 and 1.7 read).
func (c Config) TOML() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, c.Root, c.State, c.Address, c.Address+".ttrpc")
}
