package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/console"
	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/hooks"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/profiles"
	"github.com/sbxrun/sbxrun/runtime/systemd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newApp() *cli.App {
	// -v is --volume, as in Docker; the version is --version only.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
	return &cli.App{
		Name:                      "sbxrun",
		Usage:                     "run development sandboxes as containerd tasks, without Docker",
		UsageText:                 "sbxrun [global options] PROFILE|IMAGE [run options] [-- COMMAND...]\n   sbxrun [global options] COMMAND [options] [arguments...]",
		Version:                   version,
		EnableBashCompletion:      true,
		DisableSliceFlagSeparator: true,
		UseShortOptionHandling:    true,
		HideHelpCommand:           true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "address", Usage: "containerd socket (env SBXRUN_ADDRESS, CONTAINERD_ADDRESS; default " + runtime.DefaultAddress + ")"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: runtime.DefaultNamespace, EnvVars: []string{"SBXRUN_NAMESPACE"}, Usage: "containerd namespace"},
			&cli.StringFlag{Name: "config", Usage: "extra profile file, layered over the others"},
			&cli.BoolFlag{Name: "debug", Usage: "print more detail"},
			&cli.StringSliceFlag{Name: "cdi-spec-dir", Usage: "CDI spec directory, repeatable, later ones win (env " + runtime.CDISpecDirsEnv + ", colon-separated; default /etc/cdi and /var/run/cdi)"},
		},
		OnUsageError: usageError,
		Commands: []*cli.Command{
			runCommand(), specCommand(), psCommand(), logsCommand(), stopCommand(), killCommand(), rmCommand(), waitCommand(), inspectCommand(),
			execCommand(), gcCommand(), rootlessCommand(), systemdCommand(), gpuCommand(), profilesCommand(), pullCommand(), loadCommand(), saveCommand(),
			imagesCommand(), rmiCommand(), pruneCommand(), loginCommand(), logoutCommand(), versionCommand(), completionCommand(), trustCommand(),
			networkCommand(), portCommand(), doctorCommand(), completeCommand(), generateCommand(), misplacedHookCommand(),
			composeCommand(), kubeCommand(),
			createCommand(), startCommand(),
		},
	}
}

// usageError turns urfave's flag errors into one line and exit 125.
func usageError(c *cli.Context, err error, _ bool) error {
	name := "sbxrun"
	if c.Command != nil && c.Command.Name != "" && c.Command.Name != "sbxrun" {
		name += " " + c.Command.Name
	}
	return &runtime.ExitError{Code: runtime.ExitFailed, Err: fmt.Errorf("%v: see `%s --help`", err, name)}
}

func global(c *cli.Context) runtime.Global {
	return runtime.Global{
		Address:    c.String("address"),
		Namespace:  c.String("namespace"),
		ConfigFile: c.String("config"),
		Debug:      c.Bool("debug"),
	}
}

// errorLine is what sbxrun prints for err: "" for a workload's own exit.
func errorLine(err error) string {
	if err == nil {
		return ""
	}
	var ee *runtime.ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func failf(format string, a ...any) error {
	return &runtime.ExitError{Code: runtime.ExitFailed, Err: fmt.Errorf(format, a...)}
}

func isTerminal(f *os.File) bool {
	_, err := console.ConsoleFromFile(f)
	return err == nil
}

var runFlags = []cli.Flag{
	&cli.StringFlag{Name: "name", Usage: "sandbox name (default PROFILE-XXXXXX)"},
	&cli.BoolFlag{Name: "rm", Value: true, Usage: "remove the sandbox when it exits (--rm=false keeps it)"},
	&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background and print the name"},
	&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin attached"},
	&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a terminal (default when stdin and stdout are terminals)"},
	&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set KEY=VALUE (or KEY from the host)"},
	&cli.StringSliceFlag{Name: "env-file", Usage: "read KEY=VALUE lines from a file"},
	&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "bind mount SRC:DST[:ro]"},
	&cli.StringSliceFlag{Name: "mount", Usage: "mount type=bind|tmpfs,source=SRC,target=DST[,readonly]"},
	&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the sandbox"},
	&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID[:GID] or NAME[:GROUP]"},
	&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit (512m, 8g)"},
	&cli.StringFlag{Name: "memory-swap", Usage: "memory+swap limit, -1 for unlimited swap"},
	&cli.Float64Flag{Name: "cpus", Usage: "CPU quota (1.5)"},
	&cli.Int64Flag{Name: "pids-limit", Usage: "maximum number of processes (-1 unlimited)"},
	&cli.StringFlag{Name: "shm-size", Usage: "size of /dev/shm (2g)"},
	&cli.StringFlag{Name: "net", Aliases: []string{"network"}, Usage: "network: bridge (the default: the network named sbxrun, created on first use), host, none, a network's name, or container:NAME (a running sandbox's)"},
	&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish [IP:][HOSTPORT:]PORT[/tcp|/udp] (ranges too) on 127.0.0.1 (or default_publish_address) unless IP is given"},
	&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish the image's EXPOSEd ports on free host ports"},
	&cli.StringSliceFlag{Name: "network-alias", Usage: "another name the sandbox has on its named network"},
	&cli.StringSliceFlag{Name: "add-host", Usage: "add HOST:IP to the sandbox's /etc/hosts (IP host-gateway: the network's gateway), repeatable"},
	&cli.StringSliceFlag{Name: "dns", Usage: "DNS server for the sandbox's /etc/resolv.conf, in place of the host's, repeatable"},
	&cli.StringSliceFlag{Name: "dns-search", Usage: "DNS search domain, in place of the host's, repeatable"},
	&cli.StringSliceFlag{Name: "dns-option", Usage: "resolv.conf option (ndots:2), in place of the host's, repeatable"},
	&cli.StringFlag{Name: "pull", Usage: "pull policy: missing, always or never"},
	&cli.StringFlag{Name: "entrypoint", Usage: "replace the image's entrypoint (\"\" clears it)"},
	&cli.StringFlag{Name: "hostname", Usage: "sandbox hostname"},
	&cli.BoolFlag{Name: "read-only", Usage: "mount the root filesystem read-only"},
	&cli.StringFlag{Name: "userns", Usage: "keep-id (the default: what the sandbox writes to your workspace and caches is yours on the host) or host (the image's user as is)"},
	&cli.StringSliceFlag{Name: "cap-add", Usage: "add a capability"},
	&cli.StringSliceFlag{Name: "cap-drop", Usage: "drop a capability (ALL for all)"},
	&cli.StringSliceFlag{Name: "security-opt", Usage: "no-new-privileges[=false], seccomp=unconfined|FILE, apparmor=unconfined|PROFILE"},
	&cli.BoolFlag{Name: "privileged", Usage: "all capabilities and devices, no seccomp or AppArmor (explicit only)"},
	&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "container label KEY=VALUE"},
	&cli.IntFlag{Name: "stop-timeout", Usage: "seconds to wait after the stop signal before SIGKILL (default 10)"},
	&cli.StringFlag{Name: "stop-signal", Usage: "signal that stops the sandbox (default SIGTERM)"},
	&cli.BoolFlag{Name: "sig-proxy", Value: true, Usage: "forward signals sbxrun receives to the workload"},
	&cli.IntFlag{Name: "oom-score-adj", Usage: "the workload's oom_score_adj, -1000 to 1000 (default 0, as Docker)"},
	&cli.BoolFlag{Name: "allow-unsafe-mounts", Usage: "allow mounting the host's / or the containerd/Docker sockets"},
	&cli.StringFlag{Name: "gpus", Usage: "NVIDIA GPUs through CDI: all, a count (2), indices (0,2), device=UUID, or none"},
	&cli.StringSliceFlag{Name: "device", Usage: "CDI device VENDOR/CLASS=NAME (nvidia.com/gpu=0), repeatable"},
	&cli.BoolFlag{Name: "best-effort-limits", Usage: "rootless: run without the limits this host cannot enforce (with a warning) instead of refusing"},
	// systemd-notify is what a unit from `sbxrun systemd generate` passes:
	// report readiness to systemd, and stop the workload on SIGTERM.
	&cli.BoolFlag{Name: "systemd-notify", Hidden: true},
}

// runOptions turns run flags into runtime.RunOptions.
func runOptions(c *cli.Context) (*runtime.RunOptions, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return nil, failf("no profile or image given: try `sbxrun base -- CMD` (`sbxrun profiles` lists profiles)")
	}
	o := &runtime.RunOptions{
		Global:            global(c),
		Target:            args[0],
		Name:              c.String("name"),
		Remove:            c.Bool("rm"),
		Detach:            c.Bool("detach"),
		Interactive:       c.Bool("interactive"),
		TTY:               c.Bool("tty"),
		SigProxy:          c.Bool("sig-proxy"),
		AllowUnsafeMounts: c.Bool("allow-unsafe-mounts"),
		CDISpecDirs:       c.StringSlice("cdi-spec-dir"),
		Publish:           c.StringSlice("publish"),
		NetworkAliases:    c.StringSlice("network-alias"),
		PublishAll:        c.Bool("publish-all"),
	}
	if c.IsSet("oom-score-adj") {
		v := c.Int("oom-score-adj")
		o.OOMScoreAdj = &v
	}
	rest := args[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	o.Args = rest
	if !c.IsSet("tty") && !o.Detach && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
		o.TTY, o.Interactive = true, true
	}
	flags, err := flagLayer(c)
	if err != nil {
		return nil, &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
	}
	o.Flags = flags
	return o, nil
}

// flagLayer is the command line as the last profile layer.
func flagLayer(c *cli.Context) (*profiles.Profile, error) {
	p := &profiles.Profile{}
	str := func(name string) *string {
		if !c.IsSet(name) {
			return nil
		}
		v := c.String(name)
		return &v
	}
	p.Workdir = str("workdir")
	p.User = str("user")
	p.Memory = str("memory")
	p.MemorySwap = str("memory-swap")
	p.ShmSize = str("shm-size")
	p.Network = str("net")
	p.Userns = str("userns")
	p.Pull = str("pull")
	p.Hostname = str("hostname")
	p.StopSignal = str("stop-signal")
	p.GPUs = str("gpus")
	p.Devices = c.StringSlice("device")
	p.AddHosts = c.StringSlice("add-host")
	p.DNS = c.StringSlice("dns")
	p.DNSSearch = c.StringSlice("dns-search")
	p.DNSOptions = c.StringSlice("dns-option")
	if c.IsSet("cpus") {
		v := c.Float64("cpus")
		p.CPUs = &v
	}
	if c.IsSet("pids-limit") {
		v := c.Int64("pids-limit")
		p.PidsLimit = &v
	}
	if c.IsSet("stop-timeout") {
		v := c.Int("stop-timeout")
		p.StopTimeout = &v
	}
	if c.IsSet("read-only") {
		v := c.Bool("read-only")
		p.ReadOnly = &v
	}
	if c.IsSet("best-effort-limits") {
		v := c.Bool("best-effort-limits")
		p.BestEffortLimits = &v
	}
	if c.IsSet("privileged") {
		v := c.Bool("privileged")
		p.Privileged = &v
	}
	if c.IsSet("entrypoint") {
		p.Entrypoint = []string{}
		if v := c.String("entrypoint"); v != "" {
			p.Entrypoint = []string{v}
		}
	}
	p.CapAdd = c.StringSlice("cap-add")
	p.CapDrop = c.StringSlice("cap-drop")
	p.SecurityOpt = c.StringSlice("security-opt")

	// Environment: --env-file first, then -e (Docker's precedence).
	for _, f := range c.StringSlice("env-file") {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("--env-file %q: %w", f, errors.Unwrap(err))
		}
		kvs, err := oci.ParseEnvFile(fh, f, os.LookupEnv)
		fh.Close()
		if err != nil {
			return nil, err
		}
		setEnv(p, kvs)
	}
	for _, e := range c.StringSlice("env") {
		k, v, ok, err := resolveEnvFlag(e, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		if ok {
			setEnv(p, []string{k + "=" + v})
		}
	}

	for _, v := range c.StringSlice("volume") {
		m, err := profiles.ParseMountSpec(v)
		if err != nil {
			return nil, err
		}
		p.Mounts = append(p.Mounts, m)
	}
	for _, v := range c.StringSlice("mount") {
		m, err := oci.ParseMountFlag(v)
		if err != nil {
			return nil, err
		}
		p.Mounts = append(p.Mounts, mountSpec(m))
	}
	if labels := c.StringSlice("label"); len(labels) > 0 {
		p.Labels = map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if k == "" || strings.HasPrefix(k, "sbxrun.") {
				return nil, fmt.Errorf("invalid --label %q: use KEY=VALUE with a key outside sbxrun.*", l)
			}
			p.Labels[k] = v
		}
	}
	return p, nil
}

func setEnv(p *profiles.Profile, kvs []string) {
	if p.Env == nil {
		p.Env = map[string]string{}
	}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		p.Env[k] = v
	}
}

func mountSpec(m oci.Mount) profiles.MountSpec {
	return profiles.MountSpec{Type: m.Type, Source: m.Source, Target: m.Destination, ReadOnly: m.ReadOnly, Options: m.Options}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:         "run",
		Usage:        "run a command in a sandbox (the default command: `sbxrun PROFILE -- CMD`)",
		ArgsUsage:    "[options] PROFILE|IMAGE [options] [-- COMMAND...]",
		Flags:        runFlags,
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			o, err := runOptions(c)
			if err != nil {
				return err
			}
			if c.Bool("systemd-notify") {
				systemd.Notify(o, os.Stderr)
			}
			return runtime.Run(c.Context, o)
		},
	}
}

func specCommand() *cli.Command {
	return &cli.Command{
		Name:         "spec",
		Usage:        "print the OCI config.json that run would use",
		ArgsUsage:    "[options] PROFILE|IMAGE [options] [-- COMMAND...]",
		Flags:        runFlags,
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			o, err := runOptions(c)
			if err != nil {
				return err
			}
			if o.Name == "" {
				o.Name = "spec"
			}
			o.TTY = c.Bool("tty")
			return runtime.Spec(c.Context, o, os.Stdout)
		},
	}
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name:         "ps",
		Usage:        "list sandboxes",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "include sandboxes that are not running"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print the names only"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "name=NAME, status=created|running|paused|exited or label=KEY[=VALUE], repeatable"},
			&cli.StringFlag{Name: "format", Value: "table", Usage: "table, json, or a Go template: '{{.Names}} {{.Status}}', 'table {{.Names}}\\t{{.Image}}'"},
		},
		Action: func(c *cli.Context) error {
			g := global(c)
			return ps(c.Context, &g, psOptions{PsOptions: runtime.PsOptions{All: c.Bool("all"), Filters: c.StringSlice("filter")}, Quiet: c.Bool("quiet"), Format: c.String("format")}, os.Stdout)
		},
	}
}

// eachSandbox runs do for each sandbox named on the command line, or with
// --all for each one List selects (every sandbox, or the running ones when
// running is set), prints each name it succeeded for, as Docker does, and
// returns the failures as one exit 125.
func eachSandbox(c *cli.Context, verb string, running bool, do func(g *runtime.Global, name string) error) error {
	g := global(c)
	names := c.Args().Slice()
	switch {
	case c.Bool("all") && len(names) > 0:
		return failf("%s: give sandbox names or --all, not both", verb)
	case c.Bool("all"):
		var err error
		if names, err = runtime.Names(c.Context, &g, !running); err != nil {
			return err
		}
	case len(names) == 0:
		return failf("%s needs a sandbox name: `sbxrun %s NAME...`, or --all", verb, verb)
	}
	var errs []error
	for _, n := range names {
		if err := do(&g, n); err != nil {
			errs = append(errs, errors.New(errorLine(err)))
			continue
		}
		fmt.Println(n)
	}
	if len(errs) > 0 {
		return &runtime.ExitError{Code: runtime.ExitFailed, Err: errors.Join(errs...)}
	}
	return nil
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name: "stop", Usage: "stop sandboxes (stop signal, then SIGKILL after the timeout)", ArgsUsage: "NAME...", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "time", Aliases: []string{"t", "timeout"}, Value: -1, Usage: "seconds to wait before SIGKILL (default: the sandbox's stop timeout)"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "stop every running sandbox"},
		},
		Action: func(c *cli.Context) error {
			t := time.Duration(c.Int("time")) * time.Second
			return eachSandbox(c, "stop", true, func(g *runtime.Global, n string) error {
				return runtime.Stop(c.Context, g, n, t)
			})
		},
	}
}

func killCommand() *cli.Command {
	return &cli.Command{
		Name: "kill", Usage: "send a signal to sandboxes", ArgsUsage: "NAME...", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Value: "KILL", Usage: "signal name or number"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "signal every running sandbox"},
		},
		Action: func(c *cli.Context) error {
			if err := runtime.CheckSignal(c.String("signal")); err != nil {
				return err
			}
			return eachSandbox(c, "kill", true, func(g *runtime.Global, n string) error {
				return runtime.Kill(c.Context, g, n, c.String("signal"))
			})
		},
	}
}

func rmCommand() *cli.Command {
	return &cli.Command{
		Name: "rm", Usage: "remove sandboxes (never their bind mounts or caches)", ArgsUsage: "NAME...", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill a running sandbox first"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "remove every sandbox (running ones only with --force)"},
		},
		Action: func(c *cli.Context) error {
			return eachSandbox(c, "rm", false, func(g *runtime.Global, n string) error {
				return runtime.Remove(c.Context, g, []string{n}, c.Bool("force"))
			})
		},
	}
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name: "wait", Usage: "wait until sandboxes stop and print their exit codes", ArgsUsage: "NAME...", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return failf("wait needs a sandbox name: `sbxrun wait NAME...`")
			}
			g := global(c)
			var errs []error
			for _, n := range c.Args().Slice() {
				code, err := runtime.Wait(c.Context, &g, n)
				if err != nil {
					errs = append(errs, errors.New(errorLine(err)))
					continue
				}
				fmt.Println(code)
			}
			if len(errs) > 0 {
				return &runtime.ExitError{Code: runtime.ExitFailed, Err: errors.Join(errs...)}
			}
			return nil
		},
	}
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name: "inspect", Usage: "print sandboxes as a JSON array (Docker's .Id, .Name, .State, .Config, and the OCI spec)", ArgsUsage: "NAME...", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return failf("inspect needs a sandbox name: `sbxrun inspect NAME...`")
			}
			g := global(c)
			return runtime.Inspect(c.Context, &g, c.Args().Slice(), os.Stdout)
		},
	}
}

func oneName(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", failf("%s takes one sandbox name: `sbxrun %s NAME` (`sbxrun ps -a` lists them)", what, what)
	}
	return c.Args().First(), nil
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name: "logs", Usage: "print the output of a detached or kept (--rm=false) sandbox", ArgsUsage: "NAME", OnUsageError: usageError,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing until the sandbox stops"}},
		Action: func(c *cli.Context) error {
			name, err := oneName(c, "logs")
			if err != nil {
				return err
			}
			g := global(c)
			return runtime.Logs(c.Context, &g, name, c.Bool("follow"), os.Stdout)
		},
	}
}

func execCommand() *cli.Command {
	return &cli.Command{
		Name: "exec", Usage: "run another command in a running sandbox", ArgsUsage: "[options] NAME -- COMMAND...", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin attached"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a terminal"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set KEY=VALUE"},
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID[:GID] or NAME[:GROUP], names from the sandbox's /etc/passwd"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return failf("exec needs a sandbox name and a command: `sbxrun exec NAME -- sh`")
			}
			cmd := args[1:]
			if len(cmd) > 0 && cmd[0] == "--" {
				cmd = cmd[1:]
			}
			g := global(c)
			var env []string
			for _, e := range c.StringSlice("env") {
				k, v, ok, err := resolveEnvFlag(e, os.LookupEnv)
				if err != nil {
					return &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
				}
				if ok {
					env = append(env, k+"="+v)
				}
			}
			o := &runtime.ExecOptions{Name: args[0], Args: cmd, Env: env, Workdir: c.String("workdir"), User: c.String("user"),
				Interactive: c.Bool("interactive"), TTY: c.Bool("tty"), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
			if !c.IsSet("tty") && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
				o.TTY, o.Interactive = true, true
			}
			return runtime.Exec(c.Context, &g, o)
		},
	}
}

func gcCommand() *cli.Command {
	return &cli.Command{
		Name: "gc", Usage: "remove sandboxes left by killed sbxrun processes and ended detached --rm sandboxes", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			g := global(c)
			return runtime.GC(c.Context, &g, os.Stdout)
		},
	}
}

func loadOptions(c *cli.Context) profiles.LoadOptions {
	return profiles.LoadOptions{ConfigFile: c.String("config")}
}

func profilesCommand() *cli.Command {
	list := func(c *cli.Context) error {
		profs, err := profiles.Load(loadOptions(c))
		if err != nil {
			return &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
		}
		for _, n := range profs.Names() {
			fmt.Printf("%-12s %s\n", n, profs.Description(n))
		}
		return nil
	}
	return &cli.Command{
		Name: "profiles", Usage: "list profiles, or show one resolved with where each value came from", OnUsageError: usageError,
		Action: list,
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list profiles", Action: list},
			{Name: "show", Usage: "print a resolved profile and the source of each value", ArgsUsage: "NAME", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					name, err := oneName(c, "profiles show")
					if err != nil {
						return err
					}
					profs, err := profiles.Load(loadOptions(c))
					if err != nil {
						return &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
					}
					if !profs.Has(name) {
						return failf("no profile named %q: `sbxrun profiles` lists them", name)
					}
					r, err := profs.Resolve(name, nil)
					if err != nil {
						return &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
					}
					return r.Describe(os.Stdout)
				}},
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name: "version", Usage: "print sbxrun's and containerd's versions", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			fmt.Printf("sbxrun %s\n", version)
			g := global(c)
			v, err := runtime.ServerVersion(c.Context, &g)
			if err != nil {
				// sbxrun's own version is the answer asked for; the daemon's
				// absence is said, not failed on (a fresh install, a
				// package check in a root without a daemon). `sbxrun
				// doctor` is the command that fails on it.
				fmt.Fprintf(os.Stderr, "containerd: %v\n", err)
				return nil
			}
			fmt.Printf("containerd %s\n", v)
			return nil
		},
	}
}

// misplacedHookCommand catches the hook entry point behind global flags
// (`sbxrun --debug nvidia-cdi-hook ...`), which main's dispatch does not
// see and which would otherwise be taken for an image name.
func misplacedHookCommand() *cli.Command {
	return &cli.Command{
		Name: hooks.Name, Hidden: true, SkipFlagParsing: true,
		Action: func(*cli.Context) error {
			return failf("%s is the CDI hook entry point runc calls: run it as `sbxrun %s HOOK ...`, with nothing before it", hooks.Name, hooks.Name)
		},
	}
}
