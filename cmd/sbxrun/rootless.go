package main

import (
	"fmt"
	"os"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/rootless"
	"github.com/sbxrun/sbxrun/runtime/systemd"
)

func rootlessCommand() *cli.Command {
	return &cli.Command{
		Name:         "rootless",
		Usage:        "set up and run a per-user containerd under RootlessKit (for non-root users)",
		OnUsageError: usageError,
		Subcommands: []*cli.Command{
			{Name: "setup", Usage: "check prerequisites and write the per-user containerd config", OnUsageError: usageError,
				Flags: []cli.Flag{&cli.BoolFlag{Name: "systemd", Usage: "also install a systemd --user unit that starts it at login (or boot, with lingering)"}},
				Action: func(c *cli.Context) error {
					if err := rootless.Setup(os.Stdout); err != nil {
						return err
					}
					if c.Bool("systemd") {
						return installRootlessUnit()
					}
					return nil
				}},
			{Name: "start", Usage: "start the per-user containerd in the background", OnUsageError: usageError,
				Flags: []cli.Flag{&cli.BoolFlag{Name: "foreground", Usage: "stay in the foreground (for a service manager; Type=notify)"}},
				Action: func(c *cli.Context) error {
					ready := func() { _, _ = daemon.SdNotify(false, daemon.SdNotifyReady) }
					return rootless.Start(c.Context, os.Stdout, c.Bool("foreground"), ready, runtime.StopAll)
				}},
			{Name: "stop", Usage: "stop the per-user containerd and its sandboxes", OnUsageError: usageError,
				Action: func(c *cli.Context) error { return rootless.Stop(os.Stdout, runtime.StopAll) }},
			{Name: "status", Usage: "show whether it runs, its socket, unmet prerequisites and which limits hold", OnUsageError: usageError,
				Action: func(c *cli.Context) error { return rootless.Status(os.Stdout) }},
		},
	}
}

// installRootlessUnit writes sbxrun-containerd.service for the user's
// systemd and prints the commands that enable it.
func installRootlessUnit() error {
	exe, err := os.Executable()
	if err != nil {
		return failf("finding the sbxrun binary: %v", err)
	}
	text, err := systemd.RootlessDaemonUnit(exe)
	if err != nil {
		return failf("%v", err)
	}
	dir, err := systemd.UnitDir(systemd.User)
	if err != nil {
		return failf("%v", err)
	}
	path, replaced, err := systemd.Install(dir, systemd.RootlessDaemonName, text)
	if err != nil {
		return failf("%v", err)
	}
	fmt.Printf("wrote %s; enable and start it with:\n", path)
	for _, c := range systemd.Commands(systemd.User, systemd.RootlessDaemonName, replaced) {
		fmt.Println("  " + c)
	}
	return nil
}
