package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/containerd/console"
	"github.com/containerd/log"
	"github.com/docker/go-units"

	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// exitInterrupted is the status of a command stopped by SIGINT (128+2).
const exitInterrupted = 130

// interruptible returns a context that ends on SIGINT or SIGTERM, so that
// a pull stops cleanly and can be resumed.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// imageError maps an images error to sbxrun's exit status.
func imageError(err error) error {
	if errors.Is(err, images.ErrInterrupted) {
		return withCode(exitInterrupted, err)
	}
	return err
}

// LoadImages imports an image archive from path ("" or "-" reads stdin):
// an OCI image layout or a docker-archive tarball, plain or compressed.
func LoadImages(ctx context.Context, g *Global, path string, stdin io.Reader, out io.Writer) error {
	r := stdin
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("opening image archive: %w", err)
		}
		defer f.Close()
		r = f
	} else if f, ok := stdin.(*os.File); ok && isConsole(f) {
		return errors.New("load reads an archive from stdin, which is a terminal: use `sbxrun load -i FILE` or `sbxrun load < FILE`")
	}
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	names, err := images.Load(ctx, c, r, "")
	for _, n := range names {
		fmt.Fprintf(out, "Loaded image: %s\n", n)
	}
	if err != nil {
		return err
	}
	return nil
}

// PullOptions are the inputs of PullImages.
type PullOptions struct {
	// Load finds the profiles.
	Load profiles.LoadOptions
	// Targets are profile names or image references.
	Targets []string
	// Platform is os/arch[/variant]; "" is the host's.
	Platform string
	// Quiet prints no progress, only the pulled names on Stdout.
	Quiet bool
	// Registry says how to reach registries.
	Registry images.RegistryOptions
	// Stdout and Stderr default to the process's.
	Stdout, Stderr io.Writer
}

// imageRefs resolves profile names to their images; other targets are
// image references.
func imageRefs(profs *profiles.Set, targets []string) ([]string, error) {
	refs := make([]string, 0, len(targets))
	for _, t := range targets {
		if !profs.Has(t) {
			refs = append(refs, t)
			continue
		}
		r, err := profs.Resolve(t, nil)
		if err != nil {
			return nil, err
		}
		ref, err := r.ImageRef()
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// PullImages pulls the images of the given profiles or image references,
// one after the other. SIGINT stops it cleanly (exit 130); the next pull
// resumes the partial layers.
func PullImages(ctx context.Context, g *Global, o PullOptions) error {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	profs, err := profiles.Load(o.Load)
	if err != nil {
		return err
	}
	refs, err := imageRefs(profs, o.Targets)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if _, err := images.Normalize(ref); err != nil {
			return err
		}
	}
	ctx, stop := interruptible(ctx)
	defer stop()
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	po := images.PullOptions{Registry: o.Registry, Platform: o.Platform, Progress: o.Stderr}
	if o.Quiet {
		po.Progress = nil
	}
	for _, ref := range refs {
		img, err := images.Pull(ctx, c, ref, po)
		if err != nil {
			return imageError(err)
		}
		if o.Quiet {
			fmt.Fprintln(o.Stdout, img.Name())
		}
	}
	return nil
}

// ListImages returns the images of the namespace, with the profiles that
// run each.
func ListImages(ctx context.Context, g *Global, lo profiles.LoadOptions) ([]images.Summary, error) {
	users := profileImages(lo)
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	list, err := images.List(ctx, c)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if p := users[list[i].Ref]; p != nil {
			list[i].Profiles = p
		}
	}
	return list, nil
}

// profileImages maps normalized image names to the profiles that run them.
// profiles.Set that do not resolve are left out: listing images must not fail
// on a broken profile file.
func profileImages(lo profiles.LoadOptions) map[string][]string {
	users := map[string][]string{}
	profs, err := profiles.Load(lo)
	if err != nil {
		return users
	}
	for _, n := range profs.Names() {
		refs, err := imageRefs(profs, []string{n})
		if err != nil {
			continue
		}
		name, err := images.Normalize(refs[0])
		if err != nil {
			continue
		}
		users[name] = append(users[name], n)
	}
	for _, v := range users {
		sort.Strings(v)
	}
	return users
}

// RemoveImages removes images; force removes images that sandboxes use
// (their sandboxes keep their snapshots).
func RemoveImages(ctx context.Context, g *Global, refs []string, force bool, out io.Writer) error {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	removed, err := images.Remove(ctx, c, refs, force)
	for _, n := range removed {
		fmt.Fprintf(out, "Deleted: %s\n", n)
	}
	return err
}

// PruneImages removes images no sandbox uses and, unless all is set, no
// profile runs, then the content and snapshots nothing references; it
// prints what it removed and the bytes freed.
func PruneImages(ctx context.Context, g *Global, lo profiles.LoadOptions, all bool, out io.Writer) error {
	users := map[string][]string{}
	if !all {
		users = profileImages(lo)
	}
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// Killed runs' leases would keep what they hold out of the collection.
	if _, err := dropDeadRunLeases(ctx, c); err != nil {
		return err
	}
	r, err := images.Prune(ctx, c, "", func(name string) bool { return len(users[name]) > 0 })
	for _, n := range r.Images {
		fmt.Fprintf(out, "Deleted: %s\n", n)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Total reclaimed space: %s (%d bytes)\n", units.HumanSize(float64(r.Freed())), r.Freed())
	return nil
}

// SaveImages writes images to path ("" or "-" is out) as a tarball that
// `sbxrun load`, `docker load` and `ctr images import` accept.
func SaveImages(ctx context.Context, g *Global, lo profiles.LoadOptions, targets []string, path string, allPlatforms bool, out io.Writer) error {
	if (path == "" || path == "-") && isConsole(out) {
		return errors.New("save writes a tarball, and stdout is a terminal: use `sbxrun save -o FILE IMAGE` or redirect stdout")
	}
	profs, err := profiles.Load(lo)
	if err != nil {
		return err
	}
	refs, err := imageRefs(profs, targets)
	if err != nil {
		return err
	}
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return images.Save(ctx, c, refs, allPlatforms, path, out)
}

// QuietRegistryLogs keeps containerd's resolver from logging through
// logrus; sbxrun reports errors itself, and --debug shows the logs.
func QuietRegistryLogs(g *Global) {
	quietLogs.Do(func() {
		if g.Debug {
			_ = log.SetLevel("debug")
		} else {
			_ = log.SetLevel("fatal")
		}
	})
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

// isConsole reports whether w is a terminal.
func isConsole(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := console.ConsoleFromFile(f)
	return err == nil
}
