// Package ocilayout writes one image as an OCI image-layout tar archive, the
// format "sbxrun load -i", containerd's client.Import, "ctr images import"
// and "docker load" accept. The image tools in hack/ (mkimage's busybox test
// image, ocipack's sandbox images) both write through it, so the archives
// they make differ only in their layers and config.
//
// An archive holds blobs/sha256/ (the layers, the config and the manifest,
// in digest order), index.json naming the image by its reference, and
// oci-layout. Every entry gets the same modification time and root as its
// owner, so the same image gives the same archive bytes. Layers are streamed
// from their readers, so a layer of any size needs little memory.
package ocilayout

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is one layer blob: its descriptor (media type, digest and size of
// the blob as stored, compressed or not) and where to read it from.
type Layer struct {
	ocispec.Descriptor
	// Content yields the blob: exactly Size bytes whose digest is Digest.
	Content io.Reader
}

// Image is the one image an archive holds.
type Image struct {
	// Ref is the reference the image is imported as, such as
	// ghcr.io/sbxrun/base:latest.
	Ref string
	// Config is the image config; its RootFS lists the layers' diff IDs
	// and its OS and Architecture are the index's platform.
	Config ocispec.Image
	// Layers are the layer blobs, bottom first.
	Layers []Layer
	// ModTime is the modification time of every entry of the archive.
	ModTime time.Time
}

// blob is one entry of blobs/sha256/.
type blob struct {
	digest  digest.Digest
	size    int64
	content io.Reader
}

// Write writes img to w as an OCI image-layout tar archive.
func Write(w io.Writer, img Image) error {
	cfgJSON, err := json.Marshal(img.Config)
	if err != nil {
		return fmt.Errorf("encoding the image config: %w", err)
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig,
			Digest:    digest.FromBytes(cfgJSON),
			Size:      int64(len(cfgJSON)),
		},
		Layers: []ocispec.Descriptor{},
	}
	blobs := []blob{bytesBlob(cfgJSON)}
	for _, l := range img.Layers {
		manifest.Layers = append(manifest.Layers, l.Descriptor)
		blobs = append(blobs, blob{digest: l.Digest, size: l.Size, content: l.Content})
	}
	manJSON, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("encoding the manifest: %w", err)
	}
	blobs = append(blobs, bytesBlob(manJSON))
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromBytes(manJSON),
			Size:      int64(len(manJSON)),
			Platform:  &ocispec.Platform{OS: img.Config.OS, Architecture: img.Config.Architecture},
			Annotations: map[string]string{
				ocispec.AnnotationRefName:  refTag(img.Ref),
				"io.containerd.image.name": img.Ref,
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("encoding the index: %w", err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: img.ModTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing %q: %w", d, err)
		}
	}
	slices.SortFunc(blobs, func(a, b blob) int { return strings.Compare(string(a.digest), string(b.digest)) })
	for _, b := range blobs {
		if err := writeBlob(tw, b, img.ModTime); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{ocispec.ImageIndexFile, indexJSON}, {ocispec.ImageLayoutFile, layoutJSON}} {
		if err := writeEntry(tw, f.name, int64(len(f.b)), strings.NewReader(string(f.b)), img.ModTime); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteFile writes img to the archive at path: to path.tmp first, renamed
// into place once complete, so a failed write leaves no partial archive.
func WriteFile(path string, img Image) (retErr error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("creating %q: %w", tmp, err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := Write(f, img); err != nil {
		return fmt.Errorf("writing %q: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %q: %w", tmp, err)
	}
	return nil
}

func bytesBlob(b []byte) blob {
	return blob{digest: digest.FromBytes(b), size: int64(len(b)), content: strings.NewReader(string(b))}
}

// writeBlob copies b into blobs/sha256/ and checks that what it copied has
// the digest the manifest names.
func writeBlob(tw *tar.Writer, b blob, mtime time.Time) error {
	if b.digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("blob %s: only sha256 digests are supported", b.digest)
	}
	h := sha256.New()
	if err := writeEntry(tw, "blobs/sha256/"+b.digest.Encoded(), b.size, io.TeeReader(b.content, h), mtime); err != nil {
		return err
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != b.digest {
		return fmt.Errorf("blob %s: its content has digest %s", b.digest, got)
	}
	return nil
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader, mtime time.Time) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %q: %w", name, err)
	}
	if n, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("writing %q: %w", name, err)
	} else if n != size {
		return fmt.Errorf("writing %q: %d bytes, want %d", name, n, size)
	}
	return nil
}

// refTag returns the tag of ref ("latest" when it has none), the value OCI
// layouts put in org.opencontainers.image.ref.name.
func refTag(ref string) string {
	name := ref
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return "latest"
}
