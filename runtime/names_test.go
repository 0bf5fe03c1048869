package runtime

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// TestContainerID checks that every name Docker accepts maps to a valid
// containerd ID, that names containerd accepts map to themselves, and that
// the mapping is deterministic and keeps distinct names apart.
func TestContainerID(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		name, want string
	}{
		{name: "box", want: "box"},
		{name: "a", want: "a"},
		{name: "a-b_c.d", want: "a-b_c.d"},
		{name: strings.Repeat("x", 76), want: strings.Repeat("x", 76)},
		{name: "a--b"}, {name: "a__b"}, {name: "a..b"}, {name: "a-"}, {name: "a-_.b"}, {name: "x."},
		{name: long}, {name: strings.Repeat("a-", 60)},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkName(tt.name); err != nil {
				t.Fatalf("checkName(%q) = %v, want nil (Docker accepts it)", tt.name, err)
			}
			id := containerID(tt.name)
			if err := identifiers.Validate(id); err != nil {
				t.Errorf("containerID(%q) = %q: %v", tt.name, id, err)
			}
			if tt.want != "" && id != tt.want {
				t.Errorf("containerID(%q) = %q, want %q", tt.name, id, tt.want)
			}
			if id2 := containerID(tt.name); id2 != id {
				t.Errorf("containerID(%q) is not deterministic: %q then %q", tt.name, id, id2)
			}
			if other, dup := seen[id]; dup {
				t.Errorf("%q and %q map to one ID %q", other, tt.name, id)
			}
			seen[id] = tt.name
			if h := hostnameFor(tt.name); len(h) > maxHostname || h == "" {
				t.Errorf("hostnameFor(%q) = %q: not a hostname of 1 to 64 characters", tt.name, h)
			}
		})
	}
}

func TestCheckNameRefuses(t *testing.T) {
	for _, name := range []string{"-a", "_a", ".a", "a b", "a/b", "a:b", "é", strings.Repeat("a", 129)} {
		err := checkName(name)
		if err == nil || !strings.Contains(err.Error(), "--name") || strings.Contains(err.Error(), "\n") {
			t.Errorf("checkName(%q) = %v, want one line about --name", name, err)
		}
	}
}

func TestGenerateNameFitsHostname(t *testing.T) {
	n := generateName("registry.example.com/"+strings.Repeat("very-long-image-name-", 10)+":tag", "")
	if len(n) > maxHostname || checkName(n) != nil || containerID(n) != n {
		t.Errorf("generateName for a long image = %q (%d characters): want a valid name of at most %d", n, len(n), maxHostname)
	}
}
