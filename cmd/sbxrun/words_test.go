package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestScanRunWords(t *testing.T) {
	tests := []struct {
		words string
		// flags are the flags found, each as name[@at][=value@valueAt],
		// with + for an inline value and * for a combined short flag.
		flags       string
		target, cmd int
		dashes      bool
	}{
		{words: "base", target: 0, cmd: 1},
		{words: "", target: -1, cmd: 0},
		{words: "--rm", flags: "rm@0", target: -1, cmd: 1},
		{words: "base -- sh -c x", target: 0, cmd: 2, dashes: true},
		{words: "base --", target: 0, cmd: 2, dashes: true},
		{words: "base ls --memory 3", target: 0, cmd: 1},
		{words: "--name x base --memory 1g -- sh", flags: "name@0=x@1 memory@3=1g@4", target: 2, cmd: 6, dashes: true},
		{words: "-e A=1 --env=B=2 -e=C=3 base", flags: "env@0=A=1@1 env@2+B=2@2 env@3+C=3@3", target: 4, cmd: 5},
		{words: "-it base sh", flags: "interactive@0* tty@0*", target: 1, cmd: 2},
		{words: "-ie A=1 base", flags: "interactive@0* env@0*=A=1@1", target: 2, cmd: 3},
		{words: "--rm=false base", flags: "rm@0+false@0", target: 1, cmd: 2},
		{words: "--bogus base", flags: "bogus@0", target: 1, cmd: 2},
		{words: "-xz base", flags: "x@0* z@0*", target: 1, cmd: 2},
		{words: "base --memory", flags: "memory@1", target: 0, cmd: 2},
		{words: "--name -- base", flags: "name@0=--@1", target: 2, cmd: 3},
		{words: "- x", target: 0, cmd: 1},
	}
	for _, tt := range tests {
		t.Run(tt.words, func(t *testing.T) {
			line := scanRunWords(runFlags, strings.Fields(tt.words))
			var flags []string
			for _, f := range line.flags {
				s := fmt.Sprintf("%s@%d", f.name, f.at)
				if f.combined {
					s += "*"
				}
				switch {
				case f.inline:
					s += fmt.Sprintf("+%s@%d", f.value, f.valueAt)
				case f.valueAt >= 0:
					s += fmt.Sprintf("=%s@%d", f.value, f.valueAt)
				}
				flags = append(flags, s)
			}
			if got := strings.Join(flags, " "); got != tt.flags {
				t.Errorf("flags %q, want %q", got, tt.flags)
			}
			if line.target != tt.target || line.cmd != tt.cmd || line.dashes != tt.dashes {
				t.Errorf("target %d, command at %d (dashes %v); want %d, %d (%v)", line.target, line.cmd, line.dashes, tt.target, tt.cmd, tt.dashes)
			}
		})
	}
}

// TestScanRunWordsAgrees checks that scanRunWords reads the run grammar as
// splitRunArgs does: the same target, command, and flag words.
func TestScanRunWordsAgrees(t *testing.T) {
	for _, words := range []string{
		"base", "", "--rm", "base -- sh -c x", "base --", "base ls --memory 3",
		"--name x base --memory 1g -- sh", "-e A=1 --env=B=2 -e=C=3 base", "-it base sh", "-ie A=1 base",
		"-ie=A=1 base", "--rm=false base", "--bogus base x", "-xz base", "base --memory", "--name -- base", "- x",
		"-v /a:/b -w /b base -- ls", "-m 1g base echo -e x", "base -d --name y -- true",
	} {
		t.Run(words, func(t *testing.T) {
			args := strings.Fields(words)
			flagArgs, target, cmd, sawTarget := splitRunArgs(runFlags, args)
			line := scanRunWords(runFlags, args)
			if sawTarget != (line.target >= 0) || sawTarget && target != args[line.target] {
				t.Errorf("target %q (%v), scanRunWords says index %d", target, sawTarget, line.target)
			}
			var scanCmd []string
			if line.dashes || line.cmd < len(args) {
				scanCmd = args[line.cmd:]
			}
			if (cmd == nil) != (scanCmd == nil) || !slices.Equal(cmd, scanCmd) {
				t.Errorf("command %q, scanRunWords says %q", cmd, scanCmd)
			}
			// The flag words, without the target and command.
			var flagWords int
			seen := map[int]bool{}
			for _, f := range line.flags {
				for _, i := range []int{f.at, f.valueAt} {
					if i >= 0 && !seen[i] {
						seen[i] = true
						flagWords++
					}
				}
			}
			if flagWords != len(flagArgs) {
				t.Errorf("flag words %q, scanRunWords found %d", flagArgs, flagWords)
			}
		})
	}
}
