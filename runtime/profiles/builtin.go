package profiles

import (
	"os"
	"strings"
)

// Images of the built-in profiles.
const (
	ImageBase     = "ghcr.io/sbxrun/base:latest"
	ImageModelDev = "ghcr.io/sbxrun/model-dev:latest"
	ImageTest     = "ghcr.io/sbxrun/test:latest"
)

// RegistryEnv names the variable that repoints the built-in profiles to a
// private registry: with SBXRUN_REGISTRY=registry.example.com/mirror, base
// runs registry.example.com/mirror/base:latest. A profile's image key wins.
const RegistryEnv = "SBXRUN_REGISTRY"

// builtinImage is ref with ghcr.io/sbxrun replaced by $SBXRUN_REGISTRY.
func builtinImage(ref string) string {
	prefix := strings.TrimSuffix(strings.TrimSpace(os.Getenv(RegistryEnv)), "/")
	if prefix == "" {
		return ref
	}
	return prefix + strings.TrimPrefix(ref, "ghcr.io/sbxrun")
}

// Where a value came from, as Resolved.Sources says it.
const (
	SourceBuiltin  = "built-in"
	SourceFlag     = "flag"
	SourceArgument = "argument"
)

// defaultLayer is under every profile and every plain image run: what
// sbxrun does when nothing says otherwise.
func defaultLayer() Profile {
	return Profile{
		Pull:        pointerTo("missing"),
		Network:     pointerTo("bridge"),
		StopSignal:  pointerTo("SIGTERM"),
		StopTimeout: pointerTo(10),
		Userns:      pointerTo("keep-id"),
	}
}

// builtinProfiles are the three sandboxes of the design: base, model-dev and
// test. Profile files layer over them.
func builtinProfiles() map[string]Profile {
	return map[string]Profile{
		"base": {
			Description: "development tools; the current directory at /workspace",
			Image:       pointerTo(builtinImage(ImageBase)),
			Workdir:     pointerTo("/workspace"),
			Mounts: []MountSpec{
				{Source: ".", Target: "/workspace"},
				{Source: "~/.gitconfig", Target: "~/.gitconfig", ReadOnly: true, Optional: true},
				{Source: "~/.ssh", Target: "~/.ssh", ReadOnly: true, Optional: true},
			},
			Env: map[string]string{
				"PYTHONPATH": "/workspace",
				"NODE_ENV":   "development",
			},
		},
		"model-dev": {
			Extends:     "base",
			Description: "CUDA, PyTorch and Ollama; model caches kept on the host",
			Image:       pointerTo(builtinImage(ImageModelDev)),
			Workdir:     pointerTo("/workspace/models"),
			Mounts: []MountSpec{
				{Source: "~/.cache/huggingface", Target: "~/.cache/huggingface", Create: true},
				{Source: "~/.cache/torch", Target: "~/.cache/torch", Create: true},
				{Source: "~/.ollama", Target: "~/.ollama", Create: true},
			},
			// PyTorch data loaders share tensors through /dev/shm.
			ShmSize: pointerTo("2g"),
			// Every GPU, through CDI; a host without GPUs runs without.
			GPUs: pointerTo("all"),
			GPU:  pointerTo("optional"),
		},
		"test": {
			Extends:     "base",
			Description: "browsers, Xvfb and pytest",
			Image:       pointerTo(builtinImage(ImageTest)),
			Workdir:     pointerTo("/workspace/tests"),
			Env: map[string]string{
				"DISPLAY":        ":99",
				"PYTEST_ADDOPTS": "--color=yes",
			},
			ShmSize: pointerTo("1g"),
		},
	}
}

// pointerTo returns a pointer to a copy of v.
func pointerTo[T any](v T) *T { return &v }
