package network

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering: network is called by the runtime only; it knows neither
// the CLI nor containerd's client nor the runtime.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/urfave/cli", "github.com/containerd/containerd/v2/client", "github.com/sbxrun/sbxrun/runtime", "github.com/sbxrun/sbxrun/cmd"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("network depends on %s", pkg)
			}
		}
	}
}
