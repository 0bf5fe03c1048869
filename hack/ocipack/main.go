// Command ocipack turns a root filesystem tarball (what mmdebstrap writes)
// into a one-layer OCI image-layout archive that "sbxrun load -i",
// "ctr images import" and "docker load" accept, with the image config a
// sandbox's Dockerfile gives (computed by package sandboxes with buildkit's
// Dockerfile converter), so a Docker-free build carries the same user,
// workdir, env, entrypoint and labels as the image CI builds. It streams:
// the layer is compressed to a temporary file next to the output while both
// digests are computed, so a rootfs of any size needs little memory.
//
//	go run ./hack/ocipack -rootfs base.rootfs.tar -sandbox base -o base.tar
package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/internal/ocilayout"
	"github.com/sbxrun/sbxrun/sandboxes"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	rootfs   string
	dir      string
	sandbox  string
	ref      string
	out      string
	compress string
	labels   []string
	history  string
	dirs     bool
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "ocipack: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ocipack", flag.ContinueOnError)
	var o options
	var labels listFlag
	fs.StringVar(&o.rootfs, "rootfs", "", "root filesystem `TAR` (required)")
	fs.StringVar(&o.dir, "dir", "sandboxes", "the sandboxes `DIR` (Dockerfiles and versions.env)")
	fs.StringVar(&o.sandbox, "sandbox", "", "sandbox `NAME` whose Dockerfile gives the image config (required)")
	fs.StringVar(&o.ref, "ref", "", "image reference to record (default ghcr.io/sbxrun/NAME:latest)")
	fs.StringVar(&o.out, "o", "", "output `FILE` (required)")
	fs.StringVar(&o.compress, "compress", "gzip", "layer compression: gzip, zstd or none")
	fs.StringVar(&o.history, "history", "", "created_by text of the layer's history entry")
	fs.BoolVar(&o.dirs, "print-dirs", false, "print the directories the sandbox user must own (workdir, caches) and exit")
	fs.Var(&labels, "label", "`K=V` label added to (or replacing one of) the Dockerfile's (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q: all options are flags", fs.Args())
	case o.sandbox == "":
		return errors.New("-sandbox is required")
	case o.dirs:
		return printDirs(context.Background(), o, os.Stdout)
	case o.rootfs == "" || o.out == "":
		return errors.New("-rootfs, -sandbox and -o are required")
	}
	for _, kv := range labels {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("invalid -label %q: use K=V", kv)
		}
	}
	o.labels = labels
	if o.ref == "" {
		o.ref = sandboxes.Repository + "/" + o.sandbox + ":latest"
	}
	return pack(context.Background(), o)
}

// printDirs writes the sandbox's user-owned directories, one a line: its
// workdir and its cache mount points ("~" being the image's HOME).
func printDirs(ctx context.Context, o options, w io.Writer) error {
	defs, err := sandboxes.Open(o.dir)
	if err != nil {
		return err
	}
	img, err := defs.Config(ctx, o.sandbox)
	if err != nil {
		return err
	}
	dirs, err := sandboxes.OwnedDirs(img)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		fmt.Fprintln(w, d)
	}
	return nil
}

// compressor returns the layer's media type and a writer compressing into w.
func compressor(kind string, w io.Writer) (string, io.WriteCloser, error) {
	switch kind {
	case "gzip":
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		return ocispec.MediaTypeImageLayerGzip, zw, err
	case "zstd":
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
		return ocispec.MediaTypeImageLayerZstd, zw, err
	case "none":
		return ocispec.MediaTypeImageLayer, nopCloser{w}, nil
	}
	return "", nil, fmt.Errorf("unknown -compress %q: use gzip, zstd or none", kind)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// pack writes the archive for o.
func pack(ctx context.Context, o options) error {
	defs, err := sandboxes.Open(o.dir)
	if err != nil {
		return err
	}
	defs.Platform.Architecture = runtime.GOARCH
	img, err := defs.Config(ctx, o.sandbox)
	if err != nil {
		return err
	}
	if img.Config.Labels == nil {
		img.Config.Labels = map[string]string{}
	}
	for _, kv := range o.labels {
		k, v, _ := strings.Cut(kv, "=")
		img.Config.Labels[k] = v
	}

	outDir := filepath.Dir(o.out)
	layerFile, err := os.CreateTemp(outDir, ".ocipack-layer-*")
	if err != nil {
		return fmt.Errorf("creating the layer file: %w", err)
	}
	defer os.Remove(layerFile.Name())
	defer layerFile.Close()

	blobHash := sha256.New()
	mediaType, zw, err := compressor(o.compress, io.MultiWriter(layerFile, blobHash))
	if err != nil {
		return err
	}
	diffHash := sha256.New()
	if err := copyRootfs(o.rootfs, io.MultiWriter(zw, diffHash)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing the layer: %w", err)
	}
	layerSize, err := layerFile.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}

	created := time.Now().UTC().Truncate(time.Second)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err != nil {
			return fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: use seconds since 1970", s)
		}
		created = time.Unix(sec, 0).UTC()
	}
	history := o.history
	if history == "" {
		history = "hack/ocipack -sandbox " + o.sandbox + " -rootfs " + filepath.Base(o.rootfs)
	}
	img.Created = &created
	img.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{sum(diffHash)}}
	img.History = []ocispec.History{{Created: &created, CreatedBy: history}}
	if _, err := layerFile.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return ocilayout.WriteFile(o.out, ocilayout.Image{
		Ref:    o.ref,
		Config: *img,
		Layers: []ocilayout.Layer{{
			Descriptor: ocispec.Descriptor{MediaType: mediaType, Digest: sum(blobHash), Size: layerSize},
			Content:    layerFile,
		}},
		ModTime: created,
	})
}

func sum(h hash.Hash) digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
}

// copyRootfs copies the entries of the rootfs tarball at p into a layer
// tar written to w: names relative ("./usr" becomes "usr"), the root entry and
// the contents of dev/ left out (the runtime provides /dev), and everything
// else kept as it is, owners, modes, xattrs and hard links included.
func copyRootfs(p string, w io.Writer) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("opening the rootfs tarball: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %q: %w", p, err)
		}
		name, ok := layerName(h.Name)
		if !ok {
			continue
		}
		h.Name = name
		if h.Typeflag == tar.TypeLink {
			if h.Linkname, ok = layerName(h.Linkname); !ok {
				return fmt.Errorf("reading %q: hard link %q points at %q, outside the layer", p, name, h.Linkname)
			}
		}
		if h.Typeflag == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing the layer entry %q: %w", name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("copying %q: %w", name, err)
		}
	}
	return tw.Close()
}

// layerName is a rootfs tarball name as a layer names it; ok is false for
// the root itself and for what is under dev/.
func layerName(name string) (string, bool) {
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" || strings.HasPrefix(clean, "dev/") {
		return "", false
	}
	return clean, true
}
