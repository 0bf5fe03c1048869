package runtime

import (
	"context"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/oci"
)

func TestCleanups(t *testing.T) {
	for _, tt := range []struct {
		name   string
		disarm bool
		want   []string
	}{
		{"failed", false, []string{"task", "log", "container", "client"}},
		{"went ahead", true, []string{"log", "client"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			step := func(s string) func() { return func() { got = append(got, s) } }
			var c cleanups
			c.always(step("client"))
			c.onFail(step("container"))
			c.always(step("log"))
			c.onFail(step("task"))
			if tt.disarm {
				c.disarm()
			}
			c.run()
			c.run() // a second run does nothing
			if !slices.Equal(got, tt.want) {
				t.Errorf("steps %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCreatePins: the spec `create` stores keeps the user's bind sources,
// and the record says which spec mount each bind mount is, whatever the
// spec mounts besides (hosts files, tmpfs, CDI).
func TestCreatePins(t *testing.T) {
	src := t.TempDir()
	sb := &oci.Sandbox{ID: t.Name(), Args: []string{"true"}, HostsFile: "/etc/hosts", Mounts: []oci.Mount{
		{Type: "tmpfs", Destination: "/tmp"},
		{Source: src, Destination: "/mnt"},
		{Source: src, Destination: "/again", ReadOnly: true},
	}}
	rec := &createRecord{}
	if _, err := rec.planPins(sb); err != nil {
		t.Fatal(err)
	}
	opts, err := oci.Build(sb, ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ctrdoci.GenerateSpec(namespaces.WithNamespace(context.Background(), "test"), nil, &containers.Container{ID: t.Name()}, append(opts, rec.markPins(sb))...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Pins) != 2 {
		t.Fatalf("pins %v, want the two bind mounts", rec.Pins)
	}
	for k, pi := range rec.Pins {
		i, j := pi[0], pi[1]
		if i != k+1 {
			t.Errorf("pin %d is sandbox mount %d, want %d", k, i, k+1)
		}
		m := spec.Mounts[j]
		if m.Source != src || m.Destination != sb.Mounts[i].Destination || m.Type != "bind" {
			t.Errorf("spec mount %d = %+v, want the bind of %q at %q", j, m, src, sb.Mounts[i].Destination)
		}
	}
	for _, m := range spec.Mounts {
		if m.Source != "" && m.Source[0] == 0 {
			t.Errorf("a placeholder is left in the spec: %+v", m)
		}
	}
}
