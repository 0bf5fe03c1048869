package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
)

// Summary describes one image in containerd, as `sbxrun images` lists it.
type Summary struct {
	// Ref is the image's name.
	Ref string `json:"ref"`
	// Digest is the digest of what the name points at (index or manifest).
	Digest string `json:"digest"`
	// Size is the bytes of its content for the host platform, compressed
	// layers included.
	Size int64 `json:"size"`
	// Created is when the image record was created.
	Created time.Time `json:"created"`
	// Profiles are the profiles that run this image (filled by the caller).
	Profiles []string `json:"profiles"`
}

// List returns the images in the namespace of ctx, sorted by name.
func List(ctx context.Context, c *client.Client) ([]Summary, error) {
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	cs := c.ContentStore()
	out := make([]Summary, 0, len(imgs))
	for _, img := range imgs {
		size, err := img.Size(ctx, cs, platforms.Default())
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("sizing image %q: %w", img.Name, err)
		}
		out = append(out, Summary{Ref: img.Name, Digest: img.Target.Digest.String(), Size: size, Created: img.CreatedAt, Profiles: []string{}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// ErrInUse is matched (errors.Is) by the error of removing an image that a
// sandbox still uses.
var ErrInUse = errors.New("image in use")

// Remove deletes the named images (references are normalized). An image a
// container uses is refused unless force; the content and snapshots that
// nothing else uses are collected before Remove returns.
func Remove(ctx context.Context, c *client.Client, refs []string, force bool) ([]string, error) {
	users, err := imageUsers(ctx, c)
	if err != nil {
		return nil, err
	}
	is := c.ImageService()
	var removed []string
	var errs []error
	for _, ref := range refs {
		name, err := Normalize(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if u := users[name]; len(u) > 0 && !force {
			errs = append(errs, fmt.Errorf("%w: image %q is used by sandbox %s: remove it first (`sbxrun rm -f %s`) or use rmi --force", ErrInUse, name, strings.Join(u, ", "), u[0]))
			continue
		}
		if err := is.Delete(ctx, name); err != nil {
			if errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("no image %q: `sbxrun images` lists them", name))
				continue
			}
			errs = append(errs, fmt.Errorf("removing image %q: %w", name, err))
			continue
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		_ = collect(ctx, c)
	}
	return removed, errors.Join(errs...)
}

// imageUsers maps image names to the containers created from them.
func imageUsers(ctx context.Context, c *client.Client) (map[string][]string, error) {
	cs, err := c.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	users := map[string][]string{}
	for _, ctr := range cs {
		if ctr.Image != "" {
			users[ctr.Image] = append(users[ctr.Image], ctr.ID)
		}
	}
	return users, nil
}

// PruneReport says what Prune removed.
type PruneReport struct {
	// Images are the names of the removed images.
	Images []string `json:"images"`
	// Leases is the number of leases of dead pulls removed.
	Leases int `json:"leases"`
	// ContentBytes and SnapshotBytes are what the namespace held before
	// minus what it holds after.
	ContentBytes  int64 `json:"contentBytes"`
	SnapshotBytes int64 `json:"snapshotBytes"`
}

// Freed is the total number of bytes Prune freed.
func (r PruneReport) Freed() int64 { return r.ContentBytes + r.SnapshotBytes }

// Prune removes the images no container uses and keep does not protect,
// the partial downloads of pulls whose sbxrun is gone, and then the content
// and snapshots nothing references. snapshotter "" is containerd's default.
func Prune(ctx context.Context, c *client.Client, snapshotter string, keep func(name string) bool) (PruneReport, error) {
	var r PruneReport
	if snapshotter == "" {
		snapshotter = defaults.DefaultSnapshotter
	}
	contentBefore, snapBefore, err := usage(ctx, c, snapshotter)
	if err != nil {
		return r, err
	}
	users, err := imageUsers(ctx, c)
	if err != nil {
		return r, err
	}
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return r, fmt.Errorf("listing images: %w", err)
	}
	for _, img := range imgs {
		if len(users[img.Name]) > 0 || (keep != nil && keep(img.Name)) {
			continue
		}
		if err := c.ImageService().Delete(ctx, img.Name); err != nil && !errdefs.IsNotFound(err) {
			return r, fmt.Errorf("removing image %q: %w", img.Name, err)
		}
		r.Images = append(r.Images, img.Name)
	}
	ls := c.LeasesService()
	all, err := ls.List(ctx)
	if err != nil {
		return r, fmt.Errorf("listing leases: %w", err)
	}
	for _, l := range all {
		if _, ok := l.Labels[LabelPull]; ok && !pidAlive(l.Labels[LabelPullPID]) {
			if err := ls.Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
				return r, fmt.Errorf("removing lease %q: %w", l.ID, err)
			}
			r.Leases++
		}
	}
	if err := collect(ctx, c); err != nil {
		return r, err
	}
	contentAfter, snapAfter, err := usage(ctx, c, snapshotter)
	if err != nil {
		return r, err
	}
	r.ContentBytes = max(contentBefore-contentAfter, 0)
	r.SnapshotBytes = max(snapBefore-snapAfter, 0)
	return r, nil
}

// collect runs containerd's garbage collector and waits for it: deleting
// a lease synchronously is the client API's way to ask for that.
func collect(ctx context.Context, c *client.Client) error {
	ls := c.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Minute))
	if err != nil {
		return fmt.Errorf("starting garbage collection: %w", err)
	}
	if err := ls.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	return nil
}

// usage is the bytes of content (committed and partial) and of committed
// snapshots in the namespace of ctx.
func usage(ctx context.Context, c *client.Client, snapshotter string) (contentBytes, snapBytes int64, err error) {
	cs := c.ContentStore()
	if err := cs.Walk(ctx, func(info content.Info) error {
		contentBytes += info.Size
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("measuring content: %w", err)
	}
	sts, err := cs.ListStatuses(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("measuring partial downloads: %w", err)
	}
	for _, st := range sts {
		contentBytes += st.Offset
	}
	sn := c.SnapshotService(snapshotter)
	var keys []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		keys = append(keys, info.Name)
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("measuring snapshots: %w", err)
	}
	for _, k := range keys {
		u, err := sn.Usage(ctx, k)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return 0, 0, fmt.Errorf("measuring snapshot %q: %w", k, err)
		}
		snapBytes += u.Size
	}
	return contentBytes, snapBytes, nil
}

// Save writes the named images for the host platform (or all platforms) as
// one tarball that is both an OCI image layout and a docker-archive, to
// path ("-" is w). The file appears only when complete.
func Save(ctx context.Context, c *client.Client, refs []string, allPlatforms bool, path string, w io.Writer) error {
	if len(refs) == 0 {
		return errors.New("save needs an image: sbxrun save -o FILE IMAGE")
	}
	is := c.ImageService()
	opts := []archive.ExportOpt{}
	if allPlatforms {
		opts = append(opts, archive.WithAllPlatforms())
	} else {
		opts = append(opts, archive.WithPlatform(platforms.DefaultStrict()))
	}
	for _, ref := range refs {
		name, err := Normalize(ref)
		if err != nil {
			return err
		}
		if _, err := is.Get(ctx, name); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("no image %q to save: pull it first (`sbxrun pull %s`)", name, ref)
			}
			return fmt.Errorf("looking up image %q: %w", name, err)
		}
		opts = append(opts, archive.WithImage(is, name))
	}
	if path == "" || path == "-" {
		if err := c.Export(ctx, w, opts...); err != nil {
			return fmt.Errorf("exporting images: %w", err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %q: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := c.Export(ctx, tmp, opts...); err != nil {
		tmp.Close()
		return fmt.Errorf("exporting images: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	return nil
}
