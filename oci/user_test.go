package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestWithUser resolves users against a fake root, as `exec -u` does with
// a running sandbox's root: names, groups and supplementary groups come
// from its files, and the process's earlier supplementary groups are
// replaced.
func TestWithUser(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n",
		"etc/group":  "root:x:0:\ndev:x:1000:\nstaff:x:50:dev\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user     string
		uid, gid uint32
		gids     []uint32
		err      error
	}{
		{user: "dev", uid: 1000, gid: 1000, gids: []uint32{1000, 50}},
		{user: "dev:dev", uid: 1000, gid: 1000, gids: []uint32{1000}},
		{user: "root", uid: 0, gid: 0, gids: []uint32{0}},
		{user: "1000:staff", uid: 1000, gid: 50, gids: []uint32{50}},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 50}},
		{user: "0:1000", uid: 0, gid: 1000, gids: []uint32{1000}},
		{user: "4242", uid: 4242, gid: 0, gids: []uint32{0}},
		{user: "4242:4242", uid: 4242, gid: 4242, gids: []uint32{4242}},
		{user: "nosuch", err: oci.ErrNoUsersFound},
		{user: "dev:nosuch", err: oci.ErrNoGroupsFound},
		{user: "a:b:c", err: errdefs.ErrInvalidArgument},
		{user: "99999999999", err: errdefs.ErrInvalidArgument},
		{user: "", err: errdefs.ErrInvalidArgument},
		{user: "-1", err: errdefs.ErrInvalidArgument},
		{user: "dev:+5", err: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			// The sandbox's main process runs as root with group 0; exec
			// must not inherit that.
			s := &oci.Spec{
				Process: &specs.Process{User: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
				Root:    &specs.Root{Path: root},
				Linux:   &specs.Linux{},
			}
			err := WithUser(tt.user)(context.Background(), nil, &containers.Container{}, s)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("WithUser(%q) = %v, want %v", tt.user, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("WithUser(%q): %v", tt.user, err)
			}
			u := s.Process.User
			if u.UID != tt.uid || u.GID != tt.gid {
				t.Errorf("user = %d:%d, want %d:%d", u.UID, u.GID, tt.uid, tt.gid)
			}
			got, want := slices.Sorted(slices.Values(u.AdditionalGids)), slices.Sorted(slices.Values(tt.gids))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("additional gids = %v, want %v", u.AdditionalGids, tt.gids)
			}
		})
	}
}
