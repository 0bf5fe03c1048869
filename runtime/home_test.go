package runtime

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// TestApplyImageHome: "~" left to the image resolves to the image's HOME,
// else its user's home, else /root.
func TestApplyImageHome(t *testing.T) {
	tests := []struct {
		name string
		img  ocispec.ImageConfig
		want string
	}{
		{"image HOME", ocispec.ImageConfig{User: "1000:1000", Env: []string{"PATH=/bin", "HOME=/home/dev"}}, "/home/dev/.cache/torch"},
		{"named image user", ocispec.ImageConfig{User: "dev"}, "/home/dev/.cache/torch"},
		{"root image", ocispec.ImageConfig{}, "/root/.cache/torch"},
		{"numeric user without HOME", ocispec.ImageConfig{User: "1000"}, "/root/.cache/torch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := &oci.Sandbox{Workdir: profiles.HomeMarker + "/w", Mounts: []oci.Mount{
				{Source: "/c", Destination: profiles.HomeMarker + "/.cache/torch"},
				{Source: "/d", Destination: "/data"},
			}}
			applyImageHome(sb, tt.img)
			if sb.Mounts[0].Destination != tt.want || sb.Mounts[1].Destination != "/data" {
				t.Errorf("destinations %q, %q; want %q, /data", sb.Mounts[0].Destination, sb.Mounts[1].Destination, tt.want)
			}
			if want := tt.want[:len(tt.want)-len("/.cache/torch")] + "/w"; sb.Workdir != want {
				t.Errorf("workdir %q, want %q", sb.Workdir, want)
			}
		})
	}
}
