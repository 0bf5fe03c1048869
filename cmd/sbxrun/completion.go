package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// completeCommandName is the hidden command the completion scripts call:
// `sbxrun __complete -- WORD... CURRENT` prints the candidates for
// CURRENT, one a line. One implementation serves bash, zsh and fish.
const completeCommandName = "__complete"

// completionScripts are what `sbxrun completion SHELL` prints; each asks
// `sbxrun __complete` for its candidates.
var completionScripts = map[string]string{
	"bash": `_sbxrun() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" ` + completeCommandName + ` -- "${COMP_WORDS[@]:1:$COMP_CWORD}" 2>/dev/null)" -- "${cur}"))
}
complete -o default -F _sbxrun sbxrun
`,
	"zsh": `#compdef sbxrun
_sbxrun() {
  local -a candidates
  candidates=("${(@f)$("${words[1]}" ` + completeCommandName + ` -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  candidates=(${candidates:#})
  (( ${#candidates} )) || return 1
  compadd -Q -- "${candidates[@]}"
}
if [[ "${funcstack[1]}" == _sbxrun ]]; then
  _sbxrun "$@"
else
  compdef _sbxrun sbxrun
fi
`,
	"fish": `function __sbxrun_complete
    set -l words (commandline -opc) (commandline -ct)
    $words[1] ` + completeCommandName + ` -- $words[2..-1] 2>/dev/null
end
complete -c sbxrun -f -a '(__sbxrun_complete)'
`,
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name: "completion", Usage: "print a shell completion script (bash, zsh or fish)", ArgsUsage: "bash|zsh|fish", OnUsageError: usageError,
		Description: "bash: source <(sbxrun completion bash)\n" +
			"zsh:  sbxrun completion zsh > \"${fpath[1]}/_sbxrun\"\n" +
			"fish: sbxrun completion fish > ~/.config/fish/completions/sbxrun.fish",
		Action: func(c *cli.Context) error {
			sh := c.Args().First()
			if sh == "" {
				sh = "bash"
			}
			s, ok := completionScripts[sh]
			if !ok || c.NArg() > 1 {
				return failf("completion for %q is not available: use `sbxrun completion bash`, `zsh` or `fish`", strings.Join(c.Args().Slice(), " "))
			}
			fmt.Print(s)
			return nil
		},
	}
}

func completeCommand() *cli.Command {
	return &cli.Command{
		Name: completeCommandName, Hidden: true, SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			words := c.Args().Slice()
			if len(words) > 0 && words[0] == "--" {
				words = words[1:]
			}
			for _, w := range complete(c.App, words, profileNames(c)) {
				fmt.Println(w)
			}
			return nil
		},
	}
}

// profileNames are the profiles `sbxrun profiles` lists; none when the
// profile files do not load (completion prints no errors).
func profileNames(c *cli.Context) []string {
	profs, err := profiles.Load(loadOptions(c))
	if err != nil {
		return nil
	}
	return profs.Names()
}

// complete returns the candidates for the last of words (the word being
// completed, maybe empty), given the words before it (without "sbxrun"):
// commands and profile names first, then a command's subcommands, or the
// flags of the command (or of run, for a profile or image) when the word
// starts with "-". The shell filters them by what was typed.
func complete(app *cli.App, words []string, profileNames []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	before := words[:len(words)-1]
	flags := app.Flags
	var cmd *cli.Command
	target := false // a profile or image: run's grammar
	i := 0
	for ; i < len(before); i++ {
		w := before[i]
		if w == "--" {
			return nil // the workload's command line
		}
		if strings.HasPrefix(w, "-") {
			if takesValue(flags, w) {
				i++
			}
			continue
		}
		switch {
		case cmd == nil && !target:
			if c := app.Command(w); c != nil && !c.Hidden {
				cmd, flags = c, c.Flags
			} else {
				target, flags = true, app.Command("run").Flags
			}
		case cmd != nil && len(cmd.Subcommands) > 0:
			if sub := cmd.Command(w); sub != nil {
				cmd, flags = sub, sub.Flags
			}
		case cmd != nil && cmd.Name == "run":
			target = true
		}
	}
	if strings.HasPrefix(cur, "-") {
		return flagNames(flags)
	}
	switch {
	case target:
		return nil
	case cmd == nil:
		var out []string
		for _, c := range app.Commands {
			if !c.Hidden {
				out = append(out, c.Name)
			}
		}
		return append(out, profileNames...)
	case len(cmd.Subcommands) > 0:
		var out []string
		for _, s := range cmd.Subcommands {
			if !s.Hidden {
				out = append(out, s.Name)
			}
		}
		return out
	case cmd.Name == "run" || cmd.Name == "spec" || cmd.Name == "show":
		return profileNames
	case cmd.Name == "completion":
		return []string{"bash", "fish", "zsh"}
	}
	return nil
}

func takesValue(flags []cli.Flag, word string) bool {
	name, _, hasValue := strings.Cut(strings.TrimLeft(word, "-"), "=")
	if hasValue {
		return false
	}
	tv, _ := flagArity(flags)
	return tv[name]
}

// flagNames are --name for every name of every visible flag, and -x for
// one-letter aliases.
func flagNames(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		for _, n := range f.Names() {
			if len(n) == 1 {
				out = append(out, "-"+n)
			} else {
				out = append(out, "--"+n)
			}
		}
	}
	return slices.Compact(out)
}
