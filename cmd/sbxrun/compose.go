package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/compose"
	"github.com/sbxrun/sbxrun/runtime"
)

// composeCommand is `sbxrun compose`: a compose file's services as
// sandboxes (compose loads and maps, runtime runs them through Run).
func composeCommand() *cli.Command {
	services := func(c *cli.Context) []string { return c.Args().Slice() }
	return &cli.Command{
		Name:  "compose",
		Usage: "run the services of a compose file as sandboxes (up, down, ps, logs, exec, run, config, ...)",
		Description: "Reads compose.yaml (or -f FILE) with the Compose specification's own loader. Until you trust the project\n" +
			"(`sbxrun trust DIR`), its compose files may mount only paths inside the project and the built-in caches, and may\n" +
			"not ask for privileged, capabilities, security options, devices or host namespaces. See README, Compose.",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "compose file, repeatable (default compose.yaml and its override, or COMPOSE_FILE)"},
			&cli.StringFlag{Name: "project-name", Aliases: []string{"p"}, Usage: "project name (default COMPOSE_PROJECT_NAME, name:, or the directory's name)"},
			&cli.StringSliceFlag{Name: "profile", Usage: "enable a compose profile, repeatable (default COMPOSE_PROFILES)"},
			&cli.StringSliceFlag{Name: "env-file", Usage: "file of variables for interpolation (default .env of the project directory)"},
			&cli.StringFlag{Name: "project-directory", Usage: "project directory (default the first compose file's)"},
		},
		Subcommands: []*cli.Command{
			{
				Name: "config", Usage: "print the resolved compose model (and refuse or warn as up would)", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "services", Usage: "print the service names only"},
					&cli.StringFlag{Name: "format", Value: "yaml", Usage: "yaml or json"},
				},
				Action: func(c *cli.Context) error {
					p, plan, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					for _, w := range plan.Plan.Warnings {
						fmt.Fprintln(os.Stderr, "sbxrun: warning: "+w)
					}
					if c.Bool("services") {
						for _, s := range plan.Plan.Services {
							fmt.Println(s.Name)
						}
						return nil
					}
					var b []byte
					switch c.String("format") {
					case "yaml":
						b = p.ConfigYAML
					case "json":
						b = p.ConfigJSON
					default:
						return failf("unknown --format %q: use yaml or json", c.String("format"))
					}
					_, err = os.Stdout.Write(b)
					return err
				},
			},
			{
				Name: "up", Usage: "create and start the services", ArgsUsage: "[SERVICE...]", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "start the services and return"},
					&cli.BoolFlag{Name: "wait", Usage: "return once every service runs and is healthy (implies -d); exit 125 naming one that is not"},
					&cli.IntFlag{Name: "wait-timeout", Usage: "seconds --wait waits at most (default no limit)"},
				},
				Action: func(c *cli.Context) error {
					_, o, err := loadPlan(c, services(c))
					if err != nil {
						return err
					}
					ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
					defer stop()
					return runtime.ProjectUp(ctx, o, runtime.UpOptions{Services: services(c), Detach: c.Bool("detach"), Wait: c.Bool("wait"),
						WaitTimeout: secs(c.Int("wait-timeout"))})
				},
			},
			{
				Name: "down", Usage: "stop and remove the project's sandboxes and networks (and volumes with -v)", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "volumes", Aliases: []string{"v"}, Usage: "remove the project's named volumes too"},
					&cli.BoolFlag{Name: "remove-orphans", Usage: "remove the project's sandboxes of services the file no longer has"},
				},
				Action: func(c *cli.Context) error {
					_, o, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					return runtime.ProjectDown(c.Context, o, runtime.DownOptions{Volumes: c.Bool("volumes"), RemoveOrphans: c.Bool("remove-orphans")})
				},
			},
			{
				Name: "ps", Usage: "list the project's sandboxes with state, health and ports", OnUsageError: usageError,
				Flags: []cli.Flag{&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"}},
				Action: func(c *cli.Context) error {
					format := c.String("format")
					if format != "table" && format != "json" {
						return fmt.Errorf("unknown --format %q: use table or json", format)
					}
					_, o, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					rows, err := runtime.ProjectPs(c.Context, o)
					if err != nil {
						return err
					}
					return printProjectPs(c.App.Writer, rows, format)
				},
			},
			{
				Name: "logs", Usage: "print the services' output", ArgsUsage: "[SERVICE...]", OnUsageError: usageError,
				Flags: []cli.Flag{&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing"}},
				Action: func(c *cli.Context) error {
					_, o, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					return runtime.ProjectLogs(c.Context, o, services(c), c.Bool("follow"))
				},
			},
			{
				Name: "exec", Usage: "run a command in a service's running sandbox", ArgsUsage: "SERVICE -- COMMAND...", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "no-TTY", Aliases: []string{"T"}, Usage: "no terminal (default: one when stdin and stdout are terminals)"},
					&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set KEY=VALUE"},
					&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory"},
					&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID[:GID] or NAME[:GROUP]"},
				},
				Action: func(c *cli.Context) error {
					svc, cmd, err := serviceAndCommand(c, "exec")
					if err != nil {
						return err
					}
					if len(cmd) == 0 {
						return failf("exec needs a command: `sbxrun compose exec %s -- sh`", svc)
					}
					_, o, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					e := &runtime.ExecOptions{Args: cmd, Env: c.StringSlice("env"), Workdir: c.String("workdir"), User: c.String("user"),
						Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
					if !c.Bool("no-TTY") && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
						e.TTY, e.Interactive = true, true
					}
					return runtime.ProjectExec(c.Context, o, svc, e)
				},
			},
			{
				Name: "run", Usage: "run a one-off sandbox of a service", ArgsUsage: "SERVICE [-- COMMAND...]", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "rm", Usage: "remove the sandbox when it ends"},
					&cli.BoolFlag{Name: "no-TTY", Aliases: []string{"T"}, Usage: "no terminal"},
				},
				Action: func(c *cli.Context) error {
					svc, cmd, err := serviceAndCommand(c, "run")
					if err != nil {
						return err
					}
					_, o, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					r := runtime.ProjectRunOptions{Service: svc, Args: cmd, Remove: c.Bool("rm")}
					if !c.Bool("no-TTY") && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
						r.TTY, r.Interactive = true, true
					}
					return runtime.ProjectRun(c.Context, o, r)
				},
			},
			projectVerb("start", "start the services' sandboxes that are not running", runtime.ProjectStart),
			projectVerb("stop", "stop the services' sandboxes (they stay until down)", runtime.ProjectStop),
			projectVerb("restart", "stop, then start, the services", runtime.ProjectRestart),
			projectVerb("pull", "pull the services' images", runtime.ProjectPull),
			{
				Name: "spec", Usage: "print the OCI spec of a service's sandbox (as `sbxrun spec` does)", ArgsUsage: "SERVICE", Hidden: true, OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return failf("spec takes one service: `sbxrun compose spec SERVICE`")
					}
					_, o, err := loadPlan(c, nil)
					if err != nil {
						return err
					}
					return runtime.ProjectSpec(c.Context, o, c.Args().First(), os.Stdout)
				},
			},
		},
	}
}

// projectVerb is a subcommand that takes service names.
func projectVerb(name, usage string, do func(ctx context.Context, o *runtime.ProjectOptions, services []string) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "[SERVICE...]", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			_, o, err := loadPlan(c, nil)
			if err != nil {
				return err
			}
			return do(c.Context, o, c.Args().Slice())
		},
	}
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// serviceAndCommand splits SERVICE [--] CMD....
func serviceAndCommand(c *cli.Context, verb string) (string, []string, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return "", nil, failf("%s needs a service: `sbxrun compose %s SERVICE -- COMMAND`", verb, verb)
	}
	cmd := args[1:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	return args[0], cmd, nil
}

// loadPlan loads the project of the compose flags (on the parent
// compose command) and plans services (all when none).
func loadPlan(c *cli.Context, services []string) (*compose.Loaded, *runtime.ProjectOptions, error) {
	pc := c // the compose command's flags
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name == "compose" {
			pc = l
		}
	}
	return loadProjectPlan(c, compose.Options{
		Files: pc.StringSlice("file"), Project: pc.String("project-name"), Profiles: pc.StringSlice("profile"),
		EnvFiles: pc.StringSlice("env-file"), WorkingDir: pc.String("project-directory"),
	}, services, c.Command.Name == "config")
}

// loadProjectPlan loads, checks and plans a compose project through the
// loader program (compose.LoadPlan): `sbxrun compose` and `kube generate
// --compose`. config asks for the model as well.
func loadProjectPlan(c *cli.Context, co compose.Options, services []string, config bool) (*compose.Loaded, *runtime.ProjectOptions, error) {
	g := global(c)
	home, _ := os.UserHomeDir()
	l, err := compose.LoadPlan(c.Context, compose.Request{Options: co, Home: home, Config: config,
		Plan: compose.PlanOptions{VolumesDir: runtime.ProjectVolumesDir(&g), Services: services}})
	if err != nil {
		return nil, nil, &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
	}
	return l, &runtime.ProjectOptions{Global: g, Plan: l.Plan, CDISpecDirs: c.StringSlice("cdi-spec-dir")}, nil
}
