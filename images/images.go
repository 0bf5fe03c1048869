// Package images gets sandbox images into containerd and manages them there.
//
// Ensure applies the pull policy before a run; Pull fetches from a registry
// (hosts.toml, Docker credentials, retries, progress) and unpacks while
// layers arrive; Load and Save move images through tarballs for offline
// hosts; List, Remove and Prune manage what is stored. Nothing here dials
// containerd: every function works on the client the runtime hands it.
// Nothing here talks to the user except through the io.Writer it is given.
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
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
// Stat, which keeps a run's start path short. When ctx carries a lease, the
// unpacked snapshot is added to it before that check. An error that
// errdefs.IsNotFound (and not ErrNotPresent) means something removed the
// image while Ensure ran: calling it again fetches it anew.
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
		if img, err = Pull(ctx, c, name, PullOptions{Snapshotter: snapshotter, Progress: out}); err != nil {
			return nil, err
		}
	}
	config, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the config of image %q: %w", name, err)
	}
	chain := identity.ChainID(config.RootFS.DiffIDs).String()
	if id, ok := leases.FromContext(ctx); ok {
		// The caller's lease holds the snapshot from before the check on,
		// so a concurrent prune cannot remove it before the container
		// that needs it exists.
		res := leases.Resource{ID: chain, Type: "snapshots/" + snapshotter}
		if err := c.LeasesService().AddResource(ctx, leases.Lease{ID: id}, res); err != nil {
			return nil, fmt.Errorf("holding the snapshot of image %q: %w", name, err)
		}
	}
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
	// Archives are often kept compressed (save | gzip); DecompressStream
	// passes plain tar through.
	ds, err := compression.DecompressStream(r)
	if err != nil {
		return nil, fmt.Errorf("reading archive: %w", err)
	}
	defer ds.Close()
	imgs, err := c.Import(ctx, ds, client.WithImageRefTranslator(refName))
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

// refName turns an OCI layout's org.opencontainers.image.ref.name into an
// image name; a bare tag ("latest") names nothing.
func refName(s string) string {
	if !strings.ContainsAny(s, "/:@") {
		return ""
	}
	name, err := Normalize(s)
	if err != nil {
		return ""
	}
	return name
}
