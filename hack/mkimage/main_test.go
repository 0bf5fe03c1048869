package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readTar returns the regular files and the headers of a tar stream.
func readTar(t *testing.T, r io.Reader) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files, headers := map[string][]byte{}, map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, headers
		}
		if err != nil {
			t.Fatal(err)
		}
		headers[h.Name] = h
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

func TestBuild(t *testing.T) {
	o := options{
		ref:     "ghcr.io/sbxrun/base:latest",
		busybox: "/bin/busybox",
		env:     []string{"A=1", "PATH=/custom"},
		labels:  []string{"k=v"},
		workdir: "/home/dev",
		user:    "dev",
		cmd:     []string{"sh"},
	}
	first, err := build(o)
	if err != nil {
		t.Fatalf("build: %v (install busybox-static)", err)
	}
	second, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("two builds with the same options differ: the output must be deterministic")
	}

	files, _ := readTar(t, bytes.NewReader(first))
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", got)
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
	}
	ann := index.Manifests[0].Annotations
	if ann[ocispec.AnnotationRefName] != "latest" || ann["io.containerd.image.name"] != o.ref {
		t.Errorf("annotations %v, want ref.name latest and io.containerd.image.name %s", ann, o.ref)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(blob(t, files, index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(blob(t, files, manifest.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Env, []string{"PATH=/custom", "A=1"}) {
		t.Errorf("env %q, want PATH replaced in place and A appended", cfg.Config.Env)
	}
	if cfg.Config.WorkingDir != "/home/dev" || cfg.Config.User != "dev" || cfg.Config.Labels["k"] != "v" || !slices.Equal(cfg.Config.Cmd, []string{"sh"}) {
		t.Errorf("config %+v", cfg.Config)
	}
	if len(manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(manifest.Layers))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(layer) != cfg.RootFS.DiffIDs[0] {
		t.Error("diff_id does not match the uncompressed layer")
	}
	lf, lh := readTar(t, bytes.NewReader(layer))

	tests := []struct {
		name     string
		typ      byte
		mode     int64
		uid      int
		linkname string
	}{
		{"bin/busybox", tar.TypeReg, 0o755, 0, ""},
		{"bin/sh", tar.TypeSymlink, 0o777, 0, "busybox"},
		{"bin/ip", tar.TypeSymlink, 0o777, 0, "busybox"},
		{"usr/bin/env", tar.TypeSymlink, 0o777, 0, "/bin/busybox"},
		{"bin/notexec", tar.TypeReg, 0o644, 0, ""},
		{"tmp/", tar.TypeDir, 0o1777, 0, ""},
		{"home/dev/", tar.TypeDir, 0o755, 1000, ""},
		{"root/", tar.TypeDir, 0o700, 0, ""},
		{"workspace/", tar.TypeDir, 0o755, 0, ""},
		{"etc/hosts", tar.TypeReg, 0o644, 0, ""},
		{"etc/resolv.conf", tar.TypeReg, 0o644, 0, ""},
	}
	for _, tt := range tests {
		h, ok := lh[tt.name]
		if !ok {
			t.Errorf("%s missing from the layer", tt.name)
			continue
		}
		if h.Typeflag != tt.typ || h.Mode != tt.mode || h.Uid != tt.uid || h.Linkname != tt.linkname || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: type %c mode %o uid %d link %q mtime %v; want %c %o %d %q %v",
				tt.name, h.Typeflag, h.Mode, h.Uid, h.Linkname, h.ModTime, tt.typ, tt.mode, tt.uid, tt.linkname, epoch)
		}
	}
	for _, line := range []string{"root:x:0:0:root:/root:/bin/sh", "dev:x:1000:1000:dev:/home/dev:/bin/sh", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(lf["etc/passwd"]), line) {
			t.Errorf("/etc/passwd lacks %q", line)
		}
	}
	if !strings.Contains(string(lf["etc/group"]), "dev:x:1000:") {
		t.Error("/etc/group lacks dev")
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no-output", nil, "-o FILE"},
		{"bad-cmd", []string{"-o", "/dev/null", "-cmd", "sh"}, "JSON array"},
		{"bad-entrypoint", []string{"-o", "/dev/null", "-entrypoint", "[sh"}, "JSON array"},
		{"bad-env", []string{"-o", "/dev/null", "-env", "NOEQUALS"}, "K=V"},
		{"bad-label", []string{"-o", "/dev/null", "-label", "x"}, "K=V"},
		{"extra-args", []string{"-o", "/dev/null", "extra"}, "unexpected"},
		{"bad-symlink", []string{"-o", "/dev/null", "-symlink", "workspace"}, "PATH=TARGET"},
		{"absolute-symlink-path", []string{"-o", "/dev/null", "-symlink", "/workspace=/etc"}, "relative to the root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestRootfsSymlinks: -symlink PATH=TARGET puts a link where the rootfs had
// a directory, for tests of images with hostile links.
func TestRootfsSymlinks(t *testing.T) {
	layer, err := rootfs("/bin/busybox", []string{"workspace=/etc", "srv/w=../etc"})
	if err != nil {
		t.Fatalf("rootfs: %v (install busybox-static)", err)
	}
	_, lh := readTar(t, bytes.NewReader(layer))
	if h, ok := lh["workspace"]; !ok || h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc" {
		t.Errorf("workspace: %+v, want a symlink to /etc", h)
	}
	if _, ok := lh["workspace/"]; ok {
		t.Error("the workspace/ directory is still in the layer beside the link")
	}
	if h, ok := lh["srv/w"]; !ok || h.Typeflag != tar.TypeSymlink || h.Linkname != "../etc" {
		t.Errorf("srv/w: %+v, want a symlink to ../etc", h)
	}
	if h, ok := lh["etc/"]; !ok || h.Typeflag != tar.TypeDir {
		t.Errorf("etc/: %+v, want the directory kept", h)
	}
}
