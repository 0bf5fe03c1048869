package profiles

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestExampleConfig keeps packaging/sbxrun.yaml.example, which make install
// and the package ship as /etc/sbxrun/sbxrun.yaml.example, from going
// stale: it loads and resolves with the profile loader, as the system
// file, and sets every key a profile may have.
func TestExampleConfig(t *testing.T) {
	const example = "../../packaging/sbxrun.yaml.example"
	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	opts := profileFiles(t, string(text), "", "", "")
	set, err := Load(opts)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	if !set.Has("example") {
		t.Fatalf("the example defines no profile named example: %v", set.Names())
	}
	r, err := set.Resolve("example", nil)
	if err != nil {
		t.Fatalf("the example profile does not resolve: %v", err)
	}
	tmpfs := slices.ContainsFunc(r.Profile.Mounts, func(m MountSpec) bool { return m.Type == "tmpfs" && m.Target == "/tmp" })
	if r.Profile.Image == nil || *r.Profile.Image != "ghcr.io/sbxrun/base:latest" || !tmpfs {
		t.Errorf("resolved example %+v lacks its image or its tmpfs", r.Profile)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^    ([a-z_]+):`).FindAllStringSubmatch(string(text), -1) {
		keys[m[1]] = true
	}
	pt := reflect.TypeFor[Profile]()
	for i := range pt.NumField() {
		key, _, _ := strings.Cut(pt.Field(i).Tag.Get("yaml"), ",")
		if !keys[key] {
			t.Errorf("the example does not set the profile key %q: add it, with a comment", key)
		}
	}
}
