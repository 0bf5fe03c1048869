package runtime

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sbxrun/sbxrun/images"
)

// LoadImages imports an image archive from path ("" or "-" reads stdin).
func LoadImages(ctx context.Context, g *Global, path string, stdin io.Reader, out io.Writer) error {
	r := stdin
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return withCode(ExitFailed, fmt.Errorf("opening image archive: %w", err))
		}
		defer f.Close()
		r = f
	}
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return withCode(ExitFailed, err)
	}
	defer c.Close()
	names, err := images.Load(ctx, c, r, "")
	for _, n := range names {
		fmt.Fprintf(out, "Loaded image: %s\n", n)
	}
	if err != nil {
		return withCode(ExitFailed, err)
	}
	return nil
}

// PullImages pulls the images of the given profiles or image references.
func PullImages(ctx context.Context, g *Global, lo LoadOptions, targets []string, out io.Writer) error {
	profs, err := LoadProfiles(lo)
	if err != nil {
		return withCode(ExitFailed, err)
	}
	refs := make([]string, 0, len(targets))
	for _, t := range targets {
		if profs.Has(t) {
			r, err := profs.Resolve(t, nil)
			if err != nil {
				return withCode(ExitFailed, err)
			}
			if r.Profile.Image == nil || *r.Profile.Image == "" {
				return withCode(ExitFailed, fmt.Errorf("profile %q has no image", t))
			}
			refs = append(refs, *r.Profile.Image)
			continue
		}
		refs = append(refs, t)
	}
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return withCode(ExitFailed, err)
	}
	defer c.Close()
	for _, ref := range refs {
		if _, err := images.Pull(ctx, c, ref, "", out); err != nil {
			return withCode(ExitFailed, err)
		}
	}
	return nil
}

// ServerVersion returns containerd's version.
func ServerVersion(ctx context.Context, g *Global) (string, error) {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	v, err := c.Version(ctx)
	if err != nil {
		return "", err
	}
	return v.Version + " (" + v.Revision + ")", nil
}
