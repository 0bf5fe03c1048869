package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sbxrun/sbxrun/oci"
)

// execUser sets p's user from user ("uid[:gid]" or "name[:group]") as
// Docker's exec -u does: names, a lone uid's primary group and the
// supplementary groups come from the sandbox's own /etc/passwd and
// /etc/group, read through the root of its running init process (pid), so
// users added inside the sandbox count. p's supplementary groups are
// replaced, never inherited from the sandbox's main process.
func execUser(ctx context.Context, pid uint32, user string, p *specs.Process) error {
	root := fmt.Sprintf("/proc/%d/root", pid)
	if _, err := os.Stat(root); err != nil {
		// Without the sandbox's files only uid:gid can be set, and then
		// without the supplementary groups /etc/group would add.
		us, gs, _ := strings.Cut(user, ":")
		uid, uerr := strconv.ParseUint(us, 10, 31)
		gid, gerr := strconv.ParseUint(gs, 10, 31)
		if uerr != nil || gerr != nil {
			return fmt.Errorf("exec -u %s: cannot read the sandbox's /etc/passwd through %q (%v): use a numeric UID:GID", user, root, err)
		}
		p.User.UID, p.User.GID, p.User.AdditionalGids = uint32(uid), uint32(gid), []uint32{uint32(gid)}
		return nil
	}
	s := &ctrdoci.Spec{Process: p, Root: &specs.Root{Path: root}, Linux: &specs.Linux{}}
	if err := oci.WithUser(user)(ctx, nil, &containers.Container{}, s); err != nil {
		if uerr := userError(user, "the sandbox", err); uerr != err || errdefs.IsInvalidArgument(err) {
			return fmt.Errorf("exec -u %s: %w", user, uerr)
		}
		return fmt.Errorf("exec -u %s: reading the sandbox's /etc/passwd and /etc/group: %w", user, err)
	}
	return nil
}

// unknownUserError is a user or group name that the container's
// /etc/passwd or /etc/group does not list, or that it cannot look up
// because the file is missing.
type unknownUserError struct {
	name, file, what, where string
	missing                 bool
	err                     error
}

func (e *unknownUserError) Error() string {
	fix := "UID[:GID]"
	if e.what == "group" {
		fix = "GID"
	}
	if e.missing {
		return fmt.Sprintf("%s has no %s to look up %s %q in: use a numeric %s", e.where, e.file, e.what, e.name, fix)
	}
	return fmt.Sprintf("no %s %q in %s's %s: use a numeric %s or a name listed there", e.what, e.name, e.where, e.file, fix)
}

func (e *unknownUserError) Unwrap() []error { return []error{e.err, errdefs.ErrInvalidArgument} }

// userError turns containerd's failure to find a name of user in a
// container's /etc/passwd or /etc/group (where is "the image" or "the
// sandbox") into one line naming the name, the file and the fix. Any
// other error comes back unchanged.
func userError(user, where string, err error) error {
	name, group, _ := strings.Cut(user, ":")
	passwd := &unknownUserError{name: name, file: "/etc/passwd", what: "user", where: where, err: err}
	groupf := &unknownUserError{name: group, file: "/etc/group", what: "group", where: where, err: err}
	var pe *fs.PathError
	switch {
	case errors.Is(err, ctrdoci.ErrNoUsersFound):
		return passwd
	case errors.Is(err, ctrdoci.ErrNoGroupsFound):
		return groupf
	case !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe):
		return err
	case pe.Path == "etc/group" && isName(group):
		groupf.missing = true
		return groupf
	case pe.Path == "etc/passwd" && isName(name):
		passwd.missing = true
		return passwd
	}
	return err
}

// isName reports whether s is a user or group name rather than an id.
func isName(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") != ""
}

// runUserError names the user a run could not resolve: the -u flag's, the
// profile's, else the image's USER.
func runUserError(err error, sandboxUser, imageUser string) error {
	user := sandboxUser
	if user == "" {
		user = imageUser
	}
	if user == "" {
		return err
	}
	return userError(user, "the image", err)
}
