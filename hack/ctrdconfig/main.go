// Command ctrdconfig prints the containerd config of a private daemon that
// keeps its root, state and sockets under DIR (internal/ctrdconfig), so the
// shell scripts in hack/ start their daemons as the Go code does:
//
//	go run ./hack/ctrdconfig DIR >DIR/config.toml
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sbxrun/sbxrun/internal/ctrdconfig"
)

func main() {
	if len(os.Args) != 2 || !filepath.IsAbs(os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: ctrdconfig DIR: DIR is the daemon's directory, as an absolute path")
		os.Exit(2)
	}
	fmt.Print(ctrdconfig.Under(filepath.Clean(os.Args[1])).TOML())
}
