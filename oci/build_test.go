package oci

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultCaps are containerd's 14 default capabilities, in its order.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// generate composes Build's options the way containerd.WithNewSpec does, with
// a nil client; pre runs first (e.g. to point the root at a fake image).
func generate(t *testing.T, s *Sandbox, img ocispec.ImageConfig, pre ...oci.SpecOpts) *specs.Spec {
	t.Helper()
	opts, err := Build(s, img)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	spec, err := oci.GenerateSpec(namespaces.WithNamespace(context.Background(), "test"), nil, &containers.Container{ID: "t1"}, append(pre, opts...)...)
	if err != nil {
		t.Fatalf("GenerateSpec: %v", err)
	}
	return spec
}

// env turns a process environment into a map, failing on duplicate keys.
func env(t *testing.T, kvs []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[k]; dup {
			t.Fatalf("duplicate env key %q in %q", k, kvs)
		}
		m[k] = v
	}
	return m
}

func TestBuildProcess(t *testing.T) {
	img := ocispec.ImageConfig{
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"serve", "--port=1"},
		Env:        []string{"PATH=/image/bin", "FROM_IMAGE=1", "SHARED=image"},
		WorkingDir: "/srv",
	}
	tests := []struct {
		name     string
		s        Sandbox
		img      ocispec.ImageConfig
		wantArgs []string
		wantEnv  map[string]string // keys that must have these values
		noEnv    []string          // keys that must be absent
		wantCwd  string
		wantUID  uint32
		wantGID  uint32
		wantTerm bool
	}{
		{
			name: "image defaults", s: Sandbox{ID: "t1"}, img: img,
			wantArgs: []string{"/entry", "serve", "--port=1"},
			wantEnv:  map[string]string{"PATH": "/image/bin", "FROM_IMAGE": "1", "SHARED": "image", "HOME": "/root", "HOSTNAME": "t1"},
			noEnv:    []string{"TERM"},
			wantCwd:  "/srv",
		},
		{
			name: "args replace cmd", s: Sandbox{Args: []string{"run", "x"}}, img: img,
			wantArgs: []string{"/entry", "run", "x"}, wantCwd: "/srv",
		},
		{
			name: "entrypoint drops image cmd", s: Sandbox{Entrypoint: []string{"/bin/sh", "-c"}, EntrypointSet: true}, img: img,
			wantArgs: []string{"/bin/sh", "-c"}, wantCwd: "/srv",
		},
		{
			name: "entrypoint and args", s: Sandbox{Entrypoint: []string{"/bin/sh"}, EntrypointSet: true, Args: []string{"-c", "true"}}, img: img,
			wantArgs: []string{"/bin/sh", "-c", "true"}, wantCwd: "/srv",
		},
		{
			name: "empty entrypoint clears it", s: Sandbox{EntrypointSet: true, Args: []string{"ls"}}, img: img,
			wantArgs: []string{"ls"}, wantCwd: "/srv",
		},
		{
			name:     "sandbox env wins and PATH defaults",
			s:        Sandbox{Env: []string{"SHARED=sandbox", "HOME=/home/x", "NEW=1", "NEW=2"}, Workdir: "/workspace/", Hostname: "box", Terminal: true},
			img:      ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"SHARED=image", "BROKEN"}},
			wantArgs: []string{"sh"},
			wantEnv:  map[string]string{"PATH": DefaultPath, "SHARED": "sandbox", "HOME": "/home/x", "NEW": "2", "HOSTNAME": "box", "TERM": "xterm"},
			noEnv:    []string{"BROKEN"},
			wantCwd:  "/workspace", wantTerm: true,
		},
		{
			name: "sandbox TERM wins", s: Sandbox{Terminal: true, Env: []string{"TERM=dumb"}}, img: ocispec.ImageConfig{Cmd: []string{"sh"}},
			wantArgs: []string{"sh"}, wantEnv: map[string]string{"TERM": "dumb"}, wantCwd: "/", wantTerm: true,
		},
		{
			name: "numeric image user", s: Sandbox{}, img: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "1001:1002"},
			wantArgs: []string{"sh"}, noEnv: []string{"HOME"}, wantCwd: "/", wantUID: 1001, wantGID: 1002,
		},
		{
			name: "sandbox user wins", s: Sandbox{User: "1000:1000"}, img: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "nobody"},
			wantArgs: []string{"sh"}, wantCwd: "/", wantUID: 1000, wantGID: 1000,
		},
		{
			name: "lone uid without a rootfs gets gid 0", s: Sandbox{User: "1000"}, img: ocispec.ImageConfig{Cmd: []string{"sh"}},
			wantArgs: []string{"sh"}, wantCwd: "/", wantUID: 1000, wantGID: 0,
		},
		{
			name: "explicit root", s: Sandbox{User: "0:0"}, img: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "1000"},
			wantArgs: []string{"sh"}, wantEnv: map[string]string{"HOME": "/root"}, wantCwd: "/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := generate(t, &tt.s, tt.img)
			p := spec.Process
			if !reflect.DeepEqual(p.Args, tt.wantArgs) {
				t.Errorf("args = %q, want %q", p.Args, tt.wantArgs)
			}
			got := env(t, p.Env)
			for k, v := range tt.wantEnv {
				if gv, ok := got[k]; !ok || gv != v {
					t.Errorf("env %s = %q (set %v), want %q; env %q", k, gv, ok, v, p.Env)
				}
			}
			if _, ok := got["PATH"]; !ok {
				t.Errorf("env has no PATH: %q", p.Env)
			}
			for _, k := range tt.noEnv {
				if _, ok := got[k]; ok {
					t.Errorf("env has %s, want it absent: %q", k, p.Env)
				}
			}
			if p.Cwd != tt.wantCwd {
				t.Errorf("cwd = %q, want %q", p.Cwd, tt.wantCwd)
			}
			if p.User.UID != tt.wantUID || p.User.GID != tt.wantGID {
				t.Errorf("user = %d:%d, want %d:%d", p.User.UID, p.User.GID, tt.wantUID, tt.wantGID)
			}
			if !slices.Contains(p.User.AdditionalGids, tt.wantGID) {
				t.Errorf("additional gids %v lack the primary gid %d", p.User.AdditionalGids, tt.wantGID)
			}
			if p.Terminal != tt.wantTerm {
				t.Errorf("terminal = %v, want %v", p.Terminal, tt.wantTerm)
			}
		})
	}
}

func TestBuildEnvOrder(t *testing.T) {
	spec := generate(t, &Sandbox{ID: "t1", Env: []string{"B=sandbox", "C=3"}}, ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=1", "B=image"}})
	want := []string{"PATH=" + DefaultPath, "HOSTNAME=t1", "A=1", "B=sandbox", "C=3", "HOME=/root"}
	if !reflect.DeepEqual(spec.Process.Env, want) {
		t.Errorf("env = %q, want %q", spec.Process.Env, want)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		s       Sandbox
		img     ocispec.ImageConfig
		wantErr string
	}{
		{name: "no command", s: Sandbox{}, img: ocispec.ImageConfig{}, wantErr: "no command: the image has no entrypoint or cmd; give one after --"},
		{name: "entrypoint cleared, no args", s: Sandbox{EntrypointSet: true}, img: ocispec.ImageConfig{Entrypoint: []string{"/e"}, Cmd: []string{"x"}}, wantErr: "no command"},
		{name: "invalid sandbox", s: Sandbox{Network: "bridge"}, img: ocispec.ImageConfig{Cmd: []string{"sh"}}, wantErr: "needs the absolute path of its network namespace"},
		{name: "relative image workdir", s: Sandbox{}, img: ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: "app"}, wantErr: "not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(&tt.s, tt.img)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Build() = %v, want an error containing %q", err, tt.wantErr)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v is not errdefs.ErrInvalidArgument", err)
			}
		})
	}
}

func TestBuildUserNameNeedsRootfs(t *testing.T) {
	opts, err := Build(&Sandbox{User: "dev"}, ocispec.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = oci.GenerateSpec(namespaces.WithNamespace(context.Background(), "test"), nil, &containers.Container{ID: "t1"}, opts...)
	if err == nil || !strings.Contains(err.Error(), "use a numeric uid[:gid]") {
		t.Fatalf("GenerateSpec() = %v, want the numeric-uid hint", err)
	}
}

// TestBuildUserFromImage resolves names through containerd's options against
// a root filesystem with its own /etc/passwd and /etc/group.
func TestBuildUserFromImage(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n",
		"etc/group":  "root:x:0:\nwheel:x:10:root\ndev:x:1000:\ndocker:x:998:dev\nvideo:x:44:dev\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user     string
		uid, gid uint32
		gids     []uint32
	}{
		{user: "dev", uid: 1000, gid: 1000, gids: []uint32{1000, 998, 44}},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 998, 44}},
		// An explicit group is the only group (Docker, runc): no
		// supplementary groups from /etc/group.
		{user: "dev:44", uid: 1000, gid: 44, gids: []uint32{44}},
		{user: "dev:dev", uid: 1000, gid: 1000, gids: []uint32{1000}},
		{user: "root:root", uid: 0, gid: 0, gids: []uint32{0}},
		{user: "0:0", uid: 0, gid: 0, gids: []uint32{0}},
		{user: "4242", uid: 4242, gid: 0, gids: []uint32{0}},
		{user: "", uid: 0, gid: 0, gids: []uint32{0, 10}},
		{user: "root", uid: 0, gid: 0, gids: []uint32{0, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			spec := generate(t, &Sandbox{User: tt.user}, ocispec.ImageConfig{Cmd: []string{"sh"}}, oci.WithRootFSPath(root))
			u := spec.Process.User
			if u.UID != tt.uid || u.GID != tt.gid {
				t.Errorf("user = %d:%d, want %d:%d", u.UID, u.GID, tt.uid, tt.gid)
			}
			got, want := slices.Sorted(slices.Values(u.AdditionalGids)), slices.Sorted(slices.Values(tt.gids))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("additional gids = %v, want %v", u.AdditionalGids, tt.gids)
			}
		})
	}
}

// mountAt returns the mounts at dst.
func mountAt(spec *specs.Spec, dst string) []specs.Mount {
	var out []specs.Mount
	for _, m := range spec.Mounts {
		if m.Destination == dst {
			out = append(out, m)
		}
	}
	return out
}

func TestBuildMounts(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Sandbox{
		Mounts: []Mount{
			{Type: "bind", Source: dir, Destination: "/workspace/models/", ReadOnly: true},
			{Source: dir, Destination: "/workspace"},
			{Type: "bind", Source: dir, Destination: "/shared", Options: []string{"rshared"}},
			{Type: "bind", Source: dir, Destination: "/suid", Options: []string{"suid", "dev"}},
			// A pinned source: runc mounts the descriptor, not the path.
			{Type: "bind", Source: dir, Destination: "/pinned", Handle: "/proc/1/fd/3"},
			{Type: "tmpfs", Destination: "/scratch", Options: []string{"size=1048576", "mode=1777"}},
			{Type: "tmpfs", Destination: "/run"},
		},
		HostsFile:  hosts,
		ResolvConf: hosts,
		ShmSize:    2 << 30,
	}
	spec := generate(t, s, ocispec.ImageConfig{Cmd: []string{"sh"}})

	want := map[string]specs.Mount{
		"/workspace/models": {Destination: "/workspace/models", Type: "bind", Source: dir, Options: []string{"rbind", "rprivate", "nosuid", "nodev", "ro"}},
		"/workspace":        {Destination: "/workspace", Type: "bind", Source: dir, Options: []string{"rbind", "rprivate", "nosuid", "nodev", "rw"}},
		"/shared":           {Destination: "/shared", Type: "bind", Source: dir, Options: []string{"rbind", "nosuid", "nodev", "rshared", "rw"}},
		"/suid":             {Destination: "/suid", Type: "bind", Source: dir, Options: []string{"rbind", "rprivate", "suid", "dev", "rw"}},
		"/pinned":           {Destination: "/pinned", Type: "bind", Source: "/proc/1/fd/3", Options: []string{"rbind", "rprivate", "nosuid", "nodev", "rw"}},
		"/scratch":          {Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "size=1048576", "mode=1777"}},
		"/run":              {Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec"}},
		"/etc/hosts":        {Destination: "/etc/hosts", Type: "bind", Source: hosts, Options: []string{"rbind", "rprivate", "nosuid", "nodev", "ro"}},
		"/etc/resolv.conf":  {Destination: "/etc/resolv.conf", Type: "bind", Source: hosts, Options: []string{"rbind", "rprivate", "nosuid", "nodev", "ro"}},
		"/dev/shm":          {Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=2147483648"}},
	}
	for dst, w := range want {
		got := mountAt(spec, dst)
		if len(got) != 1 {
			t.Errorf("%d mounts at %s, want 1 (the default replaced): %+v", len(got), dst, got)
			continue
		}
		if !reflect.DeepEqual(got[0], w) {
			t.Errorf("mount at %s = %+v, want %+v", dst, got[0], w)
		}
	}
	for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys"} {
		if len(mountAt(spec, dst)) != 1 {
			t.Errorf("default mount %s missing", dst)
		}
	}
	index := func(dst string) int {
		return slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == dst })
	}
	if index("/workspace") > index("/workspace/models") {
		t.Errorf("/workspace is mounted after /workspace/models, which it would hide: %+v", spec.Mounts)
	}
}

func TestBuildShm(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		s    Sandbox
		want []string
	}{
		{name: "default", s: Sandbox{}, want: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{name: "sized", s: Sandbox{ShmSize: 100 << 20}, want: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=104857600"}},
		{name: "replaced by a bind", s: Sandbox{ShmSize: 1 << 30, Mounts: []Mount{{Source: dir, Destination: "/dev/shm"}}}, want: []string{"rbind", "rprivate", "nosuid", "nodev", "rw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mountAt(generate(t, &tt.s, ocispec.ImageConfig{Cmd: []string{"sh"}}), "/dev/shm")
			if len(got) != 1 || !reflect.DeepEqual(got[0].Options, tt.want) {
				t.Errorf("/dev/shm = %+v, want one mount with options %q", got, tt.want)
			}
		})
	}
}

func TestBuildResources(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	tests := []struct {
		name      string
		s         Sandbox
		memory    *specs.LinuxMemory
		cpu       *specs.LinuxCPU
		pids      *specs.LinuxPids
		cgroups   string
		resources bool
	}{
		{name: "none", s: Sandbox{}, cgroups: "/test/t1", resources: true},
		{name: "memory, swap twice", s: Sandbox{Memory: 512 << 20}, memory: &specs.LinuxMemory{Limit: i64(512 << 20), Swap: i64(1 << 30)}, cgroups: "/test/t1", resources: true},
		{name: "memory and swap", s: Sandbox{Memory: 512 << 20, MemorySwap: 768 << 20}, memory: &specs.LinuxMemory{Limit: i64(512 << 20), Swap: i64(768 << 20)}, cgroups: "/test/t1", resources: true},
		{name: "unlimited swap", s: Sandbox{Memory: 512 << 20, MemorySwap: -1}, memory: &specs.LinuxMemory{Limit: i64(512 << 20), Swap: i64(-1)}, cgroups: "/test/t1", resources: true},
		{name: "no swap limit on this host", s: Sandbox{Memory: 512 << 20, NoSwapLimit: true}, memory: &specs.LinuxMemory{Limit: i64(512 << 20)}, cgroups: "/test/t1", resources: true},
		{name: "cpus", s: Sandbox{CPUs: 1.5}, cpu: &specs.LinuxCPU{Quota: i64(150000), Period: u64(100000)}, cgroups: "/test/t1", resources: true},
		{name: "tiny cpus", s: Sandbox{CPUs: 0.01}, cpu: &specs.LinuxCPU{Quota: i64(1000), Period: u64(100000)}, cgroups: "/test/t1", resources: true},
		{name: "pids", s: Sandbox{PidsLimit: 100}, pids: &specs.LinuxPids{Limit: i64(100)}, cgroups: "/test/t1", resources: true},
		{name: "pids unlimited", s: Sandbox{PidsLimit: -1}, cgroups: "/test/t1", resources: true},
		{name: "no cgroups", s: Sandbox{Memory: 512 << 20, CPUs: 1, PidsLimit: 10, NoCgroups: true}},
		{name: "no cgroups privileged", s: Sandbox{Privileged: true, NoCgroups: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := generate(t, &tt.s, ocispec.ImageConfig{Cmd: []string{"sh"}})
			if spec.Linux.CgroupsPath != tt.cgroups {
				t.Errorf("cgroupsPath = %q, want %q", spec.Linux.CgroupsPath, tt.cgroups)
			}
			r := spec.Linux.Resources
			if !tt.resources {
				if r != nil {
					t.Fatalf("linux.resources = %+v, want nil", r)
				}
				return
			}
			if r == nil {
				t.Fatal("linux.resources is nil")
			}
			if !reflect.DeepEqual(r.Memory, tt.memory) {
				t.Errorf("memory = %s, want %s", show(r.Memory), show(tt.memory))
			}
			if !reflect.DeepEqual(r.CPU, tt.cpu) {
				t.Errorf("cpu = %s, want %s", show(r.CPU), show(tt.cpu))
			}
			if !reflect.DeepEqual(r.Pids, tt.pids) {
				t.Errorf("pids = %s, want %s", show(r.Pids), show(tt.pids))
			}
			if len(r.Devices) == 0 || r.Devices[0].Allow {
				t.Errorf("device cgroup = %+v, want containerd's deny-all first", r.Devices)
			}
		})
	}
}

// show prints a resource section with its pointers followed.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestBuildPrivilegedKeepsNetRaw: a privileged sandbox on the host's
// network keeps NET_RAW (it asked for everything).
func TestBuildPrivilegedKeepsNetRaw(t *testing.T) {
	c := generate(t, &Sandbox{Privileged: true}, ocispec.ImageConfig{Cmd: []string{"sh"}}).Process.Capabilities
	if !slices.Contains(c.Bounding, "CAP_NET_RAW") || !slices.Contains(c.Effective, "CAP_NET_RAW") {
		t.Errorf("privileged capabilities %q lack CAP_NET_RAW", c.Effective)
	}
}

func TestBuildCapabilities(t *testing.T) {
	without := func(caps []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return slices.Contains(drop, c) })
	}
	tests := []struct {
		name string
		s    Sandbox
		want []string
	}{
		{name: "default 14", s: Sandbox{Network: "none"}, want: defaultCaps},
		{name: "host network: no NET_RAW", s: Sandbox{}, want: without(defaultCaps, "CAP_NET_RAW")},
		{name: "host network: NET_RAW when asked", s: Sandbox{Network: "host", CapAdd: []string{" net_raw"}}, want: defaultCaps},
		{name: "add", s: Sandbox{Network: "none", CapAdd: []string{"sys_ptrace", "CAP_NET_ADMIN", "chown"}}, want: append(slices.Clone(defaultCaps), "CAP_SYS_PTRACE", "CAP_NET_ADMIN")},
		{name: "drop", s: Sandbox{Network: "none", CapDrop: []string{"net_raw", "Cap_Mknod"}}, want: without(defaultCaps, "CAP_NET_RAW", "CAP_MKNOD")},
		{name: "drop then add back", s: Sandbox{CapAdd: []string{"NET_RAW"}, CapDrop: []string{"NET_RAW"}}, want: append(without(defaultCaps, "CAP_NET_RAW"), "CAP_NET_RAW")},
		{name: "drop all, add one", s: Sandbox{CapDrop: []string{"all"}, CapAdd: []string{"chown"}}, want: []string{"CAP_CHOWN"}},
		{name: "drop all", s: Sandbox{CapDrop: []string{"ALL"}}, want: nil},
		{name: "add all less one", s: Sandbox{CapAdd: []string{"ALL"}, CapDrop: []string{"sys_admin"}}, want: without(cap.Known(), "CAP_SYS_ADMIN")},
		{name: "add all wins over drop all", s: Sandbox{CapAdd: []string{"all"}, CapDrop: []string{"all"}}, want: cap.Known()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := generate(t, &tt.s, ocispec.ImageConfig{Cmd: []string{"sh"}}).Process.Capabilities
			for set, got := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
					t.Errorf("%s = %q, want %q", set, got, tt.want)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable %q, ambient %q: want none", c.Inheritable, c.Ambient)
			}
		})
	}
}

// seccompAllows reports whether the profile allows the syscall by name.
func seccompAllows(sc *specs.LinuxSeccomp, name string) bool {
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, name) && len(r.Args) == 0 {
			return true
		}
	}
	return false
}

func TestBuildSecurity(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "seccomp.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		s           Sandbox
		nnp         bool
		seccomp     specs.LinuxSeccompAction // "" means no seccomp
		privileged  bool
		readonly    bool
		hostNetwork bool
	}{
		{name: "defaults", s: Sandbox{NoNewPrivileges: true}, nnp: true, seccomp: specs.ActErrno, hostNetwork: true},
		{name: "new privileges allowed", s: Sandbox{}, seccomp: specs.ActErrno, hostNetwork: true},
		{name: "network none", s: Sandbox{Network: "none", NoNewPrivileges: true}, nnp: true, seccomp: specs.ActErrno},
		{name: "network host", s: Sandbox{Network: "host"}, seccomp: specs.ActErrno, hostNetwork: true},
		{name: "seccomp unconfined", s: Sandbox{Seccomp: "unconfined", NoNewPrivileges: true}, nnp: true, hostNetwork: true},
		{name: "seccomp file", s: Sandbox{Seccomp: profile}, seccomp: specs.ActLog, hostNetwork: true},
		{name: "read-only root", s: Sandbox{ReadOnly: true}, seccomp: specs.ActErrno, readonly: true, hostNetwork: true},
		{name: "privileged", s: Sandbox{Privileged: true, CapAdd: []string{"SYS_ADMIN"}, NoNewPrivileges: true}, nnp: true, privileged: true, hostNetwork: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := generate(t, &tt.s, ocispec.ImageConfig{Cmd: []string{"sh"}})
			if spec.Process.NoNewPrivileges != tt.nnp {
				t.Errorf("noNewPrivileges = %v, want %v", spec.Process.NoNewPrivileges, tt.nnp)
			}
			switch sc := spec.Linux.Seccomp; {
			case tt.seccomp == "" && sc != nil:
				t.Errorf("seccomp = %s, want none", sc.DefaultAction)
			case tt.seccomp != "" && (sc == nil || sc.DefaultAction != tt.seccomp):
				t.Errorf("seccomp = %+v, want default action %s", sc, tt.seccomp)
			}
			if spec.Root.Readonly != tt.readonly {
				t.Errorf("root.readonly = %v, want %v", spec.Root.Readonly, tt.readonly)
			}
			hasNetNS := slices.ContainsFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
			if hasNetNS == tt.hostNetwork {
				t.Errorf("network namespace present = %v, want %v", hasNetNS, !tt.hostNetwork)
			}
			for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace} {
				if !slices.ContainsFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == ns }) {
					t.Errorf("namespace %s missing", ns)
				}
			}
			if tt.privileged {
				current, err := cap.Current()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(spec.Process.Capabilities.Bounding, current) {
					t.Errorf("privileged bounding caps = %q, want the caller's %q", spec.Process.Capabilities.Bounding, current)
				}
				if len(spec.Linux.MaskedPaths) != 0 || len(spec.Linux.ReadonlyPaths) != 0 {
					t.Errorf("privileged masked %q, read-only %q: want none", spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
				}
				if d := spec.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" {
					t.Errorf("privileged device cgroup = %+v, want allow all", d)
				}
				if len(spec.Linux.Devices) == 0 {
					t.Error("privileged sandbox has no host devices")
				}
				if spec.Process.ApparmorProfile != "" {
					t.Errorf("privileged apparmor = %q, want none", spec.Process.ApparmorProfile)
				}
			} else {
				if len(spec.Linux.MaskedPaths) == 0 || len(spec.Linux.ReadonlyPaths) == 0 {
					t.Error("masked or read-only paths of the default spec are gone")
				}
				if len(spec.Linux.Devices) != 0 {
					t.Errorf("devices = %+v, want none beyond runc's defaults", spec.Linux.Devices)
				}
			}
		})
	}
}

// TestBuildSeccompAfterCapabilities shows seccomp sees the final
// capabilities: the default profile allows fsopen only with CAP_SYS_ADMIN.
func TestBuildSeccompAfterCapabilities(t *testing.T) {
	for _, tt := range []struct {
		add  []string
		want bool
	}{{add: nil, want: false}, {add: []string{"sys_admin"}, want: true}} {
		spec := generate(t, &Sandbox{CapAdd: tt.add}, ocispec.ImageConfig{Cmd: []string{"sh"}})
		if got := seccompAllows(spec.Linux.Seccomp, "fsopen"); got != tt.want {
			t.Errorf("cap-add %q: seccomp allows fsopen = %v, want %v", tt.add, got, tt.want)
		}
	}
}

func TestBuildAppArmor(t *testing.T) {
	if apparmor.HostSupports() {
		t.Log("host has AppArmor: checking named profiles only (the default would be loaded into the kernel)")
		spec := generate(t, &Sandbox{AppArmor: "my-profile"}, ocispec.ImageConfig{Cmd: []string{"sh"}})
		if spec.Process.ApparmorProfile != "my-profile" {
			t.Errorf("apparmor = %q, want my-profile", spec.Process.ApparmorProfile)
		}
		return
	}
	for _, s := range []Sandbox{{}, {AppArmor: "unconfined"}, {Privileged: true, AppArmor: "x"}} {
		spec := generate(t, &s, ocispec.ImageConfig{Cmd: []string{"sh"}})
		if spec.Process.ApparmorProfile != "" {
			t.Errorf("%+v: apparmor = %q on a host without AppArmor, want none", s, spec.Process.ApparmorProfile)
		}
	}
}

func TestBuildHostnameAndAnnotations(t *testing.T) {
	tests := []struct {
		s    Sandbox
		want string
	}{
		{s: Sandbox{ID: "t1"}, want: "t1"},
		{s: Sandbox{ID: "t1", Hostname: "box"}, want: "box"},
		{s: Sandbox{}, want: ""},
	}
	for _, tt := range tests {
		spec := generate(t, &tt.s, ocispec.ImageConfig{Cmd: []string{"sh"}})
		if spec.Hostname != tt.want {
			t.Errorf("%+v: hostname = %q, want %q", tt.s, spec.Hostname, tt.want)
		}
	}
	spec := generate(t, &Sandbox{Annotations: map[string]string{"org.sbxrun.profile": "base"}}, ocispec.ImageConfig{Cmd: []string{"sh"}})
	if spec.Annotations["org.sbxrun.profile"] != "base" {
		t.Errorf("annotations = %v, want org.sbxrun.profile=base", spec.Annotations)
	}
}

func TestBuildCgroupMountAndNamespace(t *testing.T) {
	tests := []struct {
		name     string
		s        Sandbox
		mount    []string // nil means no /sys/fs/cgroup mount
		cgroupNS bool
	}{
		{name: "default", s: Sandbox{}, mount: []string{"ro", "nosuid", "noexec", "nodev"}},
		{name: "private cgroup namespace", s: Sandbox{CgroupNamespace: true}, mount: []string{"ro", "nosuid", "noexec", "nodev"}, cgroupNS: true},
		{name: "privileged is writable", s: Sandbox{Privileged: true}, mount: []string{"rw", "nosuid", "noexec", "nodev"}},
		{name: "no cgroups", s: Sandbox{NoCgroups: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := generate(t, &tt.s, ocispec.ImageConfig{Cmd: []string{"sh"}})
			got := mountAt(spec, "/sys/fs/cgroup")
			switch {
			case tt.mount == nil && len(got) != 0:
				t.Errorf("/sys/fs/cgroup mounted: %+v, want no mount", got)
			case tt.mount != nil && (len(got) != 1 || got[0].Type != "cgroup" || !reflect.DeepEqual(got[0].Options, tt.mount)):
				t.Errorf("/sys/fs/cgroup = %+v, want one cgroup mount with options %q", got, tt.mount)
			}
			if tt.mount != nil && slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys" }) >
				slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys/fs/cgroup" }) {
				t.Error("/sys/fs/cgroup is mounted before /sys")
			}
			hasNS := slices.ContainsFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace })
			if hasNS != tt.cgroupNS {
				t.Errorf("cgroup namespace = %v, want %v", hasNS, tt.cgroupNS)
			}
		})
	}
}

func TestBuildCgroupsPath(t *testing.T) {
	spec := generate(t, &Sandbox{Memory: 64 << 20, CgroupsPath: "/user.slice/user-1000.slice/user@1000.service/sbxrun/t1"}, ocispec.ImageConfig{Cmd: []string{"sh"}})
	if got := spec.Linux.CgroupsPath; got != "/user.slice/user-1000.slice/user@1000.service/sbxrun/t1" {
		t.Errorf("cgroupsPath = %q", got)
	}
	if spec.Linux.Resources == nil || spec.Linux.Resources.Memory == nil || *spec.Linux.Resources.Memory.Limit != 64<<20 {
		t.Errorf("memory limit lost with a cgroups path: %+v", spec.Linux.Resources)
	}
}

func TestBuildBindSys(t *testing.T) {
	spec := generate(t, &Sandbox{BindSys: true}, ocispec.ImageConfig{Cmd: []string{"sh"}})
	found := false
	for _, m := range spec.Mounts {
		if m.Destination == "/sys" {
			found = true
			if m.Type != "bind" || m.Source != "/sys" || !slices.Contains(m.Options, "rbind") || !slices.Contains(m.Options, "ro") {
				t.Errorf("/sys mount = %+v, want a read-only rbind of the host's /sys", m)
			}
		}
	}
	if !found {
		t.Error("no /sys mount")
	}
}
