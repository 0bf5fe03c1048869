package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestDockerRunSpellings parses Docker's spellings of run through the app:
// -dit is accepted (a detached sandbox with a terminal), attached short
// values work, and --oom-score-adj reaches the options.
func TestDockerRunSpellings(t *testing.T) {
	tests := []struct {
		args                string
		detach, tty, stdin  bool
		name, user, workdir string
		oom                 *int
	}{
		{args: "sbxrun run -dit --name a--b base sh", detach: true, tty: true, stdin: true, name: "a--b"},
		{args: "sbxrun run -d -t base sh", detach: true, tty: true},
		{args: "sbxrun run -d -i base sh", detach: true, stdin: true},
		{args: "sbxrun base -uroot:root -w/tmp --oom-score-adj -500 -- id", user: "root:root", workdir: "/tmp", oom: ptr(-500)},
		{args: "sbxrun base --oom-score-adj=0 -- id", oom: ptr(0)},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			app := newApp()
			var got *runOptionsResult
			for _, c := range app.Commands {
				if c.Name == "run" {
					c.Action = captureRun(&got)
				}
			}
			if err := app.Run(rewriteArgs(app, strings.Fields(tt.args))); err != nil {
				t.Fatalf("run: %v", err)
			}
			o := got.opts
			if o.Detach != tt.detach || o.TTY != tt.tty || o.Interactive != tt.stdin || o.Name != tt.name {
				t.Errorf("detach %v tty %v interactive %v name %q, want %v %v %v %q", o.Detach, o.TTY, o.Interactive, o.Name, tt.detach, tt.tty, tt.stdin, tt.name)
			}
			if u := o.Flags.User; tt.user != "" && (u == nil || *u != tt.user) {
				t.Errorf("user = %v, want %q", u, tt.user)
			}
			if w := o.Flags.Workdir; tt.workdir != "" && (w == nil || *w != tt.workdir) {
				t.Errorf("workdir = %v, want %q", w, tt.workdir)
			}
			if (o.OOMScoreAdj == nil) != (tt.oom == nil) || tt.oom != nil && *o.OOMScoreAdj != *tt.oom {
				t.Errorf("oom-score-adj = %v, want %v", o.OOMScoreAdj, tt.oom)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDockerManageSpellings checks that stop, kill and rm read Docker's
// spellings of their flags: -t0, --timeout, -sKILL, --all.
func TestDockerManageSpellings(t *testing.T) {
	tests := []struct {
		args, cmd, flag, want string
		names                 []string
	}{
		{args: "sbxrun stop -t0 a b", cmd: "stop", flag: "time", want: "0", names: []string{"a", "b"}},
		{args: "sbxrun stop --timeout 3 a", cmd: "stop", flag: "time", want: "3", names: []string{"a"}},
		{args: "sbxrun stop --time=4 a", cmd: "stop", flag: "time", want: "4", names: []string{"a"}},
		{args: "sbxrun kill -sKILL a", cmd: "kill", flag: "signal", want: "KILL", names: []string{"a"}},
		{args: "sbxrun kill --signal=TERM a b", cmd: "kill", flag: "signal", want: "TERM", names: []string{"a", "b"}},
		{args: "sbxrun kill -a", cmd: "kill", flag: "all", want: "true"},
		{args: "sbxrun rm -fa", cmd: "rm", flag: "all", want: "true"},
		{args: "sbxrun stop --all", cmd: "stop", flag: "all", want: "true"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			app := newApp()
			var value string
			var names []string
			for _, c := range app.Commands {
				if c.Name == tt.cmd {
					c.Action = func(c *cli.Context) error {
						value, names = c.String(tt.flag), c.Args().Slice()
						if tt.flag == "all" {
							value = "false"
							if c.Bool("all") {
								value = "true"
							}
						}
						return nil
					}
				}
			}
			if err := app.Run(rewriteArgs(app, strings.Fields(tt.args))); err != nil {
				t.Fatalf("%s: %v", tt.args, err)
			}
			if value != tt.want || strings.Join(names, " ") != strings.Join(tt.names, " ") {
				t.Errorf("--%s = %q, names %q; want %q, %q", tt.flag, value, names, tt.want, tt.names)
			}
		})
	}
}
