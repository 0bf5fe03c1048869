package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/gpu"
	"github.com/sbxrun/sbxrun/hooks"
	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime"
)

func gpuCommand() *cli.Command {
	driverRoot := &cli.StringFlag{Name: "driver-root", Usage: "where the NVIDIA driver is installed, for hosts that keep it outside / (/usr/local/nvidia, /run/nvidia/driver)"}
	return &cli.Command{
		Name: "gpu", Usage: "NVIDIA GPUs through CDI: generate the spec, show what sandboxes get", OnUsageError: usageError, HideHelpCommand: true,
		Subcommands: []*cli.Command{
			{
				Name:  "setup",
				Usage: "generate the CDI spec of this host's NVIDIA GPUs (as root)",
				UsageText: "sbxrun gpu setup [--output FILE] [--driver-root DIR] [--if-stale]\n" +
					"   writes devices all, 0..N-1, each UUID and MIG devices; the spec's hooks run this sbxrun binary",
				OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: gpu.DefaultSpecPath, Usage: "spec file to write"},
					driverRoot,
					&cli.BoolFlag{Name: "if-stale", Usage: "do nothing when the spec exists and fits the loaded driver and the host's files"},
				},
				Action: gpuSetup,
			},
			{
				Name:         "status",
				Usage:        "show the driver, the GPUs, the CDI spec files (fresh or stale) and the hook binary's health",
				OnUsageError: usageError,
				Flags:        []cli.Flag{driverRoot},
				Action: func(c *cli.Context) error {
					err := gpu.Status(os.Stdout, gpu.StatusOptions{
						SpecDirs:   runtime.ResolveCDISpecDirs(c.StringSlice("cdi-spec-dir")),
						DriverRoot: c.String("driver-root"),
					})
					if err != nil {
						return &runtime.ExitError{Code: 1, Err: err}
					}
					return nil
				},
			},
		},
	}
}

// gpuSetup is `sbxrun gpu setup`.
func gpuSetup(c *cli.Context) error {
	if c.NArg() > 0 {
		return failf("gpu setup takes no arguments (got %q): see `sbxrun gpu setup --help`", c.Args().First())
	}
	o := gpu.Options{Output: c.String("output"), DriverRoot: c.String("driver-root")}
	if c.Bool("debug") {
		o.Log = os.Stderr
	}
	if c.Bool("if-stale") {
		if !c.IsSet("output") {
			o.Output = ""
		}
		results, err := gpu.SetupIfStale(gpu.IfStaleOptions{Generate: o, SpecDirs: runtime.ResolveCDISpecDirs(c.StringSlice("cdi-spec-dir"))})
		for _, r := range results {
			if len(r.Reasons) == 0 {
				fmt.Printf("%s is up to date\n", r.Path)
				continue
			}
			fmt.Printf("regenerating %s: %s\n", r.Path, strings.Join(r.Reasons, "; "))
			if r.Setup != nil {
				printSetup(r.Setup)
			}
		}
		if err != nil {
			return &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
		}
		return nil
	}
	res, err := gpu.Setup(o)
	if err != nil {
		return &runtime.ExitError{Code: runtime.ExitFailed, Err: err}
	}
	printSetup(res)
	return nil
}

// printSetup reports a spec gpu setup wrote.
func printSetup(res *gpu.Result) {
	driver := res.DriverVersion
	if res.DriverRoot != "" && res.DriverRoot != "/" {
		driver += " under " + res.DriverRoot
	}
	fmt.Printf("wrote %s: %s devices %s; driver %s; hooks run %s as %s (%.0f ms)\n", res.Path, gpu.Kind,
		strings.Join(res.Devices, ", "), driver, res.HookPath, hooks.Name, float64(res.Took.Microseconds())/1000)
	if err := gpu.CheckSpecHook(res.HookPath, res.Path, oci.TrustedUIDs()); err != nil {
		fmt.Fprintf(os.Stderr, "sbxrun: warning: GPU sandboxes will refuse this spec's hooks: %v\n", err)
	}
}
