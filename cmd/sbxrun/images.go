package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	units "github.com/docker/go-units"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/runtime"
)

// registryFlags say how to reach registries.
var registryFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "hosts-dir", Usage: "directory of HOST/hosts.toml files, searched before ~/.config/containerd/certs.d and /etc/containerd/certs.d (repeatable)"},
	&cli.StringSliceFlag{Name: "insecure-registry", Usage: "registry HOST[:PORT] reached without TLS verification, or plain HTTP (repeatable; localhost needs none; the mirrors its hosts.toml names keep their own TLS settings)"},
}

func registryOptions(c *cli.Context) images.RegistryOptions {
	return images.RegistryOptions{HostsDirs: c.StringSlice("hosts-dir"), Insecure: c.StringSlice("insecure-registry")}
}

func pullCommand() *cli.Command {
	return &cli.Command{
		Name: "pull", Usage: "pull the images of profiles or image references", ArgsUsage: "PROFILE|IMAGE...", OnUsageError: usageError,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] to pull (default: this host's)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress; print the pulled names"},
		}, registryFlags...),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return failf("pull needs a profile or image: `sbxrun pull base`")
			}
			g := global(c)
			return runtime.PullImages(c.Context, &g, runtime.PullOptions{
				Load: loadOptions(c), Targets: c.Args().Slice(), Platform: c.String("platform"), Quiet: c.Bool("quiet"),
				Registry: registryOptions(c),
			})
		},
	}
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name: "load", Usage: "import images from an OCI layout or docker-archive tarball (plain, gzip or zstd)", OnUsageError: usageError,
		Flags: []cli.Flag{&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "archive file (default stdin)"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return failf("load takes the archive as -i FILE, not %q", c.Args().First())
			}
			g := global(c)
			return runtime.LoadImages(c.Context, &g, c.String("input"), os.Stdin, os.Stdout)
		},
	}
}

func saveCommand() *cli.Command {
	return &cli.Command{
		Name: "save", Usage: "write images to a tarball for `sbxrun load` on another host", ArgsUsage: "PROFILE|IMAGE...", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "archive file (default stdout)"},
			&cli.BoolFlag{Name: "all-platforms", Usage: "include every platform the image has (default: this host's)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return failf("save needs an image: `sbxrun save -o base.tar base`")
			}
			g := global(c)
			return runtime.SaveImages(c.Context, &g, loadOptions(c), c.Args().Slice(), c.String("output"), c.Bool("all-platforms"), os.Stdout)
		},
	}
}

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name: "images", Usage: "list images: reference, digest, size and the profiles that run them", OnUsageError: usageError,
		Flags: []cli.Flag{&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"}},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format != "table" && format != "json" {
				return fmt.Errorf("invalid --format %q: use table or json", format)
			}
			g := global(c)
			list, err := runtime.ListImages(c.Context, &g, loadOptions(c))
			if err != nil {
				return err
			}
			return printImages(os.Stdout, list, format)
		},
	}
}

// printImages writes the image list as a table or JSON.
func printImages(w io.Writer, list []images.Summary, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "REF\tDIGEST\tSIZE\tCREATED\tPROFILES")
	for _, s := range list {
		dg := strings.TrimPrefix(s.Digest, "sha256:")
		if len(dg) > 12 {
			dg = dg[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Ref, dg, units.HumanSize(float64(s.Size)), ago(s.Created), strings.Join(s.Profiles, ","))
	}
	return tw.Flush()
}

func rmiCommand() *cli.Command {
	return &cli.Command{
		Name: "rmi", Usage: "remove images", ArgsUsage: "IMAGE...", OnUsageError: usageError,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove images that sandboxes use"}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return failf("rmi needs an image: `sbxrun rmi IMAGE` (`sbxrun images` lists them)")
			}
			g := global(c)
			return runtime.RemoveImages(c.Context, &g, c.Args().Slice(), c.Bool("force"), os.Stdout)
		},
	}
}

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name: "prune", Usage: "remove images no sandbox uses and no profile runs, and unreferenced content; report bytes freed", OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also remove the images of profiles"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
		},
		Action: func(c *cli.Context) error {
			if !c.Bool("force") {
				what := "every image no sandbox uses and no profile runs"
				if c.Bool("all") {
					what = "every image no sandbox uses, profile images included"
				}
				if !isTerminal(os.Stdin) {
					return failf("prune removes %s: pass -f to confirm (there is no terminal to ask)", what)
				}
				fmt.Fprintf(os.Stderr, "This removes %s, and the content only they used. Continue? [y/N] ", what)
				answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return &runtime.ExitError{Code: 1, Err: errors.New("prune cancelled")}
				}
			}
			g := global(c)
			return runtime.PruneImages(c.Context, &g, loadOptions(c), c.Bool("all"), os.Stdout)
		},
	}
}

func loginCommand() *cli.Command {
	return &cli.Command{
		Name: "login", Usage: "store credentials for a registry (default Docker Hub) in ~/.docker/config.json (or its credential helper)", ArgsUsage: "[REGISTRY]", OnUsageError: usageError,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}, Usage: "user name"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from stdin"},
		}, registryFlags...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return failf("login takes one registry, got %d: `sbxrun login -u USER --password-stdin [REGISTRY] < file` (none is Docker Hub)", c.NArg())
			}
			g := global(c)
			return login(c.Context, &g, loginOptions{
				Registry: registryArg(c), Username: c.String("username"), PasswordStdin: c.Bool("password-stdin"),
				RegistryOptions: registryOptions(c),
			})
		},
	}
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name: "logout", Usage: "remove the stored credentials of a registry (default Docker Hub)", ArgsUsage: "[REGISTRY]", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return failf("logout takes one registry, got %d: `sbxrun logout [REGISTRY]` (none is Docker Hub)", c.NArg())
			}
			return logout(registryArg(c), images.RegistryOptions{}, os.Stdout)
		},
	}
}

// registryArg is the registry login and logout act on: the argument, else
// Docker Hub, as with docker login.
func registryArg(c *cli.Context) string {
	if c.NArg() == 0 {
		return images.DockerHub
	}
	return c.Args().First()
}
