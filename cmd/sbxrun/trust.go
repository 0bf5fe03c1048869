package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// trustCommand is `sbxrun trust [DIR]`: the user's explicit yes to a
// project file that asks for more than an untrusted one may (see
// runtime.Trust).
func trustCommand() *cli.Command {
	return &cli.Command{
		Name:      "trust",
		Usage:     "trust a project's sbxrun.yaml (as it is now) to widen what its sandboxes touch",
		ArgsUsage: "[DIR]",
		Description: "A project's sbxrun.yaml comes with the repository you cloned. Until you trust it, it may mount only\n" +
			"paths inside the project and the built-in caches, and may not add capabilities, change security options,\n" +
			"add devices, run privileged or pick a namespace. `sbxrun trust` records the file's SHA-256 in your own state\n" +
			"(" + "$XDG_STATE_HOME/sbxrun/trust.json, ~/.local/state/sbxrun/trust.json); a changed file is untrusted again.",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "list", Usage: "list the trusted files and whether each is unchanged"},
			&cli.BoolFlag{Name: "revoke", Usage: "forget the trust of DIR's project files"},
			&cli.StringFlag{Name: "format", Usage: "with --list: json"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return failf("trust takes one directory, got %d arguments: run `sbxrun trust DIR`", c.NArg())
			}
			o := profiles.TrustOptions{Dir: c.Args().First()}
			switch {
			case c.Bool("list") && c.Bool("revoke"):
				return failf("--list and --revoke cannot be combined: use one")
			case c.Bool("list"):
				l, err := profiles.ListTrusted(o)
				if err != nil {
					return failf("%v", err)
				}
				if c.String("format") == "json" {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(l)
				}
				for _, e := range l {
					fmt.Printf("%-8s %s  sha256:%.12s  %s\n", e.State, e.File, e.SHA256, e.Trusted.Format("2006-01-02 15:04"))
				}
				return nil
			case c.Bool("revoke"):
				removed, err := profiles.Revoke(o)
				if err != nil {
					return failf("%v", err)
				}
				if len(removed) == 0 {
					fmt.Fprintln(os.Stderr, "sbxrun: nothing to revoke: no trusted project file there")
				}
				for _, e := range removed {
					fmt.Printf("revoked %s\n", e.File)
				}
				return nil
			}
			added, err := profiles.Trust(o)
			if err != nil {
				return failf("%v", err)
			}
			for _, e := range added {
				fmt.Printf("trusted %s (sha256:%.12s)\n", e.File, e.SHA256)
			}
			return nil
		},
	}
}
