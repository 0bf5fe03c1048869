package ocilayout

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// image is a one-layer image whose layer blob is content, described as
// having digest d and size n.
func image(content []byte, d digest.Digest, n int64) Image {
	return Image{
		Ref:     "localhost/x/y:1",
		Config:  ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		Layers:  []Layer{{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: n}, Content: bytes.NewReader(content)}},
		ModTime: time.Unix(1700000000, 0),
	}
}

// TestWrite: the archive holds the blobs in digest order, then index.json
// and oci-layout, all with one mtime, and the index names the image and
// its platform.
func TestWrite(t *testing.T) {
	layer := []byte("layer")
	var buf bytes.Buffer
	if err := Write(&buf, image(layer, digest.FromBytes(layer), int64(len(layer)))); err != nil {
		t.Fatal(err)
	}
	var names []string
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(1700000000, 0)) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d; want the image's mtime and root", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		names = append(names, h.Name)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
	if len(names) != 7 || names[0] != "blobs/" || names[1] != "blobs/sha256/" || names[5] != "index.json" || names[6] != "oci-layout" ||
		!slices.IsSorted(names[2:5]) {
		t.Fatalf("entries %q: want blobs/, blobs/sha256/, three blobs in digest order, index.json, oci-layout", names)
	}
	if got := files["blobs/sha256/"+digest.FromBytes(layer).Encoded()]; !bytes.Equal(got, layer) {
		t.Errorf("layer blob %q, want %q", got, layer)
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	m := index.Manifests[0]
	if m.Platform == nil || m.Platform.OS != "linux" || m.Platform.Architecture != "amd64" ||
		m.Annotations["io.containerd.image.name"] != "localhost/x/y:1" || m.Annotations[ocispec.AnnotationRefName] != "1" {
		t.Errorf("index manifest %+v", m)
	}
}

// TestWriteRejects: a layer whose content is not what its descriptor says
// fails the write instead of giving an archive containerd would refuse.
func TestWriteRejects(t *testing.T) {
	layer := []byte("layer")
	tests := []struct {
		name string
		img  Image
		want string
	}{
		{"wrong digest", image(layer, digest.FromString("other"), int64(len(layer))), "its content has digest"},
		{"too short", image(layer, digest.FromBytes(layer), int64(len(layer))+1), "5 bytes, want 6"},
		{"too long", image(layer, digest.FromBytes(layer), int64(len(layer))-1), "write too long"},
		{"not sha256", image(layer, digest.Digest("sha512:"+strings.Repeat("0", 128)), int64(len(layer))), "only sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img.tar")
			err := WriteFile(path, tt.img)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteFile = %v, want an error containing %q", err, tt.want)
			}
			if left, _ := filepath.Glob(path + "*"); len(left) > 0 {
				t.Errorf("a failed write left %q", left)
			}
		})
	}
}

// TestWriteFile: the archive appears whole at its path, with no temporary
// file beside it.
func TestWriteFile(t *testing.T) {
	layer := []byte("layer")
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := WriteFile(path, image(layer, digest.FromBytes(layer), int64(len(layer)))); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, image(layer, digest.FromBytes(layer), int64(len(layer)))); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("the file differs from what Write gives (%v)", err)
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestRefTag(t *testing.T) {
	tests := []struct{ ref, want string }{
		{"ghcr.io/sbxrun/base:latest", "latest"},
		{"localhost:5000/x/y:1.2", "1.2"},
		{"localhost:5000/x/y", "latest"},
		{"docker.io/library/alpine:3@sha256:abc", "3"},
	}
	for _, tt := range tests {
		if got := refTag(tt.ref); got != tt.want {
			t.Errorf("refTag(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}
