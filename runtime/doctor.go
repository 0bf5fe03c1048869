package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/apparmor"
	"golang.org/x/sys/unix"

	"github.com/sbxrun/sbxrun/gpu"
	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/internal/hostinfo"
	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// Check statuses: ok, warn (works, with a limit the detail names) and
// fail (something sbxrun needs is missing).
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Check is one thing `sbxrun doctor` checked on the host, so a user learns
// everything the host lacks at once instead of one failed command at a
// time.
type Check struct {
	// Name is what was checked ("containerd", "runc", "cgroups", ...).
	Name string `json:"name"`
	// Status is CheckOK, CheckWarn or CheckFail.
	Status string `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix is the command or step that fixes a warn or fail; "" when ok.
	Fix string `json:"fix,omitempty"`
}

// String is the check's line: status, name, detail, and the fix last
// after ": ".
func (c Check) String() string {
	s := fmt.Sprintf("%-4s  %s: %s", c.Status, c.Name, c.Detail)
	if c.Fix != "" {
		s += ": " + c.Fix
	}
	return s
}

// DoctorOptions configure Doctor; the zero value checks this host as the
// other commands see it.
type DoctorOptions struct {
	Global
	// CDISpecDirs are the CDI spec directories (--cdi-spec-dir); empty
	// resolves through ResolveCDISpecDirs.
	CDISpecDirs []string
	// DockerConfig is the directory of config.json; "" is $DOCKER_CONFIG,
	// else ~/.docker.
	DockerConfig string
}

// Failed reports whether any check failed: `sbxrun doctor` exits 1 then.
func Failed(checks []Check) bool {
	return slices.ContainsFunc(checks, func(c Check) bool { return c.Status == CheckFail })
}

// Doctor checks what sbxrun needs from the host: the daemon, the OCI
// runtimes, cgroups, rootless prerequisites, AppArmor, the state
// directory, disk space, CNI, NVIDIA GPUs and registry credential
// helpers. It never fails itself: a check that cannot be made is a check
// that failed, with its fix.
func Doctor(ctx context.Context, o DoctorOptions) []Check {
	var checks []Check
	add := func(c Check) { checks = append(checks, c) }

	root := "/var/lib/containerd"
	ctrd, r := checkContainerd(ctx, &o.Global)
	add(ctrd)
	if r != "" {
		root = r
	}
	add(checkRunc())
	if c, ok := checkCrun(); ok {
		add(c)
	}
	add(checkCgroups())
	if rootless.Active() {
		checks = append(checks, checkRootless()...)
	}
	add(checkAppArmor())
	add(checkStateDir(o.stateDir()))
	add(checkDisk(root))
	add(checkCNI(o.stateDir()))
	checks = append(checks, checkGPU(ResolveCDISpecDirs(o.CDISpecDirs))...)
	checks = append(checks, checkCredentialHelpers(o.DockerConfig)...)
	return checks
}

// splitFix splits one of sbxrun's error lines into what is wrong and its
// fix, which comes last: after the last ": `" (a command), else the last
// "; " (a sentence), else the last ": ".
func splitFix(msg string) (detail, fix string) {
	for _, sep := range []string{": `", "; ", ": "} {
		if i := strings.LastIndex(msg, sep); i >= 0 {
			return msg[:i], msg[i+2:] // the fix keeps a command's "`"
		}
	}
	return msg, ""
}

func failCheck(name string, err error) Check {
	d, f := splitFix(err.Error())
	return Check{Name: name, Status: CheckFail, Detail: d, Fix: f}
}

// checkContainerd dials the daemon and asks its version, the namespace
// and the root of its content store (for the disk check; "" when it
// cannot tell).
func checkContainerd(ctx context.Context, g *Global) (Check, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return failCheck("containerd", err), ""
	}
	defer c.Close()
	addr := ResolveAddress(g.Address)
	v, err := c.Version(ctx)
	if err != nil {
		return Check{Name: "containerd", Status: CheckFail, Detail: fmt.Sprintf("no answer from %q: %v", addr, err),
			Fix: "start containerd (systemctl start containerd) or point --address/SBXRUN_ADDRESS at its socket"}, ""
	}
	detail := fmt.Sprintf("%s at %s", v.Version, addr)
	ns := g.namespace()
	if names, err := c.NamespaceService().List(ctx); err == nil {
		if slices.Contains(names, ns) {
			detail += ", namespace " + ns
		} else {
			detail += ", namespace " + ns + " (created on first run)"
		}
	}
	root := ""
	if resp, err := c.IntrospectionService().Plugins(ctx, "type==io.containerd.content.v1"); err == nil {
		for _, p := range resp.Plugins {
			if r := p.Exports["root"]; r != "" {
				root = filepath.Dir(r)
				break
			}
		}
	}
	return Check{Name: "containerd", Status: CheckOK, Detail: detail}, root
}

var runtimeVersionRE = regexp.MustCompile(`(?m)^(?:runc|crun) version ([0-9]+)\.([0-9]+)(?:\.([0-9]+))?\S*`)

// runtimeVersion runs BIN --version and returns the version line's
// version and its major and minor numbers.
func runtimeVersion(bin string) (string, int, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", 0, 0, err
	}
	m := runtimeVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", 0, 0, fmt.Errorf("no version in the output of `%s --version`", bin)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return strings.Fields(m[0])[2], major, minor, nil
}

// checkRunc checks runc, the runtime containerd's runc shim runs, and
// says what its version means: idmapped mounts need runc 1.2.
func checkRunc() Check {
	p, err := exec.LookPath("runc")
	if err != nil {
		return Check{Name: "runc", Status: CheckFail, Detail: "runc is not installed", Fix: "`sudo apt-get install -y runc`"}
	}
	v, major, minor, err := runtimeVersion(p)
	if err != nil {
		return Check{Name: "runc", Status: CheckFail, Detail: fmt.Sprintf("%s does not run: %v", p, err), Fix: "reinstall it (`sudo apt-get install --reinstall -y runc`)"}
	}
	detail := fmt.Sprintf("%s (%s)", v, p)
	if major == 1 && minor < 1 {
		return Check{Name: "runc", Status: CheckWarn, Detail: detail + ", older than 1.1, which cgroup v2 and rootless sandboxes need",
			Fix: "install runc 1.1 or later"}
	}
	if major == 1 && minor < 2 {
		detail += ", supports cgroup v2 (idmapped mounts need 1.2)"
	} else {
		detail += ", supports cgroup v2 and idmapped mounts"
	}
	return Check{Name: "runc", Status: CheckOK, Detail: detail}
}

// checkCrun reports crun when it is installed; ok is false when it is not.
func checkCrun() (Check, bool) {
	p, err := exec.LookPath("crun")
	if err != nil {
		return Check{}, false
	}
	v, _, _, err := runtimeVersion(p)
	if err != nil {
		return Check{Name: "crun", Status: CheckWarn, Detail: fmt.Sprintf("%s does not run: %v", p, err), Fix: "reinstall or remove it"}, true
	}
	return Check{Name: "crun", Status: CheckOK, Detail: fmt.Sprintf("%s (%s), not used by sbxrun (containerd runs runc)", v, p)}, true
}

// checkCgroups reports the cgroup version and controllers; v1 works for
// root but leaves rootless sandboxes without limits.
func checkCgroups() Check {
	if hostinfo.CgroupV2() {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err != nil {
			return Check{Name: "cgroups", Status: CheckWarn, Detail: fmt.Sprintf("v2, but its controllers cannot be read: %v", err), Fix: "check that /sys/fs/cgroup is mounted"}
		}
		have := strings.Fields(string(b))
		var missing []string
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return Check{Name: "cgroups", Status: CheckWarn, Detail: fmt.Sprintf("v2 without the %s controller(s), so those limits are not enforced", strings.Join(missing, ", ")),
				Fix: "enable them on the kernel command line (cgroup_enable=memory) and reboot"}
		}
		return Check{Name: "cgroups", Status: CheckOK, Detail: "v2, controllers " + strings.Join(have, " ")}
	}
	var have []string
	if b, err := os.ReadFile("/proc/cgroups"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[3] == "1" {
				have = append(have, f[0])
			}
		}
	}
	return Check{Name: "cgroups", Status: CheckWarn,
		Detail: "v1 (controllers " + strings.Join(have, " ") + "): root sandboxes get their limits, rootless ones get none",
		Fix:    "boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2"}
}

// checkRootless reports each rootless prerequisite (rootless.Check), what
// the rootless default network needs (pasta, /dev/net/tun), and cgroup
// delegation.
func checkRootless() []Check {
	var out []Check
	for _, p := range rootless.Check() {
		if p.Err != nil {
			out = append(out, failCheck("rootless "+p.Name, p.Err))
			continue
		}
		out = append(out, Check{Name: "rootless " + p.Name, Status: CheckOK, Detail: "ok"})
	}
	// The default network of a rootless sandbox: its own namespace, with
	// pasta as its uplink.
	for _, c := range []struct {
		name  string
		check func() error
	}{{"rootless pasta", network.CheckPastaBinary}, {"rootless /dev/net/tun", network.CheckTun}} {
		if err := c.check(); err != nil {
			out = append(out, failCheck(c.name, err))
		} else {
			out = append(out, Check{Name: c.name, Status: CheckOK, Detail: "ok"})
		}
	}
	if l := rootless.Limits(); l.OK {
		out = append(out, Check{Name: "rootless cgroup delegation", Status: CheckOK, Detail: "delegated " + l.Parent})
	} else {
		d, f := splitFix(l.Reason)
		out = append(out, Check{Name: "rootless cgroup delegation", Status: CheckWarn, Detail: "limits are not enforceable: " + d, Fix: f})
	}
	return out
}

func checkAppArmor() Check {
	if apparmor.HostSupports() {
		return Check{Name: "apparmor", Status: CheckOK, Detail: "enabled, sandboxes run under containerd's default profile"}
	}
	return Check{Name: "apparmor", Status: CheckOK, Detail: "not enabled on this host, sandboxes run without an AppArmor profile"}
}

// checkStateDir checks that sbxrun can write its state directory, or
// create it under its nearest existing parent. It creates nothing.
func checkStateDir(dir string) Check {
	d := dir
	for {
		if _, err := os.Stat(d); err == nil {
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := unix.Access(d, unix.W_OK|unix.X_OK); err != nil {
		return Check{Name: "state dir", Status: CheckFail, Detail: fmt.Sprintf("%q is not writable (%q: %v)", dir, d, err),
			Fix: "run as its owner, or point SBXRUN_STATE_DIR at a directory you may write"}
	}
	if d != dir {
		return Check{Name: "state dir", Status: CheckOK, Detail: fmt.Sprintf("%s (created on first run)", dir)}
	}
	return Check{Name: "state dir", Status: CheckOK, Detail: dir}
}

// Free space under containerd's root below which pulls and snapshots
// start to fail (fail) or soon will (warn).
const (
	diskFail = 1 << 30
	diskWarn = 5 << 30
)

func checkDisk(root string) Check {
	d := root
	var st unix.Statfs_t
	for {
		if err := unix.Statfs(d, &st); err == nil {
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			return Check{Name: "disk", Status: CheckWarn, Detail: fmt.Sprintf("cannot read the free space under %q", root), Fix: "check that it exists"}
		}
		d = parent
	}
	free := st.Bavail * uint64(st.Bsize)
	detail := fmt.Sprintf("%.1f GiB free under %s", float64(free)/(1<<30), root)
	switch {
	case free < diskFail:
		return Check{Name: "disk", Status: CheckFail, Detail: detail, Fix: "free space (`sbxrun prune`, `sbxrun rmi`) or move containerd's root"}
	case free < diskWarn:
		return Check{Name: "disk", Status: CheckWarn, Detail: detail + ", images may not fit", Fix: "free space (`sbxrun prune`, `sbxrun rmi`)"}
	}
	return Check{Name: "disk", Status: CheckOK, Detail: detail}
}

// checkCNI checks the plugins the default network needs (rootless: the
// named networks; the default one is pasta's); they are only
// used with --net bridge or a named network, so missing ones are a warn.
func checkCNI(stateDir string) Check {
	p := netPathsAt(stateDir)
	if p.Rootless {
		// The default network is pasta's (its own check); named
		// networks run the bridge and host-local plugins.
		if err := network.CheckPlugins(p, "bridge", "host-local"); err != nil {
			d, f := splitFix(err.Error())
			return Check{Name: "cni", Status: CheckWarn, Detail: d + " (named networks will not work)", Fix: f}
		}
		return Check{Name: "cni", Status: CheckOK, Detail: "plugins in " + strings.Join(p.PluginDirs, ":") + ", your networks in " + p.ConfDir}
	}
	if err := network.Check(p, network.DefaultNetwork); err != nil {
		d, f := splitFix(err.Error())
		return Check{Name: "cni", Status: CheckWarn, Detail: d + " (--net bridge will not work)", Fix: f}
	}
	detail := "plugins in " + strings.Join(p.PluginDirs, ":")
	if _, _, err := network.Inspect(p, network.DefaultNetwork); err == nil {
		detail += ", default network " + network.DefaultNetwork
	} else {
		detail += ", default network " + network.DefaultNetwork + " (created on first use)"
	}
	return Check{Name: "cni", Status: CheckOK, Detail: detail}
}

// checkGPU reports what `sbxrun gpu status` finds, one check per
// problem. A host without an NVIDIA driver is a warn: everything but GPU
// sandboxes works.
func checkGPU(specDirs []string) []Check {
	problems, err := gpu.Problems(gpu.StatusOptions{SpecDirs: specDirs})
	if err != nil {
		d, f := splitFix(err.Error())
		return []Check{{Name: "nvidia cdi", Status: CheckWarn, Detail: d, Fix: f}}
	}
	var out []Check
	noDriver := false
	for _, p := range problems {
		d, f := splitFix(p.Text)
		if p.Fix != "" {
			d, f = strings.TrimSuffix(p.Text, ": "+p.Fix), p.Fix
		}
		switch {
		case p.Subject == "driver" && errors.Is(p.Err, gpu.ErrNoDriver):
			noDriver = true
			out = append(out, Check{Name: "nvidia driver", Status: CheckWarn, Detail: p.Err.Error() + ", GPU sandboxes will not work", Fix: "install the NVIDIA driver if this host has GPUs"})
		case p.Subject == "driver":
			out = append(out, Check{Name: "nvidia driver", Status: CheckFail, Detail: d, Fix: f})
		case p.Subject == "gpus":
			out = append(out, Check{Name: "nvidia nvml", Status: CheckFail, Detail: d, Fix: nonEmpty(f, "check the driver with nvidia-smi")})
		case p.Subject == "spec":
			out = append(out, Check{Name: "nvidia cdi spec", Status: CheckWarn, Detail: d, Fix: nonEmpty(f, "run `sudo sbxrun gpu setup`")})
		default:
			out = append(out, Check{Name: "nvidia cdi hook", Status: CheckFail, Detail: d, Fix: nonEmpty(f, "run `sudo sbxrun gpu setup`")})
		}
	}
	if len(out) == 0 {
		v, _ := gpu.LoadedDriverVersion()
		out = append(out, Check{Name: "nvidia", Status: CheckOK, Detail: "driver " + v + ", CDI specs and hooks fine (`sbxrun gpu status` shows them)"})
	} else if noDriver && len(out) == 1 {
		out[0].Detail += " (`sbxrun gpu status` shows more)"
	}
	return out
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkCredentialHelpers reports the docker-credential-* helpers the
// Docker config names that are not installed (pulls from their
// registries would fail), and a config that cannot be read.
func checkCredentialHelpers(dir string) []Check {
	file, helpers, err := images.CredentialHelpers(dir)
	if err != nil {
		d, f := splitFix(err.Error())
		return []Check{{Name: "registry credentials", Status: CheckFail, Detail: d, Fix: f}}
	}
	var out []Check
	for _, h := range helpers {
		if h.Path == "" {
			out = append(out, Check{Name: "registry credentials", Status: CheckFail,
				Detail: fmt.Sprintf("%s names %s, which is not on $PATH", file, h),
				Fix:    fmt.Sprintf("install docker-credential-%s or remove it from %s", h.Name, file)})
			continue
		}
		out = append(out, Check{Name: "registry credentials", Status: CheckOK, Detail: fmt.Sprintf("%s at %s", h, h.Path)})
	}
	if len(out) == 0 {
		out = append(out, Check{Name: "registry credentials", Status: CheckOK, Detail: "no credential helper configured (`sbxrun login` stores credentials in " + nonEmpty(file, "~/.docker/config.json") + ")"})
	}
	return out
}
