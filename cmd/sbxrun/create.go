package main

import (
	"errors"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime"
)

// createCommand is Docker's `create`: run's flags, a sandbox made and not
// started, its name printed. As in Docker it is kept (no --rm) unless
// --rm is given, and gets a terminal only with -t.
func createCommand() *cli.Command {
	return &cli.Command{
		Name:         "create",
		Usage:        "create a sandbox without starting it (`sbxrun start NAME` starts it)",
		ArgsUsage:    "[options] PROFILE|IMAGE [options] [-- COMMAND...]",
		Flags:        runFlags,
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.Bool("detach") {
				return failf("create takes no -d: a created sandbox starts detached with `sbxrun start NAME` (add -a to attach)")
			}
			o, err := runOptions(c)
			if err != nil {
				return err
			}
			o.Remove = c.IsSet("rm") && c.Bool("rm")
			o.TTY, o.Interactive = c.Bool("tty"), c.Bool("interactive")
			return runtime.Create(c.Context, o)
		},
	}
}

// startCommand is Docker's `start`: created (or exited) sandboxes run,
// detached with their names printed, or with -a attached to one, whose
// exit status it returns.
func startCommand() *cli.Command {
	return &cli.Command{
		Name: "start", Usage: "start created sandboxes", ArgsUsage: "[-a] [-i] NAME...", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "attach", Aliases: []string{"a"}, Usage: "attach the output and return the workload's exit status"},
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "attach stdin"},
		},
		Action: func(c *cli.Context) error {
			names := c.Args().Slice()
			switch {
			case len(names) == 0:
				return failf("start needs a sandbox name: `sbxrun start [-a] NAME...`")
			case c.Bool("attach") && len(names) > 1:
				return failf("start -a attaches to one sandbox: give one name")
			}
			if c.Bool("attach") || c.Bool("interactive") {
				g := global(c)
				return runtime.Start(c.Context, &g, &runtime.StartOptions{Name: names[0], Attach: true, Interactive: c.Bool("interactive"),
					Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
			}
			var errs []error
			for _, n := range names {
				g := global(c)
				if err := runtime.Start(c.Context, &g, &runtime.StartOptions{Name: n, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}); err != nil {
					errs = append(errs, err)
				}
			}
			return joinFailures(errs)
		},
	}
}

// joinFailures is the failures of a command over several sandboxes as one
// exit 125 with a line each.
func joinFailures(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	lines := make([]error, 0, len(errs))
	for _, err := range errs {
		lines = append(lines, errors.New(errorLine(err)))
	}
	return &runtime.ExitError{Code: runtime.ExitFailed, Err: errors.Join(lines...)}
}
