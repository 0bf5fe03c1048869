package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

// TestUserError checks the one line for a user or group that a
// container's files do not list, and that other errors pass unchanged.
func TestUserError(t *testing.T) {
	other := errors.New("snapshot gone")
	missing := func(name string) error {
		return fmt.Errorf("setting user: %w", &fs.PathError{Op: "openat", Path: name, Err: fs.ErrNotExist})
	}
	tests := []struct {
		name, user, where string
		err               error
		want              string // "": err unchanged
	}{
		{"unknown user", "nosuch", "the sandbox", fmt.Errorf("setting user %q: %w", "nosuch", ctrdoci.ErrNoUsersFound),
			`no user "nosuch" in the sandbox's /etc/passwd: use a numeric UID[:GID] or a name listed there`},
		{"unknown user with group", "nosuch:dev", "the image", ctrdoci.ErrNoUsersFound,
			`no user "nosuch" in the image's /etc/passwd: use a numeric UID[:GID] or a name listed there`},
		{"unknown group", "dev:nosuch", "the sandbox", ctrdoci.ErrNoGroupsFound,
			`no group "nosuch" in the sandbox's /etc/group: use a numeric GID or a name listed there`},
		{"no passwd", "dev", "the sandbox", missing("etc/passwd"),
			`the sandbox has no /etc/passwd to look up user "dev" in: use a numeric UID[:GID]`},
		{"no group file", "1000:dev", "the image", missing("etc/group"),
			`the image has no /etc/group to look up group "dev" in: use a numeric GID`},
		{"other file missing", "dev", "the image", missing("var/lib/x"), ""},
		{"not a lookup", "dev", "the image", other, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := userError(tt.user, tt.where, tt.err)
			if tt.want == "" {
				if got != tt.err {
					t.Fatalf("userError = %v, want the error unchanged", got)
				}
				return
			}
			if got.Error() != tt.want {
				t.Errorf("userError = %q\nwant        %q", got, tt.want)
			}
			if !errdefs.IsInvalidArgument(got) || !errors.Is(got, tt.err) {
				t.Errorf("userError = %v: want it to wrap %v and be an invalid argument", got, tt.err)
			}
		})
	}
}

// TestRunUserError checks that a run names the user it was given, else the
// image's USER.
func TestRunUserError(t *testing.T) {
	tests := []struct {
		sandbox, image, want string
	}{
		{"nosuch", "dev", `"nosuch"`},
		{"", "ghost", `"ghost"`},
	}
	for _, tt := range tests {
		got := runUserError(ctrdoci.ErrNoUsersFound, tt.sandbox, tt.image)
		if !strings.Contains(got.Error(), tt.want) || !strings.Contains(got.Error(), "the image's /etc/passwd") {
			t.Errorf("runUserError(%q, %q) = %q, want it to name %s in the image's /etc/passwd", tt.sandbox, tt.image, got, tt.want)
		}
	}
	if got := runUserError(ctrdoci.ErrNoUsersFound, "", ""); got != ctrdoci.ErrNoUsersFound {
		t.Errorf("without a user: %v, want the error unchanged", got)
	}
}
