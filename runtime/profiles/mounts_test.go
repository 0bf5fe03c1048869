package profiles

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestDuplicateMountTargets: layers merge mounts by target (a later layer
// replaces a mount of an earlier one), but two mounts at one target in one
// layer would drop the first without a word, so they are refused: on the
// command line (-v twice, -v and --mount) and in one profile of a file.
func TestDuplicateMountTargets(t *testing.T) {
	p := builtins(t)
	for _, flags := range [][]MountSpec{
		{{Source: "/a", Target: "/data"}, {Source: "/b", Target: "/data"}},
		{{Source: "/a", Target: "/data"}, {Source: "/b", Target: "/data/"}},
		{{Source: "/a", Target: "/data"}, {Type: "tmpfs", Target: "/x/../data"}},
	} {
		_, err := p.Resolve("base", &Profile{Mounts: flags})
		if err == nil || !strings.Contains(err.Error(), `-v/--mount /data: two mounts at "/data": keep one`) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("flags %+v: err = %v, want an invalid-argument error naming the target", flags, err)
		}
	}

	t.Run("one file", func(t *testing.T) {
		_, err := Load(profileFiles(t, "", "profiles:\n  x:\n    image: img\n    mounts:\n      - /a:/data\n      - /b:/data\n", "", ""))
		if err == nil || !strings.Contains(err.Error(), `two mounts at "/data": keep one`) || !strings.Contains(err.Error(), "user.yaml:") {
			t.Errorf("err = %v, want the file and the target", err)
		}
	})

	t.Run("between layers the later wins", func(t *testing.T) {
		q, err := Load(profileFiles(t, "", "profiles:\n  x:\n    image: img\n    mounts:\n      - /a:/data\n", "", ""))
		if err != nil {
			t.Fatal(err)
		}
		r, err := q.Resolve("x", &Profile{Mounts: []MountSpec{{Source: "/b", Target: "/data"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Profile.Mounts) != 1 || r.Profile.Mounts[0].Source != "/b" {
			t.Errorf("mounts %+v, want the flag's /b:/data only", r.Profile.Mounts)
		}
	})
}
