package main

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

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// rootfsTar writes a small rootfs tarball shaped like mmdebstrap's: "./"
// names, device nodes under dev/, a hard link and an xattr.
func rootfsTar(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./dev/", Mode: 0o755},
		{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./usr/bin/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./usr/bin/ping", Mode: 0o755, Size: 4, PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "cap"}},
		{Typeflag: tar.TypeLink, Name: "./usr/bin/ping6", Linkname: "./usr/bin/ping"},
		{Typeflag: tar.TypeDir, Name: "./home/dev", Mode: 0o755, Uid: 1000, Gid: 1000},
	}
	for _, h := range entries {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readArchive(t *testing.T, p string) map[string][]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func blob(t *testing.T, files map[string][]byte, d digest.Digest) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+d.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing", d)
	}
	if digest.FromBytes(b) != d {
		t.Fatalf("blob %s has digest %s", d, digest.FromBytes(b))
	}
	return b
}

func TestPack(t *testing.T) {
	rootfs := rootfsTar(t)
	tests := []struct {
		compress  string
		mediaType string
		open      func([]byte) (io.Reader, error)
	}{
		{"gzip", ocispec.MediaTypeImageLayerGzip, func(b []byte) (io.Reader, error) { return gzip.NewReader(bytes.NewReader(b)) }},
		{"zstd", ocispec.MediaTypeImageLayerZstd, func(b []byte) (io.Reader, error) { return zstd.NewReader(bytes.NewReader(b)) }},
		{"none", ocispec.MediaTypeImageLayer, func(b []byte) (io.Reader, error) { return bytes.NewReader(b), nil }},
	}
	for _, tt := range tests {
		t.Run(tt.compress, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
			out := filepath.Join(t.TempDir(), "base.tar")
			err := run([]string{"-rootfs", rootfs, "-dir", "../../sandboxes", "-sandbox", "base", "-o", out,
				"-compress", tt.compress, "-label", "org.opencontainers.image.description=local", "-history", "test build"})
			if err != nil {
				t.Fatal(err)
			}
			files := readArchive(t, out)
			if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
				t.Errorf("oci-layout %q", got)
			}
			var index ocispec.Index
			if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
				t.Fatalf("index.json %s: %v", files["index.json"], err)
			}
			desc := index.Manifests[0]
			if desc.Annotations["io.containerd.image.name"] != "ghcr.io/sbxrun/base:latest" || desc.Annotations[ocispec.AnnotationRefName] != "latest" {
				t.Errorf("annotations %v", desc.Annotations)
			}
			var manifest ocispec.Manifest
			if err := json.Unmarshal(blob(t, files, desc.Digest), &manifest); err != nil {
				t.Fatal(err)
			}
			var img ocispec.Image
			if err := json.Unmarshal(blob(t, files, manifest.Config.Digest), &img); err != nil {
				t.Fatal(err)
			}
			if img.Config.User != "1000:1000" || img.Config.WorkingDir != "/workspace" ||
				!slices.Equal(img.Config.Entrypoint, []string{"/usr/bin/tini", "--", "/usr/local/bin/sandbox-entrypoint"}) {
				t.Errorf("config %+v: want base's user, workdir and entrypoint", img.Config)
			}
			if img.Config.Labels["io.github.sbxrun.profile"] != "base" || img.Config.Labels["org.opencontainers.image.description"] != "local" {
				t.Errorf("labels %v: want base's, with the description replaced", img.Config.Labels)
			}
			if img.Created == nil || img.Created.Unix() != 1700000000 || len(img.History) != 1 || img.History[0].CreatedBy != "test build" {
				t.Errorf("created %v, history %+v", img.Created, img.History)
			}
			if len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != tt.mediaType {
				t.Fatalf("layers %+v, want one %s", manifest.Layers, tt.mediaType)
			}
			r, err := tt.open(blob(t, files, manifest.Layers[0].Digest))
			if err != nil {
				t.Fatal(err)
			}
			layer, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(img.RootFS.DiffIDs) != 1 || img.RootFS.DiffIDs[0] != digest.FromBytes(layer) {
				t.Errorf("diff IDs %v, want %s", img.RootFS.DiffIDs, digest.FromBytes(layer))
			}
			var names []string
			tr := tar.NewReader(bytes.NewReader(layer))
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, h.Name)
				switch h.Name {
				case "usr/bin/ping":
					if h.PAXRecords["SCHILY.xattr.security.capability"] != "cap" {
						t.Errorf("ping lost its xattr: %v", h.PAXRecords)
					}
				case "usr/bin/ping6":
					if h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/ping" {
						t.Errorf("ping6 %c -> %q, want a hard link to usr/bin/ping", h.Typeflag, h.Linkname)
					}
				case "home/dev/":
					if h.Uid != 1000 || h.Gid != 1000 {
						t.Errorf("home/dev owned by %d:%d, want 1000:1000", h.Uid, h.Gid)
					}
				}
			}
			if want := []string{"dev/", "usr/", "usr/bin/", "usr/bin/ping", "usr/bin/ping6", "home/dev/"}; !slices.Equal(names, want) {
				t.Errorf("layer entries %q, want %q", names, want)
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".ocipack-*"))
			if len(leftovers) > 0 || strings.HasSuffix(out, ".tmp") {
				t.Errorf("temporary files left: %q", leftovers)
			}
		})
	}
}

func TestPackRejects(t *testing.T) {
	rootfs := rootfsTar(t)
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"no rootfs", []string{"-sandbox", "base", "-o", "x"}, "-rootfs, -sandbox and -o are required"},
		{"no sandbox", []string{"-rootfs", rootfs, "-o", "x"}, "-sandbox is required"},
		{"unknown sandbox", []string{"-rootfs", rootfs, "-sandbox", "nope", "-o", "x", "-dir", "../../sandboxes"}, `unknown sandbox "nope"`},
		{"bad compression", []string{"-rootfs", rootfs, "-sandbox", "base", "-o", "x", "-dir", "../../sandboxes", "-compress", "lz4"}, `unknown -compress "lz4"`},
		{"bad label", []string{"-rootfs", rootfs, "-sandbox", "base", "-o", "x", "-label", "novalue"}, `invalid -label "novalue"`},
		{"missing rootfs", []string{"-rootfs", "/nonexistent.tar", "-sandbox", "base", "-o", filepath.Join(t.TempDir(), "x"), "-dir", "../../sandboxes"}, "opening the rootfs tarball"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestPrintDirs(t *testing.T) {
	tests := []struct{ sandbox, want string }{
		{"base", "/workspace\n"},
		{"model-dev", "/workspace/models\n/home/dev/.cache/huggingface\n/home/dev/.cache/torch\n/home/dev/.ollama\n"},
		{"test", "/workspace/tests\n"},
	}
	for _, tt := range tests {
		t.Run(tt.sandbox, func(t *testing.T) {
			var out bytes.Buffer
			if err := printDirs(t.Context(), options{dir: "../../sandboxes", sandbox: tt.sandbox}, &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}
