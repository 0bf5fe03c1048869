package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// TestResolveCreatesNothing: a manifest is for another machine, so
// resolving one creates no cache directory here, needs no CDI spec for its
// GPUs and no containerd, and classifies each mount.
func TestResolveCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	home, cwd := filepath.Join(dir, "home"), filepath.Join(dir, "proj")
	for _, d := range []string{home, cwd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	none := filepath.Join(dir, "none.yaml")
	gpus, mem := "2", "1g"
	o := &RunOptions{
		Global: Global{Address: filepath.Join(dir, "no-containerd.sock")},
		Target: "model-dev", Args: []string{"ollama", "serve"}, Name: "ollama",
		Flags:       &profiles.Profile{GPUs: &gpus, Memory: &mem, Env: map[string]string{"HOME": "/home/dev"}},
		CDISpecDirs: []string{filepath.Join(dir, "no-cdi")},
		Load:        profiles.LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none, TrustFile: filepath.Join(dir, "trust.json")},
		Host:        profiles.HostEnv{Home: home, Cwd: cwd},
		Stderr:      &bytes.Buffer{},
	}
	r, err := Resolve(context.Background(), o, o.LocalImages())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if entries, _ := os.ReadDir(home); len(entries) > 0 {
		t.Errorf("Resolve created %v in the home directory", entries)
	}
	if r.GPUs == nil || r.GPUs.Count != 2 || r.Sandbox.Memory != 1<<30 || len(r.Sandbox.CDIDevices) > 0 {
		t.Errorf("GPUs %+v, memory %d, CDI devices %v: want 2 GPUs asked for, 1g, no device resolved", r.GPUs, r.Sandbox.Memory, r.Sandbox.CDIDevices)
	}
	if r.ImageConfig != nil {
		t.Errorf("image config %+v without a containerd", r.ImageConfig)
	}
	kinds := map[string]string{}
	for _, m := range r.Mounts {
		kinds[m.Destination] = m.Kind + " " + m.As
	}
	want := map[string]string{
		"/workspace":                   MountWorkspace + " .",
		"/home/dev/.cache/huggingface": MountCache + " ~/.cache/huggingface",
		"/home/dev/.cache/torch":       MountCache + " ~/.cache/torch",
		"/home/dev/.ollama":            MountCache + " ~/.ollama",
	}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("mount %s: %q, want %q (all: %v)", k, kinds[k], v, kinds)
		}
	}
	// The local sandbox's capabilities: containerd's defaults less NET_RAW
	// (bridge network).
	if slices.Contains(r.Caps, "CAP_NET_RAW") || !slices.Contains(r.Caps, "CAP_NET_BIND_SERVICE") || !slices.Contains(r.Caps, "CAP_CHOWN") {
		t.Errorf("caps %v", r.Caps)
	}
	if !r.Set("gpus") || r.Set("network") || r.Set("workdir") {
		t.Errorf("set: gpus %v (a flag), network %v and workdir %v (built-in)", r.Set("gpus"), r.Set("network"), r.Set("workdir"))
	}
}

// TestResolveRefusesAsRun: bad input is refused as run refuses it.
func TestResolveRefusesAsRun(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none.yaml")
	mem := "lots"
	o := &RunOptions{
		Target: "base", Flags: &profiles.Profile{Memory: &mem},
		Load: profiles.LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none},
		Host: profiles.HostEnv{Home: dir, Cwd: dir}, Stderr: &bytes.Buffer{},
	}
	if _, err := Resolve(context.Background(), o, nil); err == nil {
		t.Fatal("Resolve accepted --memory lots")
	}
}
