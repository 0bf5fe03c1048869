package oci

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
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
		wantEnv  map[string]string // keys that must have these values; "" value with absent=true below
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
			name: "sandbox env wins and PATH defaults",
			s:    Sandbox{Env: []string{"SHARED=sandbox", "HOME=/home/x", "NEW=1", "NEW=2"}, Workdir: "/workspace/", Hostname: "box", Terminal: true},
			img:  ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"SHARED=image", "BROKEN"}},
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
		{name: "invalid sandbox", s: Sandbox{Network: "bridge"}, img: ocispec.ImageConfig{Cmd: []string{"sh"}}, wantErr: "use host or none"},
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
		"etc/group":  "root:x:0:\ndev:x:1000:\ndocker:x:998:dev\nvideo:x:44:dev\n",
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
		{user: "dev:44", uid: 1000, gid: 44, gids: []uint32{44, 998}},
		{user: "4242", uid: 4242, gid: 0, gids: []uint32{0}},
		{user: "", uid: 0, gid: 0, gids: []uint32{0}},
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
			{Type: "tmpfs", Destination: "/scratch", Options: []string{"size=1048576", "mode=1777"}},
			{Type: "tmpfs", Destination: "/run"},
		},
		HostsFile:  hosts,
		ResolvConf: hosts,
		ShmSize:    2 << 30,
	}
	spec := generate(t, s, ocispec.ImageConfig{Cmd: []string{"sh"}})

	want := map[string]specs.Mount{
		"/workspace/models": {Destination: "/workspace/models", Type: "bind", Source: dir, Options: []string{"rbind", "rprivate", "ro"}},
		"/workspace":        {Destination: "/workspace", Type: "bind", Source: dir, Options: []string{"rbind", "rprivate", "rw"}},
		"/shared":           {Destination: "/shared", Type: "bind", Source: dir, Options: []string{"rbind", "rshared", "rw"}},
		"/scratch":          {Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "size=1048576", "mode=1777"}},
		"/run":              {Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec"}},
		"/etc/hosts":        {Destination: "/etc/hosts", Type: "bind", Source: hosts, Options: []string{"rbind", "rprivate", "ro"}},
		"/etc/resolv.conf":  {Destination: "/etc/resolv.conf", Type: "bind", Source: hosts, Options: []string{"rbind", "rprivate", "ro"}},
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
		{name: "replaced by a bind", s: Sandbox{ShmSize: 1 << 30, Mounts: []Mount{{Source: dir, Destination: "/dev/shm"}}}, want: []string{"rbind", "rprivate", "rw"}},
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
		{name: "no swap limit on this host", s: Sandbox{Memory: 512 << 20, MemorySwap: 1 << 30, NoSwapLimit: true}, memory: &specs.LinuxMemory{Limit: i64(512 << 20)}, cgroups: "/test/t1", resources: true},
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
	switch x := v.(type) {
	case *specs.LinuxMemory:
		if x == nil {
			return "nil"
		}
		return strings.Join([]string{"limit=" + deref(x.Limit), "swap=" + deref(x.Swap)}, " ")
	case *specs.LinuxCPU:
		if x == nil {
			return "nil"
		}
		p := "nil"
		if x.Period != nil {
			p = strings.TrimSpace(strings.Repeat(" ", 0) + itoa(int64(*x.Period)))
		}
		return "quota=" + deref(x.Quota) + " period=" + p
	case *specs.LinuxPids:
		if x == nil {
			return "nil"
		}
		return "limit=" + deref(x.Limit)
	}
	return "?"
}

func deref(p *int64) string {
	if p == nil {
		return "nil"
	}
	return itoa(*p)
}

func itoa(v int64) string {
	return strings.TrimSpace(strings.ReplaceAll(string(rune(0)), "\x00", "")) + func() string {
		return fmtInt(v)
	}()
}
