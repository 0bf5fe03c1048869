// Package images gets sandbox images into containerd: Ensure applies the pull
// policy before a run, Pull fetches and unpacks, Load imports archives.
package images

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/errdefs"
	docker "github.com/distribution/reference"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pull policies.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// ErrNotPresent is matched (errors.Is) by the error Ensure returns when the
// image is absent and the policy forbids pulling.
var ErrNotPresent = errors.New("image not present")

type notPresentError struct{ name, ref string }

func (e *notPresentError) Error() string {
	return fmt.Sprintf("image %q is not in containerd and --pull never forbids pulling: load it with `sbxrun load -i FILE` or pull it with `sbxrun pull %s`", e.name, e.ref)
}

func (e *notPresentError) Is(target error) bool { return target == ErrNotPresent }

// Normalize turns a Docker-style reference ("alpine", "ubuntu:24.04") into
// containerd's full form ("docker.io/library/alpine:latest").
func Normalize(ref string) (string, error) {
	named, err := docker.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

// Image is an image in containerd, unpacked, with its config read once.
type Image struct {
	client.Image
	// Config is the image's OCI config (entrypoint, env, rootfs diff IDs).
	Config ocispec.Image
	// ChainID names the unpacked snapshot a container's rootfs is prepared on.
	ChainID string
	// Snapshotter is the snapshotter it is unpacked in.
	Snapshotter string
}

// Ensure returns the image ref, pulling it according to policy, unpacked for
// the snapshotter ("" is containerd's default). Progress goes to out.
// It reads the image config once and checks the unpacked snapshot with one
// Stat, which keeps a run's start path short.
func Ensure(ctx context.Context, c *client.Client, ref, policy, snapshotter string, out io.Writer) (*Image, error) {
	name, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	if snapshotter == "" {
		snapshotter = defaults.DefaultSnapshotter
	}
	if policy == "" {
		policy = PullMissing
	}
	var img client.Image
	if policy != PullAlways {
		img, err = c.GetImage(ctx, name)
		switch {
		case err == nil:
		case !errdefs.IsNotFound(err):
			return nil, fmt.Errorf("looking up image %q: %w", name, err)
		case policy == PullNever:
			return nil, &notPresentError{name: name, ref: ref}
		}
	}
	if img == nil {
		if img, err = Pull(ctx, c, name, snapshotter, out); err != nil {
			return nil, err
		}
	}
	config, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the config of image %q: %w", name, err)
	}
	chain := identity.ChainID(config.RootFS.DiffIDs).String()
	if _, err := c.SnapshotService(snapshotter).Stat(ctx, chain); err != nil {
		if !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("checking the snapshot of image %q: %w", name, err)
		}
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return nil, fmt.Errorf("unpacking image %q: %w", name, err)
		}
	}
	return &Image{Image: img, Config: config, ChainID: chain, Snapshotter: snapshotter}, nil
}

// Pull fetches ref from its registry and unpacks it.
func Pull(ctx context.Context, c *client.Client, ref, snapshotter string, out io.Writer) (client.Image, error) {
	name, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	if out != nil {
		fmt.Fprintf(out, "pulling %s\n", name)
	}
	opts := []client.RemoteOpt{client.WithPullUnpack}
	if snapshotter != "" {
		opts = append(opts, client.WithPullSnapshotter(snapshotter))
	}
	img, err := c.Pull(ctx, name, opts...)
	if err != nil {
		return nil, fmt.Errorf("pulling %q: %w; check the name and that the registry is reachable, or `sbxrun load -i FILE` on an offline host", name, err)
	}
	return img, nil
}

func unpack(ctx context.Context, img client.Image, snapshotter string) error {
	ok, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return fmt.Errorf("checking image %q: %w", img.Name(), err)
	}
	if ok {
		return nil
	}
	if err := img.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpacking image %q: %w", img.Name(), err)
	}
	return nil
}

// Load imports an OCI image-layout or docker-archive tarball and unpacks
// every image in it. It returns the names of the images loaded.
func Load(ctx context.Context, c *client.Client, r io.Reader, snapshotter string) ([]string, error) {
	imgs, err := c.Import(ctx, r, client.WithImportPlatform(nil))
	if err != nil {
		return nil, fmt.Errorf("importing archive: %w; give an OCI layout or docker-archive tarball (sbxrun save, skopeo copy ... oci-archive:FILE)", err)
	}
	var names []string
	for _, m := range imgs {
		img := client.NewImage(c, m)
		if err := unpack(ctx, img, snapshotter); err != nil {
			return names, err
		}
		names = append(names, m.Name)
	}
	if len(names) == 0 {
		return nil, errors.New("the archive holds no named image: tag it when saving (skopeo copy ... oci-archive:FILE:NAME)")
	}
	return names, nil
}
