package oci

import (
	"context"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// WithUser sets the process's uid, gid and supplementary groups from user,
// "uid[:gid]" or "name[:group]" as Docker's -u takes it, exactly as Build
// does for a sandbox's user: names, a lone uid's primary group and the
// supplementary groups come from /etc/passwd and /etc/group of the
// container's root, never the host's. The root is the container's snapshot
// when c names one, else the absolute s.Root.Path (for a running sandbox,
// /proc/PID/root of its init process). A name no file lists fails with
// containerd's oci.ErrNoUsersFound or oci.ErrNoGroupsFound; bad syntax is
// errdefs.ErrInvalidArgument.
func WithUser(user string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if err := validateUser(user); err != nil {
			return err
		}
		return withUser(user)(ctx, client, c, s)
	}
}
