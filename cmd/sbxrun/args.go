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
// words, the target and the command, as scanRunWords reads them. Every flag
// the command knows is spelt by its primary name, so that "-e A=1 --env
// B=2" is one flag given twice, as Docker treats it (urfave/cli refuses two
// spellings of one flag); an attached value (-uroot) becomes its own word.
func splitRunArgs(flags []cli.Flag, args []string) (flagArgs []string, target string, cmd []string, sawTarget bool) {
	line := scanRunWords(flags, args)
	_, primary := flagArity(flags)
	for i := 0; i < len(line.flags); i++ {
		f := line.flags[i]
		switch {
		case f.attached && i > 0 && line.flags[i-1].at == f.at:
			// -itu0:0: the letters as written, then the value.
			word := args[f.at]
			flagArgs = append(flagArgs, word[:len(word)-len(f.value)], f.value)
		case f.attached:
			flagArgs = append(flagArgs, "--"+f.name, f.value)
		case f.combined:
			// -it: the word as written, then the last flag's value.
			for i+1 < len(line.flags) && line.flags[i+1].at == f.at && !line.flags[i+1].attached {
				i++
				f = line.flags[i]
			}
			if i+1 < len(line.flags) && line.flags[i+1].at == f.at {
				continue // letters before an attached value: emitted with it
			}
			flagArgs = append(flagArgs, args[f.at])
			if f.valueAt > f.at {
				flagArgs = append(flagArgs, f.value)
			}
		default:
			word := args[f.at]
			if _, known := primary[f.name]; known {
				word = "--" + f.name
				if f.inline {
					word += "=" + f.value
				}
			}
			flagArgs = append(flagArgs, word)
			if !f.inline && f.valueAt >= 0 {
				flagArgs = append(flagArgs, f.value)
			}
		}
	}
	if line.target >= 0 {
		target, sawTarget = args[line.target], true
	}
	if line.dashes || line.cmd < len(args) {
		cmd = args[line.cmd:]
	}
	return flagArgs, target, cmd, sawTarget
}

// rewriteArgs turns the shorthand `sbxrun [global] TARGET ...` into
// `sbxrun [global] run TARGET ...`, and moves run flags given after TARGET
// in front of it, so urfave/cli sees `run [flags] TARGET -- CMD`.
func rewriteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	globalTakesValue, _ := flagArity(app.Flags)
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
		if !hasValue && globalTakesValue[name] {
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
	case cmd.Name == "run" || cmd.Name == "spec" || cmd.Name == "exec" || cmd.Name == "create":
		out = append(out, word)
	case len(cmd.Subcommands) > 0:
		return append(append(out, word), expandAttached(cmd.Flags, rest)...)
	default:
		return append(append(out, word), flagsFirst(cmd.Flags, expandAttached(cmd.Flags, rest))...)
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

// flagsFirst moves the flags of a command that is not run-like in front of
// its arguments, as Docker's flag parser reads them anywhere (`sbxrun stop
// web -t 0`, `sbxrun login REG --insecure-registry REG`); urfave/cli stops
// at the first argument. Words after "--" stay where they are.
func flagsFirst(flags []cli.Flag, words []string) []string {
	takesValue, _ := flagArity(flags)
	var flagWords, args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			args = append(args, words[i:]...)
			break
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			args = append(args, w)
			continue
		}
		flagWords = append(flagWords, w)
		name, _, inline := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if !inline && takesValue[name] && i+1 < len(words) {
			i++
			flagWords = append(flagWords, words[i])
		}
	}
	return append(flagWords, args...)
}
