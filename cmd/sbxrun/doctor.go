package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:         "doctor",
		Usage:        "check what sbxrun needs from this host, each problem with its fix (exit 1 when something fails)",
		UsageText:    "sbxrun doctor [--format json]",
		OnUsageError: usageError,
		Flags:        []cli.Flag{&cli.StringFlag{Name: "format", Usage: "output format: text or json (an array of {name, status, detail, fix})"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return failf("doctor takes no arguments (got %q): see `sbxrun doctor --help`", c.Args().First())
			}
			format := c.String("format")
			if format != "" && format != "text" && format != "json" {
				return failf("invalid doctor --format %q: use text or json", format)
			}
			checks := runtime.Doctor(c.Context, runtime.DoctorOptions{Global: global(c), CDISpecDirs: c.StringSlice("cdi-spec-dir")})
			if format == "json" {
				b, err := json.MarshalIndent(checks, "", "  ")
				if err != nil {
					return failf("encoding the checks: %w", err)
				}
				fmt.Println(string(b))
			} else {
				for _, ch := range checks {
					fmt.Println(ch)
				}
			}
			if runtime.Failed(checks) {
				return &runtime.ExitError{Code: 1}
			}
			return nil
		},
	}
}

// checksHost reports whether args run `sbxrun doctor` (after any global
// flags): doctor checks the host as the invoking user sees it, so it
// stays outside a rootless containerd's namespaces, where the user would
// be root and the host's files (subuid, /dev/net/tun) another's.
func checksHost(args []string) bool {
	takesValue, _ := flagArity(newApp().Flags)
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return false
		}
		if strings.HasPrefix(a, "-") {
			if name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "="); !hasValue && takesValue[name] {
				i++
			}
			continue
		}
		return a == "doctor"
	}
	return false
}
