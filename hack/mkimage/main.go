// Command mkimage writes a small busybox sandbox image as an OCI image-layout
// tar archive that "sbxrun load -i", containerd's client.Import and
// "ctr images import" accept. It needs no registry and no network: the only
// input is the host's statically linked /bin/busybox (Debian's
// busybox-static package). The output is deterministic (fixed mtimes, sorted
// entries, no gzip timestamps), so the same flags give the same digest.
//
//	go run ./hack/mkimage -o base.tar -ref ghcr.io/sbxrun/base:latest
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/internal/ocilayout"
)

// defaultPath is the PATH of the image config when -env does not set one.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is the fixed modification time of every file, so digests are stable.
var epoch = time.Unix(1700000000, 0).UTC()

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	out        string
	ref        string
	busybox    string
	env        []string
	labels     []string
	workdir    string
	user       string
	entrypoint []string
	cmd        []string
	// symlinks are PATH=TARGET links added to the rootfs; one replaces
	// the directory of the same path (workspace=/etc: a hostile image).
	symlinks []string
	// expose are the image's EXPOSEd ports, PORT/PROTO.
	expose []string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var o options
	var env, labels, symlinks, expose listFlag
	var entrypoint, cmd string
	fs.StringVar(&o.out, "o", "", "output `FILE` (required)")
	fs.StringVar(&o.ref, "ref", "ghcr.io/sbxrun/base:latest", "image reference to record in index.json")
	fs.StringVar(&o.busybox, "busybox", "/bin/busybox", "statically linked busybox to copy")
	fs.Var(&env, "env", "`K=V` added to the image environment (repeatable)")
	fs.Var(&labels, "label", "`K=V` image label (repeatable)")
	fs.Var(&expose, "expose", "`PORT/PROTO` the image EXPOSEs, such as 8000/tcp (repeatable)")
	fs.Var(&symlinks, "symlink", "`PATH=TARGET` symlink in the rootfs, replacing a directory at PATH (repeatable)")
	fs.StringVar(&o.workdir, "workdir", "", "image working directory")
	fs.StringVar(&o.user, "user", "", "image user")
	fs.StringVar(&entrypoint, "entrypoint", "", "entrypoint as a JSON array")
	fs.StringVar(&cmd, "cmd", `["sh"]`, "command as a JSON array")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.out == "" {
		return errors.New("missing -o FILE: name the archive to write")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: all options are flags", fs.Args())
	}
	if entrypoint != "" {
		if err := json.Unmarshal([]byte(entrypoint), &o.entrypoint); err != nil {
			return fmt.Errorf("parsing -entrypoint %q: use a JSON array such as [\"sh\",\"-c\"]: %w", entrypoint, err)
		}
	}
	if cmd != "" {
		if err := json.Unmarshal([]byte(cmd), &o.cmd); err != nil {
			return fmt.Errorf("parsing -cmd %q: use a JSON array such as [\"sh\"]: %w", cmd, err)
		}
	}
	for _, kv := range env {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("invalid -env %q: use K=V", kv)
		}
	}
	for _, kv := range labels {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("invalid -label %q: use K=V", kv)
		}
	}
	for _, kv := range symlinks {
		if name, target, ok := strings.Cut(kv, "="); !ok || name == "" || target == "" || strings.HasPrefix(name, "/") {
			return fmt.Errorf("invalid -symlink %q: use PATH=TARGET with PATH relative to the root, such as workspace=/etc", kv)
		}
	}
	o.env, o.labels, o.symlinks, o.expose = env, labels, symlinks, expose

	archive, err := build(o)
	if err != nil {
		return err
	}
	tmp := o.out + ".tmp"
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return fmt.Errorf("writing %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, o.out); err != nil {
		return fmt.Errorf("renaming %q: %w", tmp, err)
	}
	return nil
}

// build returns the OCI image-layout archive for o.
func build(o options) ([]byte, error) {
	layerTar, err := rootfs(o.busybox, o.symlinks)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(layerTar); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}

	var exposed map[string]struct{}
	for _, p := range o.expose {
		if exposed == nil {
			exposed = map[string]struct{}{}
		}
		exposed[p] = struct{}{}
	}
	cfg := ocispec.Image{
		Created:  &epoch,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			User:         o.user,
			Env:          mergeEnv([]string{defaultPath}, o.env),
			Entrypoint:   o.entrypoint,
			Cmd:          o.cmd,
			WorkingDir:   o.workdir,
			Labels:       toMap(o.labels),
			ExposedPorts: exposed,
		},
		RootFS: ocispec.RootFS{
			Type:    "layers",
			DiffIDs: []digest.Digest{digest.FromBytes(layerTar)},
		},
		History: []ocispec.History{{Created: &epoch, CreatedBy: "sbxrun hack/mkimage"}},
	}
	layer := gz.Bytes()
	var out bytes.Buffer
	err = ocilayout.Write(&out, ocilayout.Image{
		Ref:    o.ref,
		Config: cfg,
		Layers: []ocilayout.Layer{{
			Descriptor: ocispec.Descriptor{
				MediaType: ocispec.MediaTypeImageLayerGzip,
				Digest:    digest.FromBytes(layer),
				Size:      int64(len(layer)),
			},
			Content: bytes.NewReader(layer),
		}},
		ModTime: epoch,
	})
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// rootfs returns the uncompressed layer tar: busybox with one symlink per
// applet, the minimal files a sandbox expects, and the PATH=TARGET links of
// symlinks in place of the directories of those paths.
func rootfs(busyboxPath string, symlinks []string) ([]byte, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: install Debian's busybox-static package: %w", err)
	}
	list, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets of %q: %w", busyboxPath, err)
	}
	applets := strings.Fields(string(list))
	sort.Strings(applets)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []struct {
		name string
		mode int64
		uid  int
	}{
		{"bin/", 0o755, 0},
		{"dev/", 0o755, 0},
		{"etc/", 0o755, 0},
		{"home/", 0o755, 0},
		{"home/dev/", 0o755, 1000},
		{"home/dev/.local/", 0o755, 1000},
		{"home/dev/.local/bin/", 0o755, 1000},
		{"proc/", 0o555, 0},
		{"root/", 0o700, 0},
		{"sbin/", 0o755, 0},
		{"sys/", 0o555, 0},
		{"tmp/", 0o1777, 0},
		{"usr/", 0o755, 0},
		{"usr/bin/", 0o755, 0},
		{"usr/sbin/", 0o755, 0},
		{"var/", 0o755, 0},
		{"workspace/", 0o755, 0},
	}
	links := map[string]string{}
	var linkNames []string
	for _, kv := range symlinks {
		name, target, _ := strings.Cut(kv, "=")
		name = strings.TrimSuffix(name, "/")
		links[name] = target
		linkNames = append(linkNames, name)
	}
	sort.Strings(linkNames)
	for _, d := range dirs {
		if _, replaced := links[strings.TrimSuffix(d.name, "/")]; replaced {
			continue
		}
		if err := tw.WriteHeader(dirHeader(d.name, d.mode, d.uid)); err != nil {
			return nil, err
		}
	}
	for _, name := range linkNames {
		if err := tw.WriteHeader(symlinkHeader(name, links[name])); err != nil {
			return nil, err
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, bb); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(symlinkHeader("bin/"+a, "busybox")); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(symlinkHeader("usr/bin/env", "/bin/busybox")); err != nil {
		return nil, err
	}
	files := []struct {
		name    string
		mode    int64
		content string
	}{
		{"bin/notexec", 0o644, "#!/bin/sh\necho this file is not executable\n"},
		{"etc/group", 0o644, "root:x:0:\ndev:x:1000:\nnogroup:x:65534:\n"},
		{"etc/hosts", 0o644, ""},
		{"etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/resolv.conf", 0o644, ""},
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, f.mode, []byte(f.content)); err != nil {
			return nil, err
		}
	}
	// A tool installed in the image user's home, as pip --user and npm do:
	// it must keep running whoever's files the sandbox keeps (--userns).
	if err := writeFileAs(tw, "home/dev/.local/bin/dev-tool", 0o755, 1000, []byte("#!/bin/sh\necho dev-tool runs as $(id -un)\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func dirHeader(name string, mode int64, id int) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: id, Gid: id, ModTime: epoch, Format: tar.FormatPAX}
}

func symlinkHeader(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}
}

func writeFile(tw *tar.Writer, name string, mode int64, b []byte) error {
	return writeFileAs(tw, name, mode, 0, b)
}

// writeFileAs writes a regular file owned by id (uid and gid).
func writeFileAs(tw *tar.Writer, name string, mode int64, id int, b []byte) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: id, Gid: id, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %q: %w", name, err)
	}
	if _, err := io.Copy(tw, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing %q: %w", name, err)
	}
	return nil
}

// mergeEnv applies K=V entries over base, replacing an existing key in place.
func mergeEnv(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func toMap(kvs []string) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
