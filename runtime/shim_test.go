package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

// The socket path must be the one containerd's shims compute, or gc could
// not reach an orphaned shim through its API. The want value is the
// socket a containerd 1.6.20 shim created for this address, namespace and id.
func TestShimSocket(t *testing.T) {
	s := shimProc{address: "/tmp/sbxa/ctd/containerd.sock", ns: "soaka", id: "base-e5e8fe"}
	want := "/run/containerd/s/44d9b0f056db6b29fa911299fa36677b25085ae16dc8095deade720a857d7803"
	if got := s.socket(); got != want {
		t.Errorf("socket() = %q, want %q", got, want)
	}
}

func TestSameAddress(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{sock, sock, true},
		{"unix://" + sock, sock, true},
		{filepath.Join(link, "containerd.sock"), sock, true},
		{sock + "/", sock, true},
		{filepath.Join(dir, "other.sock"), sock, false},
		{"/run/containerd/containerd.sock", sock, false},
	} {
		if got := sameAddress(tt.a, tt.b); got != tt.want {
			t.Errorf("sameAddress(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// removeBundle deletes directories as root: it must refuse any path that
// is not containerd's bundle of the shim's own namespace and id.
func TestRemoveBundleOnlyRemovesTheShimsBundle(t *testing.T) {
	s := shimProc{ns: "sbxrun", id: "base-1"}
	root := t.TempDir()
	mk := func(parts ...string) string {
		p := filepath.Join(append([]string{root}, parts...)...)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keep := []string{
		mk("home", "user", "project"),
		mk("io.containerd.runtime.v2.task", "other-ns", "base-1"),
		mk("io.containerd.runtime.v2.task", "sbxrun", "base-2"),
		mk("somewhere", "sbxrun", "base-1"),
	}
	for _, p := range keep {
		removeBundle(p, s)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("removeBundle(%q) removed a directory that is not the shim's bundle", p)
		}
	}
	work := mk("root", "io.containerd.runtime.v2.task", "sbxrun", "base-1")
	bundle := mk("state", "io.containerd.runtime.v2.task", "sbxrun", "base-1")
	if err := os.Symlink(work, filepath.Join(bundle, "work")); err != nil {
		t.Fatal(err)
	}
	removeBundle(bundle+" (deleted)", s)
	if _, err := os.Stat(bundle); err != nil {
		t.Errorf("removeBundle removed the bundle a deleted working directory named")
	}
	removeBundle(bundle, s)
	for _, p := range []string{bundle, work} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%q still exists after removeBundle (stat: %v)", p, err)
		}
	}
}
