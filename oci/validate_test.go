package oci

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/errdefs"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	toRoot := filepath.Join(dir, "to-root")
	toRun := filepath.Join(dir, "to-run")
	for link, target := range map[string]string{toRoot: "/", toRun: "/run"} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	bind := func(src, dst string) []Mount { return []Mount{{Type: "bind", Source: src, Destination: dst}} }
	n := runtime.NumCPU()

	tests := []struct {
		name    string
		s       Sandbox
		wantErr string // "" means valid
	}{
		{name: "zero sandbox", s: Sandbox{}},
		{name: "everything fine", s: Sandbox{
			Mounts:     append(bind(dir, "/workspace/"), Mount{Type: "tmpfs", Destination: "/tmp"}, Mount{Source: file, Destination: "/etc/x", ReadOnly: true}),
			HostsFile:  file,
			ResolvConf: file,
			Workdir:    "/workspace",
			User:       "1000:1000",
			Env:        []string{"A=1", "B="},
			Hostname:   "box",
			Memory:     512 << 20, MemorySwap: 1 << 30,
			CPUs: 0.5, PidsLimit: 100, ShmSize: 1 << 30,
			Network: "none",
			CapAdd:  []string{"sys_ptrace", "CAP_NET_ADMIN", "all"}, CapDrop: []string{"Net_Raw"},
			Privileged: true,
			Seccomp:    file,
		}},
		{name: "mount under /dev", s: Sandbox{Mounts: bind(dir, "/dev/fuse")}},
		{name: "relative destination", s: Sandbox{Mounts: bind(dir, "data")}, wantErr: `mount destination "data" is not an absolute path`},
		{name: "empty destination", s: Sandbox{Mounts: bind(dir, "")}, wantErr: "has no destination"},
		{name: "destination /", s: Sandbox{Mounts: bind(dir, "/")}, wantErr: `mount destination "/" would hide`},
		{name: "destination /proc", s: Sandbox{Mounts: bind(dir, "/proc/")}, wantErr: `mount destination "/proc/" would hide the sandbox's /proc`},
		{name: "destination /sys", s: Sandbox{Mounts: bind(dir, "/sys")}, wantErr: "would hide"},
		{name: "destination /dev", s: Sandbox{Mounts: bind(dir, "/dev")}, wantErr: "would hide"},
		{name: "destination /dev via dots", s: Sandbox{Mounts: bind(dir, "/x/../dev")}, wantErr: "would hide"},
		{name: "destination under /proc", s: Sandbox{Mounts: bind(dir, "/proc/sys/kernel")}, wantErr: "under /proc or /sys"},
		{name: "destination under /sys", s: Sandbox{Mounts: bind(dir, "/sys/fs/cgroup")}, wantErr: "under /proc or /sys"},
		{name: "duplicate destination", s: Sandbox{Mounts: append(bind(dir, "/data"), bind(file, "/data/")...)}, wantErr: `two mounts at "/data"`},
		{name: "missing source", s: Sandbox{Mounts: bind(missing, "/data")}, wantErr: fmt.Sprintf("bind mount source %q does not exist: create it or fix the path", missing)},
		{name: "relative source", s: Sandbox{Mounts: bind("./x", "/data")}, wantErr: "is not an absolute path"},
		{name: "empty source", s: Sandbox{Mounts: bind("", "/data")}, wantErr: "bind mount source is empty"},
		{name: "unknown type", s: Sandbox{Mounts: []Mount{{Type: "volume", Source: dir, Destination: "/d"}}}, wantErr: `unknown type "volume"`},
		{name: "tmpfs with source", s: Sandbox{Mounts: []Mount{{Type: "tmpfs", Source: dir, Destination: "/d"}}}, wantErr: "takes no source"},
		{name: "host root", s: Sandbox{Mounts: bind("/", "/host")}, wantErr: "--allow-unsafe-mounts"},
		{name: "host root via symlink", s: Sandbox{Mounts: bind(toRoot, "/host")}, wantErr: "host's root"},
		{name: "host root allowed", s: Sandbox{Mounts: bind("/", "/host"), AllowUnsafeMounts: true}},
		{name: "parent of containerd state", s: Sandbox{Mounts: bind("/var", "/v")}, wantErr: `refusing to bind-mount "/var": it exposes "/var/`},
		{name: "parent of sockets via symlink", s: Sandbox{Mounts: bind(toRun, "/r")}, wantErr: "--allow-unsafe-mounts"},
		{name: "var run symlink", s: Sandbox{Mounts: bind("/var/run", "/r")}, wantErr: "--allow-unsafe-mounts"},
		{name: "unsafe allowed", s: Sandbox{Mounts: bind("/var", "/v"), AllowUnsafeMounts: true}},
		{name: "missing hosts file", s: Sandbox{HostsFile: missing}, wantErr: "hosts file"},
		{name: "relative resolv.conf", s: Sandbox{ResolvConf: "resolv.conf"}, wantErr: `resolv.conf "resolv.conf" is not an absolute path`},
		{name: "relative workdir", s: Sandbox{Workdir: "work"}, wantErr: `workdir "work" is not an absolute path`},
		{name: "workdir /proc", s: Sandbox{Workdir: "/proc"}, wantErr: "under /proc"},
		{name: "workdir under /proc", s: Sandbox{Workdir: "/proc/self/cwd"}, wantErr: "under /proc"},
		{name: "workdir /procfoo", s: Sandbox{Workdir: "/procfoo"}},
		{name: "user name", s: Sandbox{User: "dev:staff"}},
		{name: "user uid", s: Sandbox{User: "1000"}},
		{name: "user empty gid", s: Sandbox{User: "1000:"}, wantErr: "use uid[:gid] or name[:group]"},
		{name: "user three parts", s: Sandbox{User: "a:b:c"}, wantErr: "use uid[:gid]"},
		{name: "user uid too big", s: Sandbox{User: fmt.Sprint(int64(math.MaxInt32) + 1)}, wantErr: "ids are numbers"},
		{name: "env without =", s: Sandbox{Env: []string{"A"}}, wantErr: `invalid environment variable "A"`},
		{name: "env empty key", s: Sandbox{Env: []string{"=x"}}, wantErr: "invalid environment variable"},
		{name: "hostname too long", s: Sandbox{Hostname: strings.Repeat("h", 65)}, wantErr: "invalid hostname"},
		{name: "hostname with space", s: Sandbox{Hostname: "a b"}, wantErr: "invalid hostname"},
		{name: "memory minimum", s: Sandbox{Memory: 6 << 20}},
		{name: "memory too small", s: Sandbox{Memory: 4 << 20}, wantErr: "below the minimum of 6MiB"},
		{name: "memory negative", s: Sandbox{Memory: -1}, wantErr: "invalid memory limit"},
		{name: "swap unlimited", s: Sandbox{Memory: 64 << 20, MemorySwap: -1}},
		{name: "swap equal to memory", s: Sandbox{Memory: 64 << 20, MemorySwap: 64 << 20}},
		{name: "swap below memory", s: Sandbox{Memory: 64 << 20, MemorySwap: 32 << 20}, wantErr: "memory-swap 32MiB is below the memory limit 64MiB"},
		{name: "protected path (the daemon socket in use)", s: Sandbox{Mounts: []Mount{{Source: os.TempDir(), Destination: "/x"}}, ProtectedPaths: []string{protectedSock}}, wantErr: "--allow-unsafe-mounts"},
		{name: "host /proc", s: Sandbox{Mounts: []Mount{{Source: "/proc", Destination: "/hp"}}}, wantErr: "exposes the host's /proc"},
		{name: "under host /proc", s: Sandbox{Mounts: []Mount{{Source: "/proc/sys", Destination: "/hp"}}}, wantErr: "exposes the host's /proc"},
		{name: "host /dev", s: Sandbox{Mounts: []Mount{{Source: "/dev", Destination: "/hd"}}}, wantErr: "--device"},
		{name: "host /sys with the override", s: Sandbox{Mounts: []Mount{{Source: "/sys", Destination: "/hs"}}, AllowUnsafeMounts: true}},
		{name: "swap limit the host cannot enforce", s: Sandbox{Memory: 64 << 20, MemorySwap: 128 << 20, NoSwapLimit: true}, wantErr: "cannot limit swap"},
		{name: "swap without memory", s: Sandbox{MemorySwap: 1 << 30}, wantErr: "without a memory limit"},
		{name: "swap below -1", s: Sandbox{Memory: 64 << 20, MemorySwap: -2}, wantErr: "invalid memory-swap"},
		{name: "cpus max", s: Sandbox{CPUs: float64(n)}},
		{name: "cpus min", s: Sandbox{CPUs: 0.01}},
		{name: "cpus too many", s: Sandbox{CPUs: float64(n) + 0.5}, wantErr: fmt.Sprintf("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)},
		{name: "cpus too few", s: Sandbox{CPUs: 0.001}, wantErr: "range of CPUs"},
		{name: "cpus negative", s: Sandbox{CPUs: -1}, wantErr: "range of CPUs"},
		{name: "cpus NaN", s: Sandbox{CPUs: math.NaN()}, wantErr: "range of CPUs"},
		{name: "pids unlimited", s: Sandbox{PidsLimit: -1}},
		{name: "pids below -1", s: Sandbox{PidsLimit: -2}, wantErr: "invalid pids-limit"},
		{name: "shm negative", s: Sandbox{ShmSize: -1}, wantErr: "invalid shm-size"},
		{name: "network host", s: Sandbox{Network: "host"}},
		{name: "network bridge", s: Sandbox{Network: "bridge"}, wantErr: `network "bridge" needs the absolute path of its network namespace`},
		{name: "unknown cap", s: Sandbox{CapAdd: []string{"SYS_WIZARD"}}, wantErr: `unknown capability "SYS_WIZARD"`},
		{name: "unknown cap drop", s: Sandbox{CapDrop: []string{""}}, wantErr: "unknown capability"},
		{name: "seccomp unconfined", s: Sandbox{Seccomp: "unconfined"}},
		{name: "seccomp missing", s: Sandbox{Seccomp: missing}, wantErr: "seccomp profile"},
		{name: "seccomp directory", s: Sandbox{Seccomp: dir}, wantErr: "seccomp profile"},
		{name: "apparmor unconfined", s: Sandbox{AppArmor: "unconfined"}},
		{name: "first problem wins", s: Sandbox{Mounts: bind(dir, "rel"), Network: "bridge"}, wantErr: "mount destination"},
	}
	if apparmor.HostSupports() {
		tests = append(tests, struct {
			name    string
			s       Sandbox
			wantErr string
		}{name: "apparmor named", s: Sandbox{AppArmor: "my-profile"}})
	} else {
		tests = append(tests, struct {
			name    string
			s       Sandbox
			wantErr string
		}{name: "apparmor named without apparmor", s: Sandbox{AppArmor: "my-profile"}, wantErr: "this host has no AppArmor"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v is not errdefs.ErrInvalidArgument", err)
			}
		})
	}
}

func TestNormalizeCap(t *testing.T) {
	tests := map[string]string{
		"sys_admin":     "CAP_SYS_ADMIN",
		"CAP_SYS_ADMIN": "CAP_SYS_ADMIN",
		"cap_net_raw":   "CAP_NET_RAW",
		" Net_Admin ":   "CAP_NET_ADMIN",
		"all":           "ALL",
		"ALL":           "ALL",
	}
	for in, want := range tests {
		got, err := NormalizeCap(in)
		if err != nil || got != want {
			t.Errorf("NormalizeCap(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeCap("CAP_ALL"); err == nil {
		t.Error("NormalizeCap(CAP_ALL) succeeded, want an error")
	}
}

// protectedSock stands for the socket of a containerd outside the built-in
// list (a private or rootless one); it need not exist.
var protectedSock = filepath.Join(os.TempDir(), "sbxrun-validate-test", "containerd.sock")
