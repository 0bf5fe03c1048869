package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"

	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// DefaultAddress is containerd's rootful socket.
const DefaultAddress = "/run/containerd/containerd.sock"

// DefaultNamespace is the containerd namespace sbxrun works in.
const DefaultNamespace = "sbxrun"

// Global holds the options every command shares.
type Global struct {
	// Address of containerd's socket; empty resolves through ResolveAddress.
	Address string
	// Namespace in containerd; empty is DefaultNamespace.
	Namespace string
	// StateDir holds logs and generated files; empty is StateDir().
	StateDir string
	// ConfigFile is --config.
	ConfigFile string
	// Debug prints more detail on errors.
	Debug bool
}

var quietLogs sync.Once

// ResolveAddress picks the daemon address: the explicit one, then
// SBXRUN_ADDRESS, CONTAINERD_ADDRESS, the user's rootless containerd when
// not root, then DefaultAddress.
func ResolveAddress(explicit string) string {
	for _, a := range []string{explicit, os.Getenv("SBXRUN_ADDRESS"), os.Getenv("CONTAINERD_ADDRESS")} {
		if a != "" {
			return a
		}
	}
	if rootless.Active() {
		if s := rootless.Socket(); s != "" {
			return s
		}
	}
	return DefaultAddress
}

// StateDir is where sbxrun keeps its own files: SBXRUN_STATE_DIR, else
// /var/lib/sbxrun for root, else $XDG_DATA_HOME/sbxrun.
func StateDir() string {
	if d := os.Getenv("SBXRUN_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 && !rootless.InNamespace() {
		return "/var/lib/sbxrun"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sbxrun")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "sbxrun")
}

func (g *Global) namespace() string {
	if g.Namespace == "" {
		return DefaultNamespace
	}
	return g.Namespace
}

func (g *Global) stateDir() string {
	if g.StateDir == "" {
		return StateDir()
	}
	return g.StateDir
}

// connect dials containerd and returns a client plus a context carrying the
// namespace. A missing or dead socket is one line that names the fix.
func (g *Global) connect(ctx context.Context) (*client.Client, context.Context, error) {
	quietLogs.Do(func() {
		// The containerd client logs retries through logrus; sbxrun reports
		// errors itself, so only --debug shows them.
		if g.Debug {
			_ = log.SetLevel("debug")
		} else {
			_ = log.SetLevel("fatal")
		}
	})
	addr := ResolveAddress(g.Address)
	ns := g.namespace()
	if err := validNamespace(ns); err != nil {
		return nil, ctx, err
	}
	if _, err := os.Stat(strings.TrimPrefix(addr, "unix://")); err != nil {
		if rootless.Active() {
			return nil, ctx, fmt.Errorf("cannot reach containerd: socket %q: %w; as a non-root user start your own with `sbxrun rootless setup && sbxrun rootless start`, or point --address/SBXRUN_ADDRESS at a socket you may use", addr, errors.Unwrap(err))
		}
		return nil, ctx, fmt.Errorf("cannot reach containerd: socket %q: %w; start containerd (systemctl start containerd, or `make demo` for a private one) or point --address/SBXRUN_ADDRESS at its socket", addr, errors.Unwrap(err))
	}
	// An explicit default runtime saves a namespace-label round trip.
	c, err := client.New(addr, client.WithDefaultNamespace(ns), client.WithTimeout(5*time.Second),
		client.WithDefaultRuntime(defaults.DefaultRuntime))
	if err != nil {
		return nil, ctx, fmt.Errorf("cannot reach containerd at %q: %w; is containerd running? (systemctl start containerd)", addr, err)
	}
	return c, namespaces.WithNamespace(ctx, ns), nil
}

func validNamespace(ns string) error {
	if err := identifiers.Validate(ns); err != nil {
		return fmt.Errorf("invalid --namespace %q: use letters, digits, '.', '_' and '-'", ns)
	}
	return nil
}
