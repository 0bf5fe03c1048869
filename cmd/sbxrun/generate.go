package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime/systemd"
)

// generateCommand writes what `make install` and the package install
// besides the binary, generated from this binary so it never goes stale
// and is never committed: DIR/man/sbxrun.1 for the whole tool and
// sbxrun-COMMAND.1 for every visible command (from the command
// definitions), DIR/completions/ for bash, zsh and fish, and the rootless
// containerd's systemd user unit, DIR/sbxrun-containerd.service, running
// the binary at --exe (where it will be installed).
func generateCommand() *cli.Command {
	return &cli.Command{
		Name: "__generate", Hidden: true, ArgsUsage: "DIR",
		Flags: []cli.Flag{&cli.StringFlag{Name: "exe", Value: "/usr/bin/sbxrun", Usage: "where the binary is installed"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return failf("__generate takes one directory: `sbxrun __generate [--exe PATH] DIR`")
			}
			dir := c.Args().First()
			n, err := writeManPages(c.App, filepath.Join(dir, "man"))
			if err != nil {
				return failf("writing man pages: %w", err)
			}
			comp := filepath.Join(dir, "completions")
			if err := os.MkdirAll(comp, 0o755); err != nil {
				return failf("writing completions: %w", err)
			}
			for sh, file := range map[string]string{"bash": "sbxrun", "zsh": "_sbxrun", "fish": "sbxrun.fish"} {
				if err := os.WriteFile(filepath.Join(comp, file), []byte(completionScripts[sh]), 0o644); err != nil {
					return failf("writing completions: %w", err)
				}
			}
			unit, err := systemd.RootlessDaemonUnit(c.String("exe"))
			if err != nil {
				return failf("%w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, systemd.UnitName(systemd.RootlessDaemonName)), []byte(unit), 0o644); err != nil {
				return failf("writing the rootless unit: %w", err)
			}
			fmt.Printf("wrote %d man pages, 3 completion scripts and the rootless user unit to %s\n", n, dir)
			return nil
		},
	}
}

// writeManPages writes the pages of app into dir and returns how many.
func writeManPages(app *cli.App, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	page := func(a *cli.App, name string) error {
		text, err := a.ToManWithSection(1)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return os.WriteFile(filepath.Join(dir, name+".1"), []byte(text), 0o644)
	}
	var pages []string
	for _, cmd := range app.VisibleCommands() {
		pages = append(pages, app.Name+"-"+cmd.Name+"(1)")
	}
	desc := strings.TrimSpace(app.Description + "\n\nEach command has its own page: " + strings.Join(pages, ", ") + ". `sbxrun doctor` checks what the host lacks.")
	if err := page(manApp(app.Name, app.Usage, app.UsageText, desc, app.Flags, app.Commands), app.Name); err != nil {
		return 0, err
	}
	n := 1
	for _, cmd := range app.VisibleCommands() {
		name := app.Name + "-" + cmd.Name
		usageText := cmd.UsageText
		if usageText == "" {
			usageText = app.Name + " " + cmd.Name
			if len(cmd.VisibleFlags()) > 0 {
				usageText += " [options]"
			}
			if len(cmd.Subcommands) > 0 {
				usageText += " COMMAND [options]"
			}
			if cmd.ArgsUsage != "" {
				usageText += " " + cmd.ArgsUsage
			}
		}
		desc := cmd.Description
		if len(cmd.Aliases) > 0 {
			desc = strings.TrimSpace(desc + "\n\nAliases: " + strings.Join(cmd.Aliases, ", "))
		}
		if err := page(manApp(name, cmd.Usage, usageText, desc, cmd.Flags, cmd.Subcommands), name); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// manApp is an App that stands for one page: urfave/cli renders man pages
// of Apps only.
func manApp(name, usage, usageText, desc string, flags []cli.Flag, cmds []*cli.Command) *cli.App {
	return &cli.App{Name: name, HelpName: name, Usage: usage, UsageText: usageText, Description: desc,
		Flags: flags, Commands: cmds, HideHelpCommand: true, HideVersion: true}
}
