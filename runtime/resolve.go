package runtime

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ctrdoci "github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/gpu"
	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// Resolved is a run resolved exactly as Run resolves it (profiles, their
// layers, the command line as the last one; validate with manifestOnly),
// as plain facts for callers that describe the sandbox for somewhere else
// instead of running it here: the Kubernetes generator. Nothing in it
// depends on this host's GPUs, network or cache directories, and resolving
// it created nothing.
type Resolved struct {
	// Name is the sandbox's name (--name, else PROFILE-XXXXXX).
	Name string
	// Profile is the profile's name, "" for a plain image.
	Profile string
	// Image is the image reference, and Pull its pull policy ("" is
	// missing).
	Image, Pull string
	// Sandbox is the resolved sandbox: entrypoint, args, env, workdir,
	// user, limits, security settings. Its mounts are in Mounts too,
	// classified; "~" in their targets and the workdir is the image
	// user's home when the image config was known.
	Sandbox *oci.Sandbox
	// Mounts are the sandbox's mounts in order.
	Mounts []Mount
	// Caps are the capabilities the local sandbox gets (containerd's
	// defaults adjusted by cap_add, cap_drop and the network), CAP_ names.
	Caps []string
	// GPUs is the GPU request, nil for none; GPUOptional says the profile
	// runs without GPUs where a host has none.
	GPUs        *gpu.Request
	GPUOptional bool
	// Devices are the CDI device names asked for besides the GPUs.
	Devices []string
	// Ports are the -p values, parsed.
	Ports []network.Publish
	// Labels are the profile's and --label's.
	Labels map[string]string
	// StopSignal is the stop signal as written, StopTimeout the seconds
	// stop waits before SIGKILL.
	StopSignal  string
	StopTimeout int
	// ImageConfig is the image's config and ImageDigest its manifest
	// digest when the image is in containerd (lookup found it); nil
	// otherwise.
	ImageConfig *ocispec.ImageConfig
	ImageDigest string

	sources map[string]string
}

// Mount kinds (Mount.Kind).
const (
	// MountWorkspace is the project: the current directory.
	MountWorkspace = "workspace"
	// MountCache is a directory the profile keeps on the host and creates
	// when missing (a model or package cache).
	MountCache = "cache"
	// MountBind is any other host path.
	MountBind = "bind"
	// MountTmpfs is a tmpfs.
	MountTmpfs = "tmpfs"
)

// Mount is one mount of a Resolved sandbox.
type Mount struct {
	// Kind is MountWorkspace, MountCache, MountBind or MountTmpfs.
	Kind string
	// Source is the absolute host path (empty for tmpfs), and As the same
	// path as the user would write it (~/..., ./...).
	Source, As string
	// Destination is the path inside the sandbox.
	Destination string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// Options are the mount options as resolved (tmpfs size=BYTES).
	Options []string
}

// Set reports whether key (a profile key: "privileged", "network") was set
// by a profile file or the command line, not by the built-in defaults.
func (r *Resolved) Set(key string) bool {
	s := r.sources[key]
	return s != "" && s != profiles.SourceBuiltin
}

// ImageLookup finds an image in containerd without pulling it: its config
// and digest, or nil when it is not there.
type ImageLookup func(ctx context.Context, ref string) (*ocispec.ImageConfig, string, error)

// Resolve resolves o as Run would (the same validate step, with
// manifestOnly) without containerd and without touching the host: no cache
// directory is created, no GPU is looked up (the sandbox is meant for
// another machine). lookup, when not nil, reads the image's config (its
// user and HOME) and digest from containerd.
func Resolve(ctx context.Context, o *RunOptions, lookup ImageLookup) (*Resolved, error) {
	o.manifestOnly = true
	p, err := o.validate()
	o.notes = nil
	if err != nil {
		return nil, err
	}
	res, sb := p.res, p.sb
	r := &Resolved{
		Name: o.Name, Profile: p.profile, Image: p.image, Pull: p.pull, Sandbox: sb,
		Labels: maps.Clone(res.Profile.Labels), StopTimeout: int(p.stopTimeout().Seconds()),
		Devices: slices.Compact(slices.Clone(res.Profile.Devices)), sources: res.Sources,
	}
	if res.Profile.StopSignal != nil {
		r.StopSignal = *res.Profile.StopSignal
	}
	if r.GPUs, r.GPUOptional, err = gpuRequest(res); err != nil {
		return nil, badConfigf("%w", err)
	}
	for _, s := range o.Publish {
		pub, err := network.ParsePublish(s)
		if err != nil {
			return nil, badConfigf("%w", err)
		}
		r.Ports = append(r.Ports, pub)
	}
	if lookup != nil {
		cfg, digest, err := lookup(ctx, r.Image)
		if err != nil {
			return nil, err
		}
		r.ImageConfig, r.ImageDigest = cfg, digest
	}
	img := ocispec.ImageConfig{}
	if r.ImageConfig != nil {
		img = *r.ImageConfig
	}
	applyImageHome(sb, img)
	caches := res.Caches(o.Host)
	for _, m := range sb.Mounts {
		rm := Mount{Source: m.Source, Destination: m.Destination, ReadOnly: m.ReadOnly, Options: slices.Clone(m.Options)}
		switch {
		case m.Type == "tmpfs":
			rm.Kind = MountTmpfs
		case m.Source == o.Host.Cwd:
			rm.Kind, rm.As = MountWorkspace, "."
		case slices.Contains(caches, m.Source):
			rm.Kind = MountCache
		default:
			rm.Kind = MountBind
		}
		if rm.As == "" && rm.Source != "" {
			rm.As = displayPath(rm.Source, o.Host)
		}
		r.Mounts = append(r.Mounts, rm)
	}
	if r.Caps, err = localCaps(sb, img); err != nil {
		return nil, err
	}
	return r, nil
}

// displayPath is p as the user would write it: under home as ~/..., under
// the current directory as ./...
func displayPath(p string, h profiles.HostEnv) string {
	best, out := "", p
	for _, b := range []struct{ dir, prefix string }{{h.Cwd, "./"}, {h.Home, "~/"}} {
		if b.dir == "" || len(b.dir) <= len(best) {
			continue
		}
		if rel, err := filepath.Rel(b.dir, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			best, out = b.dir, b.prefix+rel
		}
	}
	return out
}

// localCaps are the capabilities the sandbox gets here: the spec Run would
// build (without mounts and devices, which do not change them), read back.
func localCaps(sb *oci.Sandbox, img ocispec.ImageConfig) ([]string, error) {
	c := *sb
	c.Mounts, c.HostsFile, c.ResolvConf, c.CDIDevices = nil, "", "", nil
	// The command does not change them either: one that an image of
	// another machine supplies must not fail this.
	c.Entrypoint, c.EntrypointSet, c.Args = nil, false, []string{"true"}
	opts, err := oci.Build(&c, img)
	if err != nil {
		return nil, err
	}
	ns := sb.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	spec, err := ctrdoci.GenerateSpec(namespaces.WithNamespace(context.Background(), ns), nil, &containers.Container{ID: "resolve"}, opts...)
	if err != nil {
		return nil, fmt.Errorf("generating spec: %w", err)
	}
	if spec.Process == nil || spec.Process.Capabilities == nil {
		return nil, nil
	}
	return slices.Clone(spec.Process.Capabilities.Bounding), nil
}

// LocalImages is an ImageLookup on the containerd o names: an image that
// is not there, or a daemon that cannot be reached, is nil (unknown), not
// an error; nothing is pulled.
func (o *RunOptions) LocalImages() ImageLookup {
	return func(ctx context.Context, ref string) (*ocispec.ImageConfig, string, error) {
		debug := func(err error) {
			if o.Debug {
				fmt.Fprintf(o.Stderr, "sbxrun: debug: image %s not read from containerd: %v\n", ref, err)
			}
		}
		c, ctx, err := o.connect(ctx)
		if err != nil {
			debug(err)
			return nil, "", nil
		}
		defer c.Close()
		name, err := images.Normalize(ref)
		if err != nil {
			return nil, "", err
		}
		img, err := c.GetImage(ctx, name)
		if err != nil {
			debug(err)
			return nil, "", nil
		}
		spec, err := img.Spec(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("reading the config of image %q: %w", name, err)
		}
		return &spec.Config, img.Target().Digest.String(), nil
	}
}
