package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagArity tells, for every name of flags, whether the flag takes a value,
// and maps every alias to the flag's primary name.
func flagArity(flags []cli.Flag) (takesValue map[string]bool, primary map[string]string) {
	takesValue, primary = map[string]bool{}, map[string]string{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		names := f.Names()
		for _, n := range names {
			takesValue[n] = !isBool
			primary[n] = names[0]
		}
	}
	return takesValue, primary
}

// splitRunArgs implements the run grammar `[flags] TARGET [flags] [-- CMD...]`
// (also `TARGET CMD...` without "--", as Docker allows): it returns the flag
// words, the target and the command. Flags are recognised up to "--" or
// the first word after TARGET that is not a flag; everything after that is
// the command, untouched.
func splitRunArgs(flags []cli.Flag, args []string) (flagArgs []string, target string, cmd []string, sawTarget bool) {
	arity, primary := flagArity(flags)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flagArgs, target, args[i+1:], sawTarget
		}
		if f, v, ok := splitAttached(arity, a); ok {
			// -uroot, -eA=1, -w/src: a short flag with its value attached.
			if p, known := primary[strings.TrimPrefix(f, "-")]; known {
				f = "--" + p
			}
			flagArgs = append(flagArgs, f, v)
			continue
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name := strings.TrimLeft(a, "-")
			// Spell every flag by its primary name, so that "-e A=1 --env
			// B=2" is one flag given twice, as Docker treats it (urfave/cli
			// refuses two spellings of one flag).
			n, value, hasValue := strings.Cut(name, "=")
			if p, ok := primary[n]; ok {
				a = "--" + p
				if hasValue {
					a += "=" + value
				}
			}
			flagArgs = append(flagArgs, a)
			if hasValue {
				continue
			}
			takesValue, known := arity[name]
			if !known && !strings.HasPrefix(a, "--") && len(name) > 1 {
				// Combined short flags such as -it: the last one may take a value.
				takesValue = arity[name[len(name)-1:]]
			}
			if takesValue && i+1 < len(args) {
				i++
				flagArgs = append(flagArgs, args[i])
			}
			continue
		}
		if !sawTarget {
			target, sawTarget = a, true
			continue
		}
		// First non-flag word after TARGET: the command, Docker-style.
		return flagArgs, target, args[i:], sawTarget
	}
	return flagArgs, target, nil, sawTarget
}

// globalValueFlags are the global flags that take a value.
var globalValueFlags = map[string]bool{"address": true, "namespace": true, "n": true, "config": true, "cdi-spec-dir": true}

// rewriteArgs turns the shorthand `sbxrun [global] TARGET ...` into
// `sbxrun [global] run TARGET ...`, and moves run flags given after TARGET
// in front of it, so urfave/cli sees `run [flags] TARGET -- CMD`.
func rewriteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	for i < len(args) {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !isGlobalFlag(app, name) {
			// A run flag before the profile: `sbxrun -d --name x base -- cmd`.
			if _, _, _, sawTarget := splitRunArgs(app.Command("run").Flags, args[i:]); !sawTarget {
				return args
			}
			out := append(append([]string{}, args[:i]...), "run")
			return append(out, rewriteRun(app.Command("run"), args[i:])...)
		}
		if !hasValue && globalValueFlags[name] {
			i++
		}
		i++
	}
	if i >= len(args) || args[i] == "--" {
		return args
	}
	out := append([]string{}, args[:i]...)
	word := args[i]
	rest := args[i+1:]
	cmd := app.Command(word)
	switch {
	case cmd == nil:
		// Not a command: a profile or image, shorthand for run.
		cmd = app.Command("run")
		rest = args[i:]
		out = append(out, "run")
	case cmd.Name == "run" || cmd.Name == "spec" || cmd.Name == "exec":
		out = append(out, word)
	default:
		return append(append(out, word), expandAttached(cmd.Flags, rest)...)
	}
	return append(out, rewriteRun(cmd, rest)...)
}

// rewriteRun puts a run-like command's words in urfave/cli's order:
// flags, TARGET, "--", command.
func rewriteRun(cmd *cli.Command, rest []string) []string {
	flagArgs, target, command, sawTarget := splitRunArgs(cmd.Flags, rest)
	out := append([]string{}, flagArgs...)
	if sawTarget {
		out = append(out, target)
	}
	if command != nil {
		out = append(out, "--")
		out = append(out, command...)
	}
	return out
}

// isGlobalFlag reports whether name is one of the app's own flags (or
// help/version/completion, which urfave/cli adds).
func isGlobalFlag(app *cli.App, name string) bool {
	switch name {
	case "help", "h", "version", "generate-bash-completion":
		return true
	}
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// splitAttached splits a word of short flags whose last flag takes a value
// written right after it, as Docker's flag parser (pflag) accepts: -t0,
// -sKILL, -uroot, -itu0:0. It reports false for anything else: a long
// flag, a word that is itself a flag's name, or a letter that is no flag.
func splitAttached(takesValue map[string]bool, word string) (flag, value string, ok bool) {
	if !strings.HasPrefix(word, "-") || strings.HasPrefix(word, "--") || len(word) < 3 {
		return "", "", false
	}
	name := word[1:]
	if _, known := takesValue[name]; known {
		return "", "", false
	}
	if n, _, inline := strings.Cut(name, "="); inline {
		if _, known := takesValue[n]; known {
			return "", "", false // -e=A=1 is the parser's own spelling
		}
	}
	for i := 0; i < len(name)-1; i++ {
		value, known := takesValue[name[i:i+1]]
		switch {
		case !known:
			return "", "", false
		case value && name[i+1] == '=':
			return "", "", false // -ie=A=1: the inline spelling, read as such
		case value:
			return "-" + name[:i+1], name[i+1:], true
		}
	}
	return "", "", false
}

// expandAttached rewrites the words of a command that is not run-like so
// urfave/cli can read attached values (`stop -t0`, `kill -sKILL`): each
// such word becomes the flag and its value. Words after "--" are left.
func expandAttached(flags []cli.Flag, words []string) []string {
	takesValue, _ := flagArity(flags)
	out := make([]string, 0, len(words))
	for i, w := range words {
		if w == "--" {
			return append(out, words[i:]...)
		}
		if f, v, ok := splitAttached(takesValue, w); ok {
			out = append(out, f, v)
			continue
		}
		out = append(out, w)
	}
	return out
}
