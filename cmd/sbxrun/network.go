package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime"
)

// networkCommand is `sbxrun network create|ls|inspect|rm|prune`: named
// CNI networks whose sandboxes reach each other by name.
func networkCommand() *cli.Command {
	opts := func(c *cli.Context) runtime.NetworkOptions {
		return runtime.NetworkOptions{Global: global(c), Name: c.Args().First()}
	}
	oneName := func(c *cli.Context, verb string) error {
		if c.NArg() != 1 {
			return failf("network %s takes one network name, got %d arguments: run `sbxrun network %s NAME`", verb, c.NArg(), verb)
		}
		return nil
	}
	return &cli.Command{
		Name:         "network",
		Usage:        "manage networks: sandboxes on one named network reach each other by name (--net NAME)",
		OnUsageError: usageError,
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a network", ArgsUsage: "NAME", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "subnet", Usage: "IPv4 CIDR (default: a free /16 from 10.88.0.0 up)"},
					&cli.BoolFlag{Name: "internal", Usage: "no route out of the network (and no published ports)"},
				},
				Action: func(c *cli.Context) error {
					if err := oneName(c, "create"); err != nil {
						return err
					}
					o := opts(c)
					o.Subnet, o.Internal = c.String("subnet"), c.Bool("internal")
					n, err := runtime.CreateNetwork(o)
					if err != nil {
						return err
					}
					fmt.Println(n.Name)
					return nil
				},
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list networks", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Usage: "table (default) or json"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "names only"},
				},
				Action: func(c *cli.Context) error {
					l, err := runtime.ListNetworks(opts(c))
					if err != nil {
						return err
					}
					switch {
					case c.Bool("quiet"):
						for _, n := range l {
							fmt.Println(n.Name)
						}
						return nil
					case c.String("format") == "json":
						enc := json.NewEncoder(os.Stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(l)
					case c.String("format") != "" && c.String("format") != "table":
						return failf("invalid --format %q: use table or json", c.String("format"))
					}
					tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tSUBNET\tBRIDGE\tINTERNAL\tSANDBOXES")
					for _, n := range l {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\n", n.Name, n.Subnet, n.Bridge, n.Internal, len(n.Members))
					}
					return tw.Flush()
				},
			},
			{
				Name: "inspect", Usage: "show a network, its sandboxes and its CNI configuration", ArgsUsage: "NAME", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					if err := oneName(c, "inspect"); err != nil {
						return err
					}
					n, conf, err := runtime.InspectNetwork(opts(c))
					if err != nil {
						return err
					}
					out := struct {
						Network any             `json:"network"`
						Config  json.RawMessage `json:"config"`
					}{n, conf}
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(out)
				},
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove networks no sandbox uses", ArgsUsage: "NAME...", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return failf("network rm takes network names: run `sbxrun network rm NAME...`")
					}
					var errs []string
					for _, name := range c.Args().Slice() {
						o := opts(c)
						o.Name = name
						if err := runtime.RemoveNetwork(o); err != nil {
							errs = append(errs, errorLine(err))
							continue
						}
						fmt.Println(name)
					}
					if len(errs) > 0 {
						return failf("%s", strings.Join(errs, "; "))
					}
					return nil
				},
			},
			{
				Name: "prune", Usage: "remove every network no sandbox uses (not the default network)", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					removed, err := runtime.PruneNetworks(opts(c))
					for _, n := range removed {
						fmt.Println(n)
					}
					return err
				},
			},
		},
	}
}

// portCommand is `sbxrun port NAME [PORT[/PROTO]]`: the host addresses a
// sandbox's ports are published on.
func portCommand() *cli.Command {
	return &cli.Command{
		Name: "port", Usage: "list a sandbox's published ports, or where one port is published", ArgsUsage: "NAME [PORT[/tcp|/udp]]",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return failf("port takes a sandbox name and optionally a port: run `sbxrun port NAME [PORT]`")
			}
			g := global(c)
			return runtime.Port(c.Context, &g, c.Args().Get(0), c.Args().Get(1), os.Stdout)
		},
	}
}
