package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime"
)

func rootlessCommand() *cli.Command {
	return &cli.Command{
		Name:         "rootless",
		Usage:        "set up and run a per-user containerd under RootlessKit (for non-root users)",
		OnUsageError: usageError,
		Subcommands: []*cli.Command{
			{Name: "setup", Usage: "check prerequisites and write the per-user containerd config", OnUsageError: usageError,
				Action: func(c *cli.Context) error { return runtime.RootlessSetup(os.Stdout) }},
			{Name: "start", Usage: "start the per-user containerd in the background", OnUsageError: usageError,
				Action: func(c *cli.Context) error { return runtime.RootlessStart(c.Context, os.Stdout) }},
			{Name: "stop", Usage: "stop the per-user containerd and its sandboxes", OnUsageError: usageError,
				Action: func(c *cli.Context) error { return runtime.RootlessStop(os.Stdout) }},
			{Name: "status", Usage: "show whether it runs, its socket, unmet prerequisites and which limits hold", OnUsageError: usageError,
				Action: func(c *cli.Context) error { return runtime.RootlessStatus(os.Stdout) }},
		},
	}
}
