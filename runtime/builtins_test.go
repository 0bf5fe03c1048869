package runtime

import (
	"path/filepath"
	"testing"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// builtins loads the built-in profiles and nothing else.
func builtins(t *testing.T) *profiles.Set {
	t.Helper()
	t.Setenv(profiles.RegistryEnv, "")
	none := filepath.Join(t.TempDir(), "none.yaml")
	p, err := profiles.Load(profiles.LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pointerTo returns a pointer to a copy of v.
func pointerTo[T any](v T) *T { return &v }
