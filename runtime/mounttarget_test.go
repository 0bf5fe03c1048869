package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// layerEntry is one file of a test layer: "dir/", "file", "link -> target",
// "name (whiteout)" or "dir/ (opaque)".
type layerEntry = string

// makeLayers writes layers (top first) as overlayfs snapshot directories.
func makeLayers(t *testing.T, layers ...[]layerEntry) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to write overlayfs whiteouts and trusted xattrs: run it as root (CI does)")
	}
	var dirs []string
	for _, entries := range layers {
		root := t.TempDir()
		for _, e := range entries {
			name, mark, _ := strings.Cut(e, " ")
			p := filepath.Join(root, strings.TrimSuffix(name, "/"))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			var err error
			switch {
			case strings.HasPrefix(mark, "-> "):
				err = os.Symlink(strings.TrimPrefix(mark, "-> "), p)
			case mark == "(whiteout)":
				err = unix.Mknod(p, unix.S_IFCHR|0o000, 0)
			case strings.HasSuffix(name, "/"):
				err = os.MkdirAll(p, 0o755)
				if err == nil && mark == "(opaque)" {
					err = unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0)
				}
			default:
				err = os.WriteFile(p, nil, 0o644)
			}
			if err != nil {
				t.Fatalf("layer entry %q: %v", e, err)
			}
		}
		dirs = append(dirs, root)
	}
	return dirs
}

func bindAt(dst string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: "/host" + dst, Options: []string{"rbind", "rprivate"}}
}

// defaultMounts stand for containerd's and sbxrun's own mounts of a run.
var defaultMounts = []specs.Mount{
	{Destination: "/proc", Type: "proc", Source: "proc"},
	{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
	{Destination: "/dev/pts", Type: "devpts", Source: "devpts"},
	{Destination: "/run", Type: "tmpfs", Source: "tmpfs"},
	bindAt("/etc/hosts"),
	bindAt("/etc/resolv.conf"),
}

// TestCheckMountTargets resolves mount targets through the image's layers
// as runc does, and refuses exactly the specs where a symlink puts a mount
// inside a host bind mount it was not written in.
func TestCheckMountTargets(t *testing.T) {
	base := []layerEntry{"etc/", "etc/hosts", "etc/resolv.conf", "run/", "workspace/"}
	tests := []struct {
		name   string
		layers [][]layerEntry
		mounts []specs.Mount
		want   *MountTargetError
	}{
		{
			name:   "plain image",
			layers: [][]layerEntry{base},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
		},
		{
			name:   "workspace links to etc",
			layers: [][]layerEntry{{"workspace -> /etc", "etc/", "etc/hosts"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
			want:   &MountTargetError{Link: "/workspace", To: "/etc", Inside: "/workspace"},
		},
		{
			name:   "the hosts bind comes first in the spec",
			layers: [][]layerEntry{{"workspace -> /etc", "etc/", "etc/hosts"}},
			mounts: append(append([]specs.Mount{}, defaultMounts...), bindAt("/workspace")),
			want:   &MountTargetError{Link: "/workspace", To: "/etc", Inside: "/workspace"},
		},
		{
			name:   "relative link that climbs out stays in the root",
			layers: [][]layerEntry{{"workspace -> ../../../etc", "etc/"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
			want:   &MountTargetError{Link: "/workspace", To: "/etc", Inside: "/workspace"},
		},
		{
			name:   "link to a link",
			layers: [][]layerEntry{{"workspace -> /srv", "srv -> etc", "etc/"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
			want:   &MountTargetError{Link: "/workspace", To: "/etc", Inside: "/workspace"},
		},
		{
			name:   "workspace links to dev",
			layers: [][]layerEntry{{"workspace -> /dev"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
			want:   &MountTargetError{Link: "/workspace", To: "/dev", Inside: "/workspace"},
		},
		{
			name:   "hosts links into the workspace",
			layers: [][]layerEntry{{"etc/", "etc/hosts -> ../workspace/hosts", "workspace/"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
			want:   &MountTargetError{Link: "/etc/hosts", To: "/workspace/hosts", Inside: "/workspace"},
		},
		{
			name:   "link in an upper layer over a directory below",
			layers: [][]layerEntry{{"workspace -> /etc"}, base},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
			want:   &MountTargetError{Link: "/workspace", To: "/etc", Inside: "/workspace"},
		},
		{
			name:   "directory in an upper layer over a link below",
			layers: [][]layerEntry{{"workspace/"}, {"workspace -> /etc", "etc/"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
		},
		{
			name:   "whiteout hides a link below",
			layers: [][]layerEntry{{"workspace (whiteout)"}, {"workspace -> /etc", "etc/"}},
			mounts: append([]specs.Mount{bindAt("/workspace")}, defaultMounts...),
		},
		{
			name:   "link below an opaque directory is hidden",
			layers: [][]layerEntry{{"srv/ (opaque)"}, {"srv/", "srv/w -> /etc", "etc/"}},
			mounts: append([]specs.Mount{bindAt("/srv/w")}, defaultMounts...),
		},
		{
			name:   "link below a plain directory shows through",
			layers: [][]layerEntry{{"srv/"}, {"srv/", "srv/w -> /etc", "etc/"}},
			mounts: append([]specs.Mount{bindAt("/srv/w")}, defaultMounts...),
			want:   &MountTargetError{Link: "/srv/w", To: "/etc", Inside: "/srv/w"},
		},
		{
			name:   "a link no other mount meets is followed, as Docker does",
			layers: [][]layerEntry{{"var/", "var/run -> /run", "run/", "workspace -> /srv/work", "srv/work/"}},
			mounts: append([]specs.Mount{bindAt("/var/run/app.sock"), bindAt("/workspace")}, defaultMounts...),
		},
		{
			name:   "mounts nested as written",
			layers: [][]layerEntry{base},
			mounts: append([]specs.Mount{bindAt("/workspace"), bindAt("/workspace/.cache"), {Destination: "/workspace/tmp", Type: "tmpfs"}}, defaultMounts...),
		},
		{
			name:   "a tmpfs target that links into a bind",
			layers: [][]layerEntry{{"scratch -> /workspace/scratch", "workspace/"}},
			mounts: append([]specs.Mount{bindAt("/workspace"), {Destination: "/scratch", Type: "tmpfs"}}, defaultMounts...),
			want:   &MountTargetError{Link: "/scratch", To: "/workspace/scratch", Inside: "/workspace"},
		},
		{
			name:   "one file mounted under two names (merged /usr)",
			layers: [][]layerEntry{{"lib -> usr/lib", "usr/lib/x/"}},
			mounts: append([]specs.Mount{bindAt("/lib/x/libcuda.so.1"), bindAt("/usr/lib/x/libcuda.so.1")}, defaultMounts...),
		},
		{
			name:   "two directories at one place cover each other",
			layers: [][]layerEntry{{"workspace -> /data", "data/"}},
			mounts: append([]specs.Mount{bindAt("/workspace"), bindAt("/data")}, defaultMounts...),
		},
		{
			name:   "symlink loop is left to runc",
			layers: [][]layerEntry{{"a -> /b", "b -> /a"}},
			mounts: append([]specs.Mount{bindAt("/a/x")}, defaultMounts...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkMountTargets("example/img", layerFS(makeLayers(t, tt.layers...)), tt.mounts)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("checkMountTargets: %v, want no error", err)
				}
				return
			}
			var got *MountTargetError
			if !errors.As(err, &got) {
				t.Fatalf("checkMountTargets: %v, want %+v", err, tt.want)
			}
			tt.want.Image = "example/img"
			if *got != *tt.want {
				t.Errorf("checkMountTargets: %+v, want %+v", got, tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasSuffix(msg, "mount at a target that is no symlink in the image, or fix the image") {
				t.Errorf("error %q: want one line ending with the fix", msg)
			}
		})
	}
}

// TestSnapshotLayers reads the layer directories of the snapshot mounts
// containerd's snapshotters return.
func TestSnapshotLayers(t *testing.T) {
	d := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	up, l1, l2, odd := mk("up"), mk("l1"), mk("l2"), mk("a:b")
	tests := []struct {
		name   string
		mounts []mount.Mount
		want   []string
	}{
		{"overlay", []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off", "workdir=" + d, "upperdir=" + up, "lowerdir=" + l1 + ":" + l2}}}, []string{up, l1, l2}},
		{"view without upperdir", []mount.Mount{{Type: "overlay", Options: []string{"lowerdir=" + l1 + ":" + l2}}}, []string{l1, l2}},
		{"escaped colon", []mount.Mount{{Type: "overlay", Options: []string{"lowerdir=" + strings.ReplaceAll(odd, ":", `\:`) + ":" + l1}}}, []string{odd, l1}},
		{"bind of one layer", []mount.Mount{{Type: "bind", Source: l1, Options: []string{"rbind", "ro"}}}, []string{l1}},
		{"layer not visible here", []mount.Mount{{Type: "bind", Source: filepath.Join(d, "missing")}}, nil},
		{"another snapshotter", []mount.Mount{{Type: "btrfs", Source: "/dev/sda1"}}, nil},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		if got := snapshotLayers(tt.mounts); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: snapshotLayers = %q, want %q", tt.name, got, tt.want)
		}
	}
}
