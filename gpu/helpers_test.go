package gpu

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot fails t loudly when the test does not run as root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates device nodes and a mount namespace and needs root: run it as root (sudo go test ./gpu/)")
	}
}

// mknod creates a character device node at path (the numbers of
// /dev/null: nothing opens it).
func mknod(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod %s: %v", path, err)
	}
}

// inMountNamespace runs fn on an OS thread of its own that has a private
// mount namespace with a tmpfs over /proc/driver holding files (relative
// to /proc/driver), as the NVIDIA driver would: nvcdi reads MIG
// capabilities there. The thread is never returned to the Go scheduler,
// so the namespace dies with it and the test process's view is untouched.
func inMountNamespace(t *testing.T, files map[string]string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("tmpfs", "/proc/driver", "tmpfs", 0, "mode=0755"); err != nil {
			errc <- err
			return
		}
		for name, content := range files {
			p := filepath.Join("/proc/driver", name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				errc <- err
				return
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				errc <- err
				return
			}
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("setting up a mount namespace with a fake /proc/driver: %v", err)
	}
}
