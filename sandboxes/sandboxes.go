package sandboxes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Names are the sandboxes in build order: base first, the others are built
// FROM it.
var Names = []string{"base", "model-dev", "test"}

// Repository is where CI publishes the sandboxes, as Repository/NAME; the
// built-in profiles run Repository/NAME:latest.
const Repository = "ghcr.io/sbxrun"

// Labels every sandbox image carries so that a user pulling one directly
// learns what sbxrun's profile of the same name would do.
const (
	// LabelProfile names the built-in profile that runs the image.
	LabelProfile = "io.github.sbxrun.profile"
	// LabelWorkspace is where the profile mounts the current directory.
	LabelWorkspace = "io.github.sbxrun.workspace"
	// LabelGPUs is the GPU request in --gpus syntax (absent: none).
	LabelGPUs = "io.github.sbxrun.gpus"
	// LabelGPU is "required" or "optional" for LabelGPUs.
	LabelGPU = "io.github.sbxrun.gpu"
	// LabelShmSize is the /dev/shm size the profile gives (absent: the default).
	LabelShmSize = "io.github.sbxrun.shm-size"
	// LabelCaches are the comma-separated "~/..." directories the profile
	// persists from the host ("~" is the image's HOME).
	LabelCaches = "io.github.sbxrun.caches"
	// LabelPorts are the comma-separated ports the image's services listen on.
	LabelPorts = "io.github.sbxrun.ports"
)

// VersionsFile is the file, in the sandboxes directory, that pins every version.
const VersionsFile = "versions.env"

// Definitions are the sandbox definitions in one directory.
type Definitions struct {
	// Dir is the sandboxes directory (the Dockerfiles' build context).
	Dir string
	// Versions are versions.env's KEY=VALUE pairs: the build args.
	Versions map[string]string
	// Platform is the platform the Dockerfiles are evaluated for
	// (TARGETARCH and friends); Open sets linux/amd64, what CI builds.
	Platform ocispec.Platform
}

// Open reads the definitions in dir.
func Open(dir string) (*Definitions, error) {
	versions, err := ReadVersions(filepath.Join(dir, VersionsFile))
	if err != nil {
		return nil, err
	}
	return &Definitions{Dir: dir, Versions: versions, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}, nil
}

var versionKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// ReadVersions parses a versions file: KEY=VALUE lines, blank lines and "#"
// comments. Keys are upper case; values have no spaces or quotes (they are
// passed to builds verbatim), and a key may appear once.
func ReadVersions(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading versions file: %w", err)
	}
	versions := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		switch {
		case !ok || !versionKey.MatchString(key):
			return nil, fmt.Errorf("%s:%d: %q is not KEY=VALUE with an upper-case KEY", path, n, line)
		case value == "" || strings.ContainsAny(value, " \t\"'$`\\"):
			return nil, fmt.Errorf("%s:%d: the value of %s must be non-empty, without spaces, quotes, $ or backslashes", path, n, key)
		}
		if _, dup := versions[key]; dup {
			return nil, fmt.Errorf("%s:%d: %s is set twice", path, n, key)
		}
		versions[key] = value
	}
	return versions, sc.Err()
}

// Dockerfile is the path of the named sandbox's Dockerfile.
func (d *Definitions) Dockerfile(name string) string {
	return filepath.Join(d.Dir, name, "Dockerfile")
}

// convertOpt is the buildkit conversion input for name's Dockerfile.
func (d *Definitions) convertOpt(name string, dt []byte, depth int) dockerfile2llb.ConvertOpt {
	platform := d.Platform
	sm := llb.NewSourceMap(nil, d.Dockerfile(name), "Dockerfile", dt)
	sm.Definition = &llb.Definition{} // the lint results copy it
	return dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			BuildArgs:       maps(d.Versions),
			TargetPlatforms: []ocispec.Platform{platform},
		},
		SourceMap:      sm,
		TargetPlatform: &platform,
		MetaResolver:   &resolver{defs: d, depth: depth},
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Lint runs buildkit's Dockerfile checks (what `docker build --check` runs)
// over the named sandbox's Dockerfile, with versions.env as build args. It
// returns one "PATH:LINE: RULE: DETAIL" line per warning; the error is a
// Dockerfile buildkit cannot evaluate at all.
func (d *Definitions) Lint(ctx context.Context, name string) ([]string, error) {
	path := d.Dockerfile(name)
	dt, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, d.convertOpt(name, dt, 0))
	if err != nil {
		return nil, fmt.Errorf("linting %q: %w", path, err)
	}
	if res.Error != nil {
		line := 0
		if rs := res.Error.Location.Ranges; len(rs) > 0 {
			line = int(rs[0].Start.Line)
		}
		return nil, fmt.Errorf("%s:%d: %s", path, line, res.Error.Message)
	}
	var warnings []string
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		warnings = append(warnings, fmt.Sprintf("%s:%d: %s: %s", path, line, w.RuleName, w.Detail))
	}
	return warnings, nil
}

// Config is the image config the named sandbox's Dockerfile gives its final
// stage, as buildkit computes it: labels, env, user, workdir, entrypoint,
// cmd, exposed ports. A base image from elsewhere contributes only a PATH; a
// FROM of another sandbox (BASE_IMAGE) contributes that sandbox's Config.
func (d *Definitions) Config(ctx context.Context, name string) (*ocispec.Image, error) {
	return d.config(ctx, name, 0)
}

func (d *Definitions) config(ctx context.Context, name string, depth int) (*ocispec.Image, error) {
	if !slices.Contains(Names, name) {
		return nil, fmt.Errorf("unknown sandbox %q: use one of %s", name, strings.Join(Names, ", "))
	}
	if depth > len(Names) {
		return nil, fmt.Errorf("sandbox %q: its FROM lines form a cycle", name)
	}
	path := d.Dockerfile(name)
	dt, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	res, err := dockerfile2llb.Dockerfile2LLB(ctx, dt, d.convertOpt(name, dt, depth))
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", path, err)
	}
	img := res.Image.Image
	img.Config = res.Image.Config.ImageConfig
	img.Created = nil
	img.History = nil
	img.RootFS = ocispec.RootFS{Type: "layers"}
	return &img, nil
}

// defaultPath is the PATH of the base images outside this directory (Ubuntu's
// and Docker's default).
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// resolver answers buildkit's base-image config look-ups without a registry:
// sandboxes of this directory are evaluated from their Dockerfiles, anything
// else is an image with one layer and the default PATH.
type resolver struct {
	defs  *Definitions
	depth int
}

// ResolveImageConfig implements sourceresolver.ImageMetaResolver.
func (r *resolver) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", nil, fmt.Errorf("base image %q: %w", ref, err)
	}
	platform := r.defs.Platform
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		platform = *opt.ImageOpt.Platform
	}
	img := &ocispec.Image{Platform: platform, Config: ocispec.ImageConfig{Env: []string{defaultPath}}}
	if name, ok := strings.CutPrefix(reference.Path(named), strings.TrimPrefix(Repository, "ghcr.io/")+"/"); ok && reference.Domain(named) == "ghcr.io" && slices.Contains(Names, name) {
		if img, err = r.defs.config(ctx, name, r.depth+1); err != nil {
			return "", "", nil, err
		}
	}
	// One (empty) layer, so buildkit does not take the image for scratch.
	img.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("")}}
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, err
	}
	return ref, "", dt, nil
}

// ErrNoLabel is returned by Label for a label the image does not carry.
var ErrNoLabel = errors.New("label not set")

// Label returns the value of key in img's labels.
func Label(img *ocispec.Image, key string) (string, error) {
	v, ok := img.Config.Labels[key]
	if !ok {
		return "", fmt.Errorf("%s: %w", key, ErrNoLabel)
	}
	return v, nil
}

// Home is the HOME in img's environment, "" when it sets none.
func Home(img *ocispec.Image) string {
	for _, kv := range img.Config.Env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			return v
		}
	}
	return ""
}

// Caches are the cache directories of img's LabelCaches, "~" replaced by
// its HOME.
func Caches(img *ocispec.Image) ([]string, error) {
	list := img.Config.Labels[LabelCaches]
	if list == "" {
		return nil, nil
	}
	home := Home(img)
	var dirs []string
	for _, c := range strings.Split(list, ",") {
		rest, ok := strings.CutPrefix(c, "~/")
		switch {
		case ok && home == "":
			return nil, fmt.Errorf("label %s: %q is under ~ but the image sets no HOME", LabelCaches, c)
		case ok:
			dirs = append(dirs, filepath.Join(home, rest))
		case filepath.IsAbs(c):
			dirs = append(dirs, filepath.Clean(c))
		default:
			return nil, fmt.Errorf("label %s: %q is neither absolute nor under ~", LabelCaches, c)
		}
	}
	return dirs, nil
}

// OwnedDirs are the directories the sandbox user must own in img: its
// workdir and its caches, so that a mount there leaves no root-owned parent.
func OwnedDirs(img *ocispec.Image) ([]string, error) {
	caches, err := Caches(img)
	if err != nil {
		return nil, err
	}
	var dirs []string
	if wd := img.Config.WorkingDir; wd != "" {
		dirs = append(dirs, wd)
	}
	return append(dirs, caches...), nil
}
