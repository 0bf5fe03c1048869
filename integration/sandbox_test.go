package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBindMounts checks the current directory at /workspace, -v and --mount
// binds read-write and read-only, and tmpfs mounts.
func TestBindMounts(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)

	t.Run("workspace", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("from the host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := sandboxWith(t, opts{dir: dir}, nameFor(t), "base", "--",
			"sh", "-c", "cat hello.txt && echo from the sandbox > /workspace/out.txt && pwd")
		expect(t, "cat and write in /workspace", code, 0, stdout, stderr)
		if stdout != "from the host\n/workspace\n" {
			t.Errorf("stdout %q, want the host file and /workspace", stdout)
		}
		assertFile(t, filepath.Join(dir, "out.txt"), "from the sandbox\n")
	})

	tests := []struct {
		name string
		// flag builds the mount flags from the host directory.
		flag     func(src string) []string
		writable bool
	}{
		{"v-rw", func(src string) []string { return []string{"-v", src + ":/data"} }, true},
		{"v-rw-explicit", func(src string) []string { return []string{"-v", src + ":/data:rw"} }, true},
		{"v-ro", func(src string) []string { return []string{"-v", src + ":/data:ro"} }, false},
		{"volume-long-flag", func(src string) []string { return []string{"--volume", src + ":/data:ro"} }, false},
		{"mount-rw", func(src string) []string { return []string{"--mount", "type=bind,source=" + src + ",target=/data"} }, true},
		{"mount-ro", func(src string) []string { return []string{"--mount", "type=bind,src=" + src + ",dst=/data,readonly"} }, false},
		{"nested-under-workspace", func(src string) []string { return []string{"-v", src + ":/workspace/sub/data"} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "in.txt"), []byte("input\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := "/data"
			for _, a := range tt.flag(src) {
				if strings.Contains(a, "/workspace/sub/data") {
					dst = "/workspace/sub/data"
				}
			}
			args := append(tt.flag(src), "base", "--", "sh", "-c",
				fmt.Sprintf("cat %[1]s/in.txt && echo written > %[1]s/out.txt", dst))
			stdout, stderr, code := sandbox(t, nameFor(t), args...)
			if !strings.HasPrefix(stdout, "input\n") {
				t.Errorf("reading the bind mount: stdout %q, want %q first", stdout, "input\n")
			}
			if tt.writable {
				expect(t, "write to a read-write bind mount", code, 0, stdout, stderr)
				assertFile(t, filepath.Join(src, "out.txt"), "written\n")
				return
			}
			if code == 0 {
				t.Errorf("write to a read-only bind mount succeeded; stderr %q", stderr)
			}
			if !strings.Contains(stderr, "Read-only file system") {
				t.Errorf("stderr %q does not say the file system is read-only", stderr)
			}
			if _, err := os.Stat(filepath.Join(src, "out.txt")); !os.IsNotExist(err) {
				t.Errorf("the sandbox wrote through a read-only mount (stat: %v)", err)
			}
		})
	}

	t.Run("tmpfs", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := sandbox(t, nameFor(t), "--mount", "type=tmpfs,target=/scratch", "base", "--",
			"sh", "-c", "grep ' /scratch ' /proc/mounts && echo x > /scratch/f && cat /scratch/f")
		expect(t, "--mount type=tmpfs", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "tmpfs /scratch tmpfs") || !strings.HasSuffix(stdout, "x\n") {
			t.Errorf("stdout %q, want a writable tmpfs at /scratch", stdout)
		}
	})

	t.Run("shm-size", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := sandbox(t, nameFor(t), "--shm-size", "128m", "base", "--", "grep", " /dev/shm ", "/proc/mounts")
		expect(t, "--shm-size 128m", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "size=131072k") {
			t.Errorf("/dev/shm mount %q, want size=131072k", stdout)
		}
	})
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("the file written in the sandbox is not on the host: %v", err)
		return
	}
	if string(b) != want {
		t.Errorf("%s holds %q, want %q", path, b, want)
	}
}

// envOf runs env in the sandbox and returns it as a map.
func envOf(t *testing.T, o opts, args ...string) map[string]string {
	t.Helper()
	args = append(args, "--", "env")
	stdout, stderr, code := sandboxWith(t, o, nameFor(t), args...)
	expect(t, strings.Join(args, " "), code, 0, stdout, stderr)
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestEnv checks environment precedence: image < profile < project config <
// --env-file < -e.
func TestEnv(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	envFile := filepath.Join(t.TempDir(), "test.env")
	if err := os.WriteFile(envFile, []byte("# a comment\n\nFROM_FILE=file\nOVERRIDE=file\nHOST_VAR\nSPACED=a b c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	project := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, "sbxrun.yaml"), []byte("profiles:\n  base:\n    env:\n      FROM_PROJECT: project\n      NODE_ENV: project\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    opts
		args []string
		want map[string]string
		// absent must not be set.
		absent []string
	}{
		{
			name: "image-and-profile",
			args: []string{"base"},
			want: map[string]string{
				"SBXRUN_TEST_IMAGE": "yes",
				"PYTHONPATH":        "/workspace",
				"NODE_ENV":          "development",
				"PATH":              "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			},
		},
		{
			name: "flags",
			o:    opts{env: []string{"HOST_VAR=from-host", "HOST_VAR2=from-host-2"}},
			args: []string{"-e", "NODE_ENV=from-flag", "-e", "NEW=new", "-e", "HOST_VAR2", "-e", "OVERRIDE=flag", "--env-file", envFile, "base"},
			want: map[string]string{
				"SBXRUN_TEST_IMAGE": "yes",
				"PYTHONPATH":        "/workspace",
				"NODE_ENV":          "from-flag",
				"NEW":               "new",
				"HOST_VAR2":         "from-host-2",
				"FROM_FILE":         "file",
				"OVERRIDE":          "flag",
				"HOST_VAR":          "from-host",
				"SPACED":            "a b c",
			},
		},
		{
			// docker accepts -e and --env mixed on one command line.
			name: "mixed-short-long",
			args: []string{"-e", "A=1", "--env", "B=2", "base"},
			want: map[string]string{"A": "1", "B": "2"},
		},
		{
			name: "flags-after-profile",
			args: []string{"base", "-e", "PYTHONPATH=/flag"},
			want: map[string]string{"PYTHONPATH": "/flag", "NODE_ENV": "development"},
		},
		{
			name: "unset-host-var",
			o:    opts{env: []string{"HOST_VAR2="}},
			args: []string{"-e", "NOT_ON_HOST_SBXRUN", "base"},
			want: map[string]string{"SBXRUN_TEST_IMAGE": "yes"},
			// Docker drops -e KEY when KEY is not set on the host.
			absent: []string{"NOT_ON_HOST_SBXRUN"},
		},
		{
			name: "project-config",
			o:    opts{dir: project},
			args: []string{"base"},
			want: map[string]string{"FROM_PROJECT": "project", "NODE_ENV": "project", "PYTHONPATH": "/workspace"},
		},
		{
			name: "project-config-under-flags",
			o:    opts{dir: project},
			args: []string{"base", "-e", "NODE_ENV=flag"},
			want: map[string]string{"FROM_PROJECT": "project", "NODE_ENV": "flag"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := envOf(t, tt.o, tt.args...)
			for k, v := range tt.want {
				if got, ok := env[k]; !ok || got != v {
					t.Errorf("%s=%q (set: %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := env[k]; ok {
					t.Errorf("%s=%q is set, want it absent", k, v)
				}
			}
		})
	}
}

// TestImageReference runs an image by reference (no profile): the image's
// workdir, user and environment apply and nothing is mounted at /workspace.
func TestImageReference(t *testing.T) {
	t.Parallel()
	useNamespace(t, true)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"image-config", []string{plainRef, "--", "sh", "-c", `echo "$(pwd) $(id -u) $PLAIN_IMAGE"; ls /workspace`}, "/home/dev 1000 yes\n"},
		{"shorthand", []string{plainRef, "--", "id", "-un"}, "dev\n"},
		{"user-flag", []string{"-u", "root", plainRef, "--", "id", "-u"}, "0\n"},
		{"entrypoint", []string{"--entrypoint", "echo", plainRef, "--", "via", "entrypoint"}, "via entrypoint\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{}, tt.args...)
			if tt.name == "shorthand" {
				// sbxrun IMAGE [flags] -- CMD without "run".
				args = append([]string{plainRef, "--pull", "never", "--name", nameFor(t)}, tt.args[1:]...)
				stdout, stderr, code := runWith(t, opts{dir: dir}, args...)
				assertGone(t, nameFor(t))
				expect(t, strings.Join(args, " "), code, 0, stdout, stderr)
				if stdout != tt.want {
					t.Errorf("stdout %q, want %q", stdout, tt.want)
				}
				return
			}
			stdout, stderr, code := sandboxWith(t, opts{dir: dir}, nameFor(t), args...)
			expect(t, strings.Join(args, " "), code, 0, stdout, stderr)
			if stdout != tt.want {
				t.Errorf("stdout %q, want %q (the current directory must not be mounted for an image)", stdout, tt.want)
			}
		})
	}
}

// TestProcessSettings checks -w, -u, --hostname, --entrypoint and the
// profile shorthand.
func TestProcessSettings(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name string
		args []string
		// want is the stdout; "{name}" is replaced by the sandbox name.
		want string
	}{
		{"default-workdir", []string{"base", "--", "pwd"}, "/workspace\n"},
		{"workdir", []string{"-w", "/tmp", "base", "--", "pwd"}, "/tmp\n"},
		{"workdir-long", []string{"base", "--workdir", "/etc", "--", "pwd"}, "/etc\n"},
		{"workdir-created", []string{"-w", "/does/not/exist", "base", "--", "pwd"}, "/does/not/exist\n"},
		{"user-uid", []string{"-u", "1000:1000", "base", "--", "id"}, "uid=1000(dev) gid=1000(dev) groups=1000(dev)\n"},
		{"user-name", []string{"--user", "dev", "base", "--", "id", "-u"}, "1000\n"},
		{"user-nobody", []string{"-u", "65534", "base", "--", "id", "-u"}, "65534\n"},
		{"hostname", []string{"--hostname", "box1", "base", "--", "hostname"}, "box1\n"},
		{"hostname-default", []string{"base", "--", "hostname"}, "{name}\n"},
		{"entrypoint", []string{"--entrypoint", "/bin/echo", "base", "--", "a", "b"}, "a b\n"},
		{"entrypoint-empty", []string{"--entrypoint", "", "base", "--", "echo", "c"}, "c\n"},
		{"default-command", []string{"-i", "base"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := nameFor(t)
			stdout, stderr, code := sandbox(t, name, tt.args...)
			expect(t, strings.Join(tt.args, " "), code, 0, stdout, stderr)
			if want := strings.ReplaceAll(tt.want, "{name}", name); stdout != want {
				t.Errorf("stdout %q, want %q", stdout, want)
			}
		})
	}
}

// interfaces returns the network interfaces listed in a /proc/net/dev text.
func interfaces(procNetDev string) []string {
	var out []string
	for i, l := range strings.Split(procNetDev, "\n") {
		if i < 2 || strings.TrimSpace(l) == "" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSpace(l), ":")
		if strings.HasPrefix(name, "veth") || strings.HasPrefix(name, "sbx") {
			continue // the host ends of sandboxes' networks, which come and go
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestNetwork checks --net none (loopback only), the host network, and
// the default one (the bridge: loopback and eth0).
func TestNetwork(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	hostDev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.Join(interfaces(string(hostDev)), " ")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"none", []string{"--net", "none"}, "lo"},
		{"network-none", []string{"--network", "none"}, "lo"},
		{"host", []string{"--net", "host"}, host},
		{"default", nil, "eth0 lo"},
		{"bridge", []string{"--net", "bridge"}, "eth0 lo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(append([]string{}, tt.args...), "base", "--", "cat", "/proc/net/dev")
			stdout, stderr, code := sandbox(t, nameFor(t), args...)
			expect(t, strings.Join(args, " "), code, 0, stdout, stderr)
			if got := strings.Join(interfaces(stdout), " "); got != tt.want {
				t.Errorf("interfaces %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadOnly checks --read-only: the root file system refuses writes,
// the /workspace bind mount still takes them.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	dir := t.TempDir()
	stdout, stderr, code := sandboxWith(t, opts{dir: dir}, nameFor(t, "root"), "--read-only", "base", "--", "touch", "/etc/sbxrun-test")
	if code == 0 || !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("touch /etc/sbxrun-test under --read-only: exit %d, stderr %q; want a read-only file system error", code, stderr)
	}
	_ = stdout
	stdout, stderr, code = sandboxWith(t, opts{dir: dir}, nameFor(t, "workspace"), "--read-only", "base", "--", "touch", "/workspace/written")
	expect(t, "touch /workspace/written under --read-only", code, 0, stdout, stderr)
	if _, err := os.Stat(filepath.Join(dir, "written")); err != nil {
		t.Errorf("the write to /workspace did not reach the host: %v", err)
	}
	stdout, stderr, code = sandboxWith(t, opts{dir: dir}, nameFor(t, "writable"), "base", "--", "touch", "/etc/sbxrun-test")
	expect(t, "touch /etc/sbxrun-test without --read-only", code, 0, stdout, stderr)
}

// statusField returns the value of field in a /proc/PID/status text.
func statusField(status, field string) string {
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// defaultCaps are containerd's 14 default capabilities.
const defaultCaps = 0xa80425fb

// hostNetCaps are what a sandbox on the host's network gets: the defaults
// less NET_RAW (a raw socket there sees the host's traffic).
const hostNetCaps = defaultCaps &^ (1 << capNetRaw)

// capBit numbers of the capabilities the tests add and drop.
const (
	capNetRaw   = 13
	capSysAdmin = 21
	capPtrace   = 19
	capChown    = 0
)

// TestSecurity checks, inside the sandbox, the effective capabilities,
// no_new_privs and the seccomp mode, masked and read-only /proc paths, and
// how --cap-add, --cap-drop, --security-opt, -u and --privileged change them.
func TestSecurity(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	hostStatus, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	hostBnd, err := strconv.ParseUint(statusField(string(hostStatus), "CapBnd"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		capEff     uint64
		noNewPrivs string // "" does not check
		seccomp    string
	}{
		{"default", nil, hostNetCaps, "1", "2"},
		{"own network keeps net-raw", []string{"--net", "none"}, defaultCaps, "1", "2"},
		{"host network net-raw when asked", []string{"--cap-add", "net_raw"}, defaultCaps, "1", "2"},
		{"cap-drop-all", []string{"--cap-drop", "ALL"}, 0, "1", "2"},
		{"cap-drop-net-raw", []string{"--net", "none", "--cap-drop", "NET_RAW"}, defaultCaps &^ (1 << capNetRaw), "1", "2"},
		{"cap-drop-prefixed-lower", []string{"--cap-drop", "cap_chown"}, hostNetCaps &^ (1 << capChown), "1", "2"},
		{"cap-add-sys-ptrace", []string{"--cap-add", "SYS_PTRACE"}, hostNetCaps | 1<<capPtrace, "1", "2"},
		{"cap-add-sys-admin", []string{"--cap-add", "CAP_SYS_ADMIN"}, hostNetCaps | 1<<capSysAdmin, "1", "2"},
		{"cap-add-leading-space", []string{"--cap-add", " sys_admin"}, hostNetCaps | 1<<capSysAdmin, "1", "2"},
		{"drop-all-add-one", []string{"--cap-drop", "ALL", "--cap-add", "CHOWN"}, 1 << capChown, "1", "2"},
		{"seccomp-unconfined", []string{"--security-opt", "seccomp=unconfined"}, hostNetCaps, "1", "0"},
		{"no-new-privileges", []string{"--security-opt", "no-new-privileges"}, hostNetCaps, "1", "2"},
		{"non-root", []string{"-u", "1000"}, 0, "1", "2"},
		{"privileged", []string{"--privileged"}, hostBnd, "", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(append([]string{}, tt.args...), "base", "--", "cat", "/proc/self/status")
			stdout, stderr, code := sandbox(t, nameFor(t), args...)
			expect(t, strings.Join(args, " "), code, 0, stdout, stderr)
			if code != 0 {
				return
			}
			if got := statusField(stdout, "CapEff"); got != fmt.Sprintf("%016x", tt.capEff) {
				t.Errorf("CapEff %s, want %016x", got, tt.capEff)
			}
			if got := statusField(stdout, "NoNewPrivs"); tt.noNewPrivs != "" && got != tt.noNewPrivs {
				t.Errorf("NoNewPrivs %q, want %q", got, tt.noNewPrivs)
			}
			if got := statusField(stdout, "Seccomp"); got != tt.seccomp {
				t.Errorf("Seccomp %q, want %q", got, tt.seccomp)
			}
		})
	}

	t.Run("proc-hardening", func(t *testing.T) {
		t.Parallel()
		// containerd's masked files that exist on this kernel must read as
		// /dev/null; /sys/firmware is hidden; /proc/sys is read-only.
		var script, want strings.Builder
		for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug"} {
			if _, err := os.Stat(p); err == nil {
				fmt.Fprintf(&script, "test -c %[1]s && echo masked:%[1]s; ", p)
				fmt.Fprintf(&want, "masked:%s\n", p)
			}
		}
		if _, err := os.Stat("/sys/firmware"); err == nil {
			script.WriteString(`test -z "$(ls -A /sys/firmware)" && echo hidden:/sys/firmware; `)
			want.WriteString("hidden:/sys/firmware\n")
		}
		script.WriteString(`grep ' /proc/sys ' /proc/mounts | grep -q '[ ,]ro[ ,]' && echo sys-ro; echo 1 > /proc/sys/kernel/sysrq 2>/dev/null || echo sysrq-refused`)
		want.WriteString("sys-ro\nsysrq-refused\n")
		stdout, stderr, code := sandbox(t, nameFor(t), "base", "--", "sh", "-c", script.String())
		expect(t, "proc hardening checks", code, 0, stdout, stderr)
		if stdout != want.String() {
			t.Errorf("stdout %q, want %q", stdout, want.String())
		}
	})
}

// cgroupLimit returns the content of the host file holding a limit of the
// cgroup listed in a /proc/PID/cgroup text: the cgroup v1 controller's file,
// or the unified hierarchy's file on cgroup v2.
func cgroupLimit(t *testing.T, procCgroup, controller, v1File, v2File string) string {
	t.Helper()
	var unified string
	for _, l := range strings.Split(strings.TrimSpace(procCgroup), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			unified = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", f[1], f[2], v1File))
				if err != nil {
					t.Fatalf("reading the sandbox's %s limit: %v", controller, err)
				}
				return strings.TrimSpace(string(b))
			}
		}
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if b, err := os.ReadFile(filepath.Join(root, unified, v2File)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s cgroup for the sandbox in %q", controller, procCgroup)
	return ""
}

// TestLimits checks the cgroup limits on the host while the sandbox runs.
func TestLimits(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	tests := []struct {
		name                 string
		args                 []string
		controller           string
		v1File, v2File, want string
	}{
		{"memory", []string{"--memory", "64m"}, "memory", "memory.limit_in_bytes", "memory.max", "67108864"},
		{"memory-long", []string{"-m", "1g"}, "memory", "memory.limit_in_bytes", "memory.max", "1073741824"},
		{"memory-swap", []string{"-m", "64m", "--memory-swap", "96m"}, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max", "100663296"},
		{"pids", []string{"--pids-limit", "50"}, "pids", "pids.max", "pids.max", "50"},
		{"cpus", []string{"--cpus", "1.5"}, "cpu", "cpu.cfs_quota_us", "cpu.max", "150000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "memory-swap" {
				if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err != nil && !fileExists("/sys/fs/cgroup/unified/memory.swap.max") {
					// Without swap accounting the kernel has no file to check;
					// the spec test covers the value.
					tt.v1File, tt.want = "memory.limit_in_bytes", "67108864"
				}
			}
			dir := t.TempDir()
			name := nameFor(t)
			args := append(append([]string{"run", "--pull", "never", "--name", name}, tt.args...), "base", "--", "sh", "-c",
				"cat /proc/self/cgroup; echo ready; while [ ! -e /workspace/done ]; do sleep 0.05; done")
			p := start(t, opts{dir: dir}, args...)
			waitOutput(t, p, p.stdout, "ready", 30*time.Second)
			got := cgroupLimit(t, strings.TrimSuffix(p.stdout.String(), "ready\n"), tt.controller, tt.v1File, tt.v2File)
			if tt.v2File == "cpu.max" {
				got, _, _ = strings.Cut(got, " ")
			}
			if got != tt.want {
				t.Errorf("%s: %s is %q, want %q", strings.Join(tt.args, " "), tt.v1File, got, tt.want)
			}
			if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			expect(t, strings.Join(args, " "), p.wait(t, 30*time.Second), 0, p.stdout.String(), p.stderr.String())
			assertGone(t, name)
		})
	}

	t.Run("pids-enforced", func(t *testing.T) {
		t.Parallel()
		// Twenty background sleeps cannot all start under a limit of 10.
		stdout, stderr, code := sandbox(t, nameFor(t), "--pids-limit", "10", "base", "--", "sh", "-c",
			"for i in $(seq 20); do sleep 5 & done; echo started")
		if !strings.Contains(stderr, "fork") {
			t.Errorf("20 processes under --pids-limit 10: exit %d, stdout %q, stderr %q; want fork failures", code, stdout, stderr)
		}
	})
}

// TestHomeFiles checks the base profile's read-only ~/.gitconfig and
// ~/.ssh mounts, and that a home without them still runs.
func TestHomeFiles(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, ".gitconfig"), []byte("[user]\n\tname = home test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(full, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, ".ssh", "known_hosts"), []byte("example.org ssh-ed25519 AAAA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `cat /root/.gitconfig 2>/dev/null; cat /root/.ssh/known_hosts 2>/dev/null; echo x >> /root/.gitconfig 2>/dev/null || echo gitconfig-ro; echo ok`
	tests := []struct {
		name string
		home string
		want string
	}{
		{"present", full, "[user]\n\tname = home test\nexample.org ssh-ed25519 AAAA\ngitconfig-ro\nok\n"},
		{"fresh-home", t.TempDir(), "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := opts{env: []string{"HOME=" + tt.home, "XDG_CONFIG_HOME=" + filepath.Join(tt.home, ".config")}}
			stdout, stderr, code := sandboxWith(t, o, nameFor(t), "base", "--", "sh", "-c", script)
			expect(t, "base with HOME "+tt.name, code, 0, stdout, stderr)
			if stdout != tt.want {
				t.Errorf("stdout %q, want %q", stdout, tt.want)
			}
		})
	}
}
