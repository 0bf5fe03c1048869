package rootless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	sysuser "github.com/moby/sys/user"

	"github.com/sbxrun/sbxrun/internal/ctrdconfig"
	"github.com/sbxrun/sbxrun/internal/hostinfo"
	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/oci"
)

// envRootless marks a process that already runs inside the rootless
// containerd's user and mount namespaces (sbxrun re-executes itself there).
const envRootless = "SBXRUN_ROOTLESS"

// envRootlessWd carries the working directory into the namespaces.
const envRootlessWd = "SBXRUN_ROOTLESS_WD"

// InNamespace reports whether this process runs inside the rootless
// containerd's namespaces, entered by Enter.
func InNamespace() bool { return os.Getenv(envRootless) == "1" }

// Active reports whether sbxrun works against a per-user containerd (it
// runs as a user, or inside that containerd's namespaces).
func Active() bool { return os.Geteuid() != 0 || InNamespace() }

// Paths are the files of one user's rootless containerd.
type Paths struct {
	// RunDir ($XDG_RUNTIME_DIR/sbxrun) holds the socket, the RootlessKit
	// state and what is bind-mounted at /run/containerd in the namespace.
	RunDir string
	// DataDir ($XDG_DATA_HOME/sbxrun) holds containerd's root, its config
	// and log.
	DataDir string
}

// Socket is the rootless containerd's socket.
func (p Paths) Socket() string { return filepath.Join(p.RunDir, "containerd.sock") }

func (p Paths) config() string       { return filepath.Join(p.DataDir, "containerd.toml") }
func (p Paths) log() string          { return filepath.Join(p.DataDir, "containerd.log") }
func (p Paths) pidFile() string      { return filepath.Join(p.RunDir, "rootlesskit.pid") }
func (p Paths) kitDir() string       { return filepath.Join(p.RunDir, "rootlesskit") }
func (p Paths) childPidFile() string { return filepath.Join(p.kitDir(), "child_pid") }
func (p Paths) runContainerd() string {
	return filepath.Join(p.RunDir, "run-containerd")
}

// UserPaths returns the invoking user's rootless paths, or an error
// naming the fix when XDG_RUNTIME_DIR is missing.
func UserPaths() (Paths, error) {
	rt := os.Getenv("XDG_RUNTIME_DIR")
	if rt == "" {
		return Paths{}, errors.New("XDG_RUNTIME_DIR is not set: log in through a session that sets it, or create one yourself: `export XDG_RUNTIME_DIR=/tmp/run-$(id -u); mkdir -m 700 -p $XDG_RUNTIME_DIR`")
	}
	if fi, err := os.Stat(rt); err != nil || !fi.IsDir() {
		return Paths{}, fmt.Errorf("XDG_RUNTIME_DIR %q is not a directory: create it with `mkdir -m 700 -p %s`", rt, rt)
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return Paths{}, errors.New("neither XDG_DATA_HOME nor HOME is set: set HOME")
		}
		data = filepath.Join(home, ".local", "share")
	}
	return Paths{RunDir: filepath.Join(rt, "sbxrun"), DataDir: filepath.Join(data, "sbxrun")}, nil
}

// rootlessSocket is the rootless containerd's socket when this user runs
// one, else "".
func Socket() string {
	p, err := UserPaths()
	if err != nil {
		return ""
	}
	if _, err := os.Stat(p.Socket()); err != nil {
		return ""
	}
	return p.Socket()
}

// Prerequisite is one thing rootless containerd needs, checked.
type Prerequisite struct {
	Name string
	// Err is nil when met; else it says what is wrong and the command that
	// fixes it.
	Err error
}

// Check checks every prerequisite of a rootless containerd for the
// current user and returns them all, met or not.
func Check() []Prerequisite {
	var out []Prerequisite
	add := func(name string, err error) { out = append(out, Prerequisite{name, err}) }
	u, uerr := user.Current()
	name := "$USER"
	if uerr == nil {
		name = u.Username
	}
	if os.Geteuid() == 0 {
		add("non-root user", errors.New("rootless mode is for unprivileged users: run it as the user who will run sandboxes (root uses the system containerd)"))
	}
	_, err := UserPaths()
	add("XDG_RUNTIME_DIR", err)
	for _, b := range []struct{ bin, pkg string }{
		{"newuidmap", "uidmap"}, {"newgidmap", "uidmap"}, {"rootlesskit", "rootlesskit"},
		{"containerd", "containerd"}, {"runc", "runc"}, {"nsenter", "util-linux"},
	} {
		var err error
		if _, lerr := exec.LookPath(b.bin); lerr != nil {
			err = fmt.Errorf("%s is not installed: `sudo apt-get install -y %s`", b.bin, b.pkg)
		}
		add(b.bin, err)
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		var err error
		if uerr == nil && !hasSubID(f, u) {
			err = fmt.Errorf("%s has no range for %s: `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s`", f, name, name)
		}
		add(f, err)
	}
	add("user namespaces", checkUserns())
	return out
}

// hasSubID reports whether the subordinate-ID file at path (/etc/subuid or
// /etc/subgid) gives u, by name or uid, a range of at least 65536 IDs, which
// a rootless containerd needs to map a whole image's users.
func hasSubID(path string, u *user.User) bool {
	ranges, err := sysuser.ParseSubIDFileFilter(path, func(r sysuser.SubID) bool {
		return (r.Name == u.Username || r.Name == u.Uid) && r.Count >= 65536
	})
	return err == nil && len(ranges) > 0
}

func checkUserns() error {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if read("/proc/sys/user/max_user_namespaces") == "0" {
		return errors.New("user namespaces are disabled: `sudo sysctl -w user.max_user_namespaces=15000`")
	}
	if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
		return errors.New("unprivileged user namespaces are disabled: `sudo sysctl -w kernel.unprivileged_userns_clone=1`")
	}
	if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
		return errors.New("AppArmor restricts unprivileged user namespaces: `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (or add an AppArmor profile for rootlesskit)")
	}
	return nil
}

func firstUnmet(ps []Prerequisite) error {
	for _, p := range ps {
		if p.Err != nil {
			return p.Err
		}
	}
	return nil
}

// Setup checks the prerequisites and writes the per-user containerd
// config. It prints what it did and the next command.
func Setup(out io.Writer) error {
	if err := firstUnmet(Check()); err != nil {
		return err
	}
	p, _ := UserPaths()
	for _, d := range []string{p.RunDir, p.DataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %q: %w", d, err)
		}
	}
	cfg := "# written by sbxrun rootless setup\n" + ctrdconfig.Config{
		Root:    filepath.Join(p.DataDir, "containerd"),
		State:   filepath.Join(p.RunDir, "containerd-state"),
		Address: p.Socket(),
	}.TOML()
	if err := os.WriteFile(p.config(), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing %q: %w", p.config(), err)
	}
	fmt.Fprintf(out, "wrote %s\nnext: sbxrun rootless start\n", p.config())
	return nil
}

// StopFunc ends every sandbox of the containerd at socket and returns how
// many it ended (runtime.StopAll): the rootless daemon is stopped only after
// its sandboxes, since shims outlive containerd.
type StopFunc func(socket string) (int, error)

// Start starts the user's containerd under RootlessKit, detached,
// and waits for its socket.
//
// With foreground (a service manager's main process), the daemon's log goes
// to out, ready is called once the socket answers, and Start
// returns only when the daemon ends: on SIGTERM or SIGINT it stops the
// sandboxes, then the daemon.
func Start(ctx context.Context, out io.Writer, foreground bool, ready func(), stopAll StopFunc) error {
	if err := firstUnmet(Check()); err != nil {
		return err
	}
	p, _ := UserPaths()
	if pid, ok := running(p); ok {
		fmt.Fprintf(out, "rootless containerd already running (pid %d), socket %s\n", pid, p.Socket())
		return nil
	}
	if _, err := os.Stat(p.config()); err != nil {
		return fmt.Errorf("no rootless config at %q: run `sbxrun rootless setup` first", p.config())
	}
	for _, d := range []string{p.RunDir, p.runContainerd()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %q: %w", d, err)
		}
	}
	_ = os.RemoveAll(p.kitDir())
	_ = os.Remove(p.Socket())
	var logw io.Writer = out
	if !foreground {
		logf, err := os.OpenFile(p.log(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("opening %q: %w", p.log(), err)
		}
		defer logf.Close()
		logw = logf
	}
	// containerd 1.6 puts shim sockets under /run/containerd, which only
	// root may write on the host: give it a directory of the user's there,
	// inside the namespace. The network is the host's: RootlessKit's slirp
	// needs /dev/net/tun, and pulls must reach registries on loopback.
	//
	// --copy-up keeps the host's /etc and /run reachable through symlinks
	// made at start, to a live view at /etc/.ro* and /run/.ro*: link the
	// CDI spec directories there too, even before the host has them, so GPU
	// specs written after this start are still seen.
	inner := fmt.Sprintf(`for d in /etc/cdi /run/cdi; do
	if [ ! -e "$d" ] && [ ! -L "$d" ]; then
		ro=$(ls -d "${d%%/*}"/.ro* 2>/dev/null | head -n 1)
		[ -n "$ro" ] && ln -s "${ro##*/}/cdi" "$d"
	fi
done
mkdir -p /run/containerd && mount --bind %q /run/containerd && exec containerd --config %q`,
		p.runContainerd(), p.config())
	cmd := exec.Command("rootlesskit", "--net=host", "--copy-up=/etc", "--copy-up=/run",
		"--state-dir="+p.kitDir(), "sh", "-c", inner)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: !foreground}
	var sigc chan os.Signal
	if foreground {
		sigc = make(chan os.Signal, 4)
		signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigc)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting rootlesskit: %w", err)
	}
	pid := cmd.Process.Pid
	_ = os.WriteFile(p.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o600)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(15 * time.Second)
	for {
		if _, err := os.Stat(p.Socket()); err == nil {
			if _, err := os.Stat(p.childPidFile()); err == nil {
				fmt.Fprintf(out, "rootless containerd running (pid %d), socket %s\n", pid, p.Socket())
				if !foreground {
					return nil
				}
				if ready != nil {
					ready()
				}
				return supervise(p, pid, exited, sigc, out, stopAll)
			}
		}
		select {
		case err := <-exited:
			_ = os.Remove(p.pidFile())
			return fmt.Errorf("rootless containerd exited at start (%v): %s", err, lastLine(p.log()))
		case <-deadline:
			_ = syscall.Kill(pid, syscall.SIGTERM)
			return fmt.Errorf("rootless containerd did not come up in 15s: see %s", p.log())
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// supervise waits, in the foreground, for the daemon to end or for
// a signal to stop it.
func supervise(p Paths, pid int, exited <-chan error, sigc <-chan os.Signal, out io.Writer, stopAll StopFunc) error {
	select {
	case err := <-exited:
		_ = os.Remove(p.pidFile())
		return fmt.Errorf("rootless containerd exited: %v", err)
	case <-sigc:
	}
	if n, err := stopAll(p.Socket()); err == nil && n > 0 {
		fmt.Fprintf(out, "stopped %d sandbox(es)\n", n)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
	_ = os.Remove(p.pidFile())
	_ = os.Remove(p.Socket())
	_ = os.Remove(p.Socket() + ".ttrpc")
	return nil
}

// Stop stops the user's rootless containerd and what runs under it.
func Stop(out io.Writer, stopAll StopFunc) error {
	p, err := UserPaths()
	if err != nil {
		return err
	}
	pid, ok := running(p)
	if !ok {
		fmt.Fprintln(out, "rootless containerd is not running")
		return nil
	}
	// Shims outlive containerd: end the sandboxes first, so stopping
	// leaves no process, task or mount behind.
	if n, err := stopAll(p.Socket()); err != nil {
		fmt.Fprintf(out, "sbxrun: warning: stopping sandboxes: %v\n", err)
	} else if n > 0 {
		fmt.Fprintf(out, "stopped %d sandbox(es)\n", n)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if _, ok := running(p); !ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := running(p); ok {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(p.pidFile())
	_ = os.Remove(p.Socket())
	_ = os.Remove(p.Socket() + ".ttrpc")
	fmt.Fprintf(out, "stopped rootless containerd (pid %d)\n", pid)
	return nil
}

// Status prints whether the user's containerd runs, its socket,
// the prerequisites and which limits this host can enforce rootless.
func Status(out io.Writer) error {
	p, perr := UserPaths()
	if perr == nil {
		if pid, ok := running(p); ok {
			fmt.Fprintf(out, "running: yes (rootlesskit pid %d)\nsocket: %s\n", pid, p.Socket())
		} else {
			fmt.Fprintf(out, "running: no (start it with `sbxrun rootless start`)\nsocket: %s\n", p.Socket())
		}
		fmt.Fprintf(out, "data: %s\n", p.DataDir)
	}
	fmt.Fprintf(out, "limits: %s\n", Limits().describe())
	for _, pr := range Check() {
		if pr.Err != nil {
			fmt.Fprintf(out, "prerequisite %s: %v\n", pr.Name, pr.Err)
		}
	}
	// Not a prerequisite of the daemon: sandboxes on --net host or none
	// run without it.
	if err := network.CheckPasta(); err != nil {
		fmt.Fprintf(out, "sandbox network: %v\n", err)
	} else {
		fmt.Fprintln(out, "sandbox network: a namespace of its own per sandbox, through pasta; named networks' bridges in a namespace of your own")
	}
	return nil
}

func running(p Paths) (int, bool) {
	b, err := os.ReadFile(p.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if hostinfo.ProcStart(pid) == "" {
		return 0, false
	}
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return pid, strings.Contains(string(comm), "rootlesskit")
}

func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// Enter re-executes sbxrun inside the rootless containerd's user
// and mount namespaces when the invoking user is not root and runs one, as
// other containerd clients do (nsenter): bind-mount sources, FIFOs and
// snapshots then resolve the way the daemon sees them. Before it enters,
// it records the host owners of the CDI files a run may use
// (oci.HostOwners), which the user namespace shows alike for root and any
// other user. It returns only when there is nothing to enter (or on
// error); otherwise the process is replaced.
func Enter(args []string, cdiSpecDirs func([]string) []string) error {
	if InNamespace() {
		// Only the record made on the host (below) tells whose files the
		// overflow uid stands for here.
		oci.UseHostOwners(os.Getenv(oci.HostOwnersEnv))
		_ = os.Unsetenv(oci.HostOwnersEnv)
		// Entering a mount namespace moves the cwd to its root, and nsenter's
		// --wd opens the directory before entering (its dentry is then
		// unreachable, getcwd fails): change to it by path, here.
		if wd := os.Getenv(envRootlessWd); wd != "" {
			_ = os.Unsetenv(envRootlessWd)
			if err := os.Chdir(wd); err != nil {
				return fmt.Errorf("the current directory %q is not visible to the rootless containerd: %w; run sbxrun from a directory under your home or /tmp", wd, errors.Unwrap(err))
			}
			_ = os.Setenv("PWD", wd)
		}
		return nil
	}
	if os.Geteuid() == 0 {
		return nil
	}
	if a := os.Getenv("SBXRUN_ADDRESS") + os.Getenv("CONTAINERD_ADDRESS"); a != "" {
		return nil // the user named a daemon: talk to it directly
	}
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "--address" || strings.HasPrefix(a, "--address=") {
			return nil
		}
	}
	p, err := UserPaths()
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(p.childPidFile())
	if err != nil {
		return nil
	}
	child := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(child); err != nil || hostinfo.ProcStart(atoi(child)) == "" {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return errors.New("nsenter is not installed: `sudo apt-get install -y util-linux`")
	}
	wd, _ := os.Getwd()
	argv := append([]string{"nsenter", "-U", "--preserve-credentials", "-m", "-t", child, "--", self}, args[1:]...)
	// The record is ours alone: a value from the environment would win.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, oci.HostOwnersEnv+"=") })
	env = append(env, envRootless+"=1", envRootlessWd+"="+wd, "SBXRUN_ROOTLESS_UID="+strconv.Itoa(os.Getuid()),
		oci.HostOwnersEnv+"="+oci.HostOwners(cdiSpecDirs(cdiSpecDirArgs(args)), self))
	return syscall.Exec(nsenter, argv, env)
}

// cdiSpecDirArgs are the values of the --cdi-spec-dir flags in args (any
// before "--"; more than the command uses only costs a stat each).
func cdiSpecDirArgs(args []string) []string {
	var dirs []string
	for i := 1; i < len(args) && args[i] != "--"; i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if name != "cdi-spec-dir" || !strings.HasPrefix(args[i], "-") {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		dirs = append(dirs, value)
	}
	return dirs
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// LimitSupport says whether cgroup limits can be enforced for a rootless
// sandbox on this host, and why not.
type LimitSupport struct {
	// OK says the limits can be enforced.
	OK bool
	// Parent is the delegated cgroup (v2) a sandbox's cgroup goes under.
	Parent string
	// Reason says why not, with the fix.
	Reason string
}

func (l LimitSupport) describe() string {
	if l.OK {
		return "enforced (cgroup v2, delegated " + l.Parent + ")"
	}
	return "not enforceable: " + l.Reason
}

// Limits checks cgroup delegation for the invoking user: cgroup v1
// gives unprivileged users no cgroups at all; v2 needs the memory, cpu and
// pids controllers delegated (systemd Delegate=yes on user@.service).
func Limits() LimitSupport {
	if !hostinfo.CgroupV2() {
		return LimitSupport{Reason: "this host uses cgroup v1, which gives unprivileged users no cgroups; boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2) and delegate controllers to users (Delegate=yes for user@.service), or run sbxrun as root"}
	}
	uid := os.Getuid()
	if InNamespace() {
		if v, err := strconv.Atoi(os.Getenv("SBXRUN_ROOTLESS_UID")); err == nil {
			uid = v
		}
	}
	parent := fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service", uid, uid)
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parent, "cgroup.subtree_control"))
	if err != nil {
		return LimitSupport{Reason: fmt.Sprintf("no delegated cgroup for uid %d (%s): log in through systemd-logind and set Delegate=yes for user@.service (`sudo systemctl edit user@.service`)", uid, parent)}
	}
	have := strings.Fields(string(b))
	for _, c := range []string{"memory", "cpu", "pids"} {
		found := false
		for _, h := range have {
			found = found || h == c
		}
		if !found {
			return LimitSupport{Reason: fmt.Sprintf("the %s controller is not delegated to uid %d: add it with Delegate=memory cpu pids for user@.service (`sudo systemctl edit user@.service`)", c, uid)}
		}
	}
	return LimitSupport{OK: true, Parent: parent}
}
