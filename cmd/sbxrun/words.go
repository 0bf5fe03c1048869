package main

import (
	"cmp"
	"strings"

	"github.com/urfave/cli/v2"
)

// runLine is a run-like command line, `[flags] TARGET [flags] [-- CMD...]`,
// read word by word by scanRunWords.
type runLine struct {
	// flags are the flags given, in order.
	flags []flagWord
	// target is the index of TARGET; -1 when there is none.
	target int
	// cmd is the index of the command's first word (len(words) when there
	// is no command); dashes is set when "--" precedes it, at cmd-1.
	cmd    int
	dashes bool
}

// flagWord is one flag of a runLine.
type flagWord struct {
	// name is the flag's primary name, or its name as written for a flag
	// the command does not have.
	name string
	// at is the index of the word that holds the flag.
	at int
	// value is the flag's value and valueAt the index of the word that
	// holds it: at for --flag=VALUE (inline), at+1 for --flag VALUE, and
	// -1 when there is none (a boolean flag, or a value missing at the
	// end of the words).
	value   string
	valueAt int
	inline  bool
	// combined is set for each of several short flags written as one word
	// (-it): they share at, and only the last may take a value.
	combined bool
	// attached is set for a short flag whose value is written right after
	// it in the same word (-uroot, -t0, -itu0:0: the flags before it are
	// combined ones).
	attached bool
}

// scanRunWords reads words with the run grammar: flags are recognised before
// and after TARGET, up to "--" or the first word after TARGET that is not a
// flag (Docker's `TARGET CMD...`); the rest is the command, untouched. A flag
// takes the next word as its value when flags say it takes one; an unknown
// long flag takes none, and an unknown word of short flags is read as
// combined short flags, the last of which may take a value.
func scanRunWords(flags []cli.Flag, words []string) runLine {
	takesValue, primary := flagArity(flags)
	line := runLine{target: -1, cmd: len(words)}
	for i := 0; i < len(words); i++ {
		a := words[i]
		if a == "--" {
			line.cmd, line.dashes = i+1, true
			return line
		}
		if !strings.HasPrefix(a, "-") || len(a) == 1 {
			if line.target < 0 {
				line.target = i
				continue
			}
			line.cmd = i
			return line
		}
		if f, v, ok := splitAttached(takesValue, a); ok {
			// -uroot, -eA=1, -itu0:0: the last short flag's value is
			// attached; the letters before it are combined flags.
			letters := strings.TrimPrefix(f, "-")
			for _, n := range strings.Split(letters[:len(letters)-1], "") {
				line.flags = append(line.flags, flagWord{name: cmp.Or(primary[n], n), at: i, valueAt: -1, combined: true})
			}
			last := letters[len(letters)-1:]
			line.flags = append(line.flags, flagWord{name: cmp.Or(primary[last], last), at: i, value: v, valueAt: i, attached: true})
			continue
		}
		name, value, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		names := []string{name}
		_, known := primary[name]
		combined := !known && !strings.HasPrefix(a, "--") && len(name) > 1
		if combined {
			names = strings.Split(name, "")
		}
		for _, n := range names[:len(names)-1] {
			line.flags = append(line.flags, flagWord{name: cmp.Or(primary[n], n), at: i, valueAt: -1, combined: true})
		}
		last := names[len(names)-1]
		f := flagWord{name: cmp.Or(primary[last], last), at: i, valueAt: -1, combined: combined}
		switch {
		case inline:
			f.value, f.valueAt, f.inline = value, i, true
		case takesValue[last] && i+1 < len(words):
			i++
			f.value, f.valueAt = words[i], i
		}
		line.flags = append(line.flags, f)
	}
	return line
}
