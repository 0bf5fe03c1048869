package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/oci"
	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/rootless"
	"github.com/sbxrun/sbxrun/runtime/systemd"
)

// generateFlags are `systemd generate`'s own flags; every other flag is a
// run flag and goes into the unit's ExecStart as the user wrote it.
var generateFlags = []cli.Flag{
	&cli.BoolFlag{Name: "install", Usage: "write the unit (/etc/systemd/system as root, else ~/.config/systemd/user) and print the systemctl commands that enable it"},
	&cli.StringFlag{Name: "restart", Value: systemd.RestartOnFailure, Usage: "when systemd restarts the sandbox: no, on-failure or always"},
	&cli.StringSliceFlag{Name: "after", Usage: "also start after this unit (repeatable)"},
	&cli.StringSliceFlag{Name: "wants", Usage: "also pull in this unit (repeatable)"},
	&cli.StringFlag{Name: "description", Usage: "the unit's description (default: sbxrun sandbox NAME (PROFILE))"},
}

// serviceFlagsHidden are run flags generate refuses, left out of its help.
var serviceFlagsHidden = []string{"detach", "interactive", "tty", "rm"}

func systemdCommand() *cli.Command {
	return &cli.Command{
		Name: "systemd", Usage: "run sandboxes as systemd services", OnUsageError: usageError, HideHelpCommand: true,
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "print (or --install) a systemd unit that runs a sandbox as a service",
			UsageText: "sbxrun systemd generate --name NAME [options] PROFILE|IMAGE [run options] [-- COMMAND...]\n" +
				"   e.g. sbxrun systemd generate model-dev --name ollama -- ollama serve",
			Flags: append(slices.Clone(generateFlags), slices.DeleteFunc(slices.Clone(runFlags), func(f cli.Flag) bool {
				return slices.Contains(serviceFlagsHidden, f.Names()[0])
			})...),
			// Flags may follow PROFILE, as for run, and the run words must
			// reach the unit as written: generate splits them itself.
			SkipFlagParsing: true,
			Action:          generateUnit,
		}},
	}
}

// generateUnit is `sbxrun systemd generate`.
func generateUnit(c *cli.Context) error {
	w, err := splitGenerateWords(c.Args().Slice())
	if err != nil {
		return failf("%v: see `sbxrun systemd generate --help`", err)
	}
	if w.help {
		cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
		return nil
	}
	install, err := w.bool("install")
	if err != nil {
		return failf("%v", err)
	}
	global := globalWords(c)
	o, err := parseRunWords(c, global, w.run)
	if err != nil {
		return err
	}
	if o.Name == "" {
		return failf("systemd generate needs --name NAME: it names the service (sbxrun-NAME.service) and its sandbox")
	}
	facts, err := o.ServiceFacts()
	if err != nil {
		return err
	}

	scope := systemd.System
	if os.Geteuid() != 0 || rootless.InNamespace() {
		scope = systemd.User
	}
	exe, err := os.Executable()
	if err != nil {
		return failf("finding the sbxrun binary for ExecStart: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return failf("reading the current directory: %v", err)
	}
	env, secrets := systemd.ServiceEnvironment(scope, os.Environ())
	run, moreSecrets, fromHost := splitSecrets(w)
	env, secrets = append(env, fromHost...), append(secrets, moreSecrets...)
	warnEnvFiles(w, c.App.ErrWriter)

	uo := systemd.Options{
		Name: facts.Name, Target: o.Target, Scope: scope, Exec: exe, Global: global, Run: run,
		WorkingDirectory: wd, Environment: env,
		Description: w.value("description"), Restart: w.value("restart"), After: w.list("after"), Wants: w.list("wants"),
		StopSignal: facts.StopSignal, StopTimeout: facts.StopTimeout, Network: facts.Network,
		GPUs: facts.GPUs, GPUsOptional: facts.GPUsOptional,
	}
	var envFile string
	if len(secrets) > 0 {
		if envFile, err = systemd.EnvFilePath(scope, facts.Name); err != nil {
			return failf("%v", err)
		}
		uo.EnvironmentFiles = []string{envFile}
	}
	text, err := systemd.Generate(uo)
	if err != nil {
		return failf("%v", err)
	}
	if !install {
		fmt.Fprint(c.App.Writer, text)
		if len(secrets) > 0 {
			fmt.Fprintf(c.App.ErrWriter, "sbxrun: kept %s out of the unit (credentials never go into units): the unit reads them from %s; create that file with mode 0600 and KEY=VALUE lines, or rerun with --install, which writes it\n",
				strings.Join(keys(secrets), ", "), envFile)
		}
		return nil
	}
	if len(secrets) > 0 {
		if err := systemd.WriteEnvFile(envFile, secrets); err != nil {
			return failf("%v", err)
		}
	}
	dir, err := systemd.UnitDir(scope)
	if err != nil {
		return failf("%v", err)
	}
	path, replaced, err := systemd.Install(dir, facts.Name, text)
	if err != nil {
		return failf("installing the unit: %v; run as root for /etc/systemd/system", err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s\n", path)
	if len(secrets) > 0 {
		fmt.Fprintf(c.App.Writer, "wrote %s (mode 0600): %s\n", envFile, strings.Join(keys(secrets), ", "))
	}
	fmt.Fprintln(c.App.Writer, "enable and start it with:")
	for _, cmd := range systemd.Commands(scope, facts.Name, replaced) {
		fmt.Fprintln(c.App.Writer, "  "+cmd)
	}
	return nil
}

// generateWords is the command line of `systemd generate`, split.
type generateWords struct {
	// gen holds generate's own flags by name, in order.
	gen map[string][]string
	// run are the run words, exactly as given.
	run []string
	// flags are the run flags given, with indices into run.
	flags []flagWord
	help  bool
}

// splitGenerateWords separates generate's own flags (and --help) from the
// run words with the run grammar (scanRunWords), keeping the run words
// verbatim.
func splitGenerateWords(words []string) (*generateWords, error) {
	return splitOwnWords(generateFlags, words)
}

// splitOwnWords separates a generator's own flags (ownFlags, and --help)
// from the run words with the run grammar (scanRunWords), keeping the run
// words verbatim: `systemd generate` and `kube generate`.
func splitOwnWords(ownFlags []cli.Flag, words []string) (*generateWords, error) {
	genTakesValue, gen := flagArity(ownFlags)
	// generate reads --help itself, as urfave/cli's help flag.
	all := append([]cli.Flag{cli.HelpFlag}, ownFlags...)
	line := scanRunWords(append(all, runFlags...), words)
	w := &generateWords{gen: map[string][]string{}}
	own := map[int]bool{} // the words of generate's own flags
	for _, f := range line.flags {
		switch {
		case f.combined:
			continue
		case f.name == cli.HelpFlag.Names()[0]:
			w.help = true
		case gen[f.name] != "":
			value := f.value
			switch {
			case f.valueAt >= 0:
			case genTakesValue[f.name]:
				return nil, fmt.Errorf("flag --%s needs a value", f.name)
			default:
				value = "true"
			}
			w.gen[f.name] = append(w.gen[f.name], value)
		default:
			continue
		}
		own[f.at] = true
		if f.valueAt >= 0 {
			own[f.valueAt] = true
		}
	}
	at := make([]int, len(words)) // index in w.run of each word kept
	for i, word := range words {
		if own[i] {
			continue
		}
		at[i] = len(w.run)
		w.run = append(w.run, word)
	}
	for _, f := range line.flags {
		if own[f.at] {
			continue
		}
		f.at = at[f.at]
		if f.valueAt >= 0 {
			f.valueAt = at[f.valueAt]
		}
		w.flags = append(w.flags, f)
	}
	return w, nil
}

func (w *generateWords) value(name string) string {
	if v := w.gen[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func (w *generateWords) list(name string) []string {
	var out []string
	for _, v := range w.gen[name] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func (w *generateWords) bool(name string) (bool, error) {
	switch v := w.value(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fmt.Errorf("invalid --%s=%s: use --%s or --%s=false", name, v, name, name)
	}
}

// parseRunWords parses the global and run words exactly as `sbxrun run`
// would (the same app, with run's action replaced) and refuses what cannot
// work under a service manager.
func parseRunWords(c *cli.Context, global, words []string) (*runtime.RunOptions, error) {
	return parseRunWordsFor(c, global, words, "sbxrun systemd generate --name NAME PROFILE -- CMD", func(rc *cli.Context) error {
		for _, f := range []string{"detach", "tty", "interactive"} {
			if rc.Bool(f) {
				return failf("--%s cannot be used in a service: systemd runs sbxrun in the foreground, without a terminal or stdin", f)
			}
		}
		if !rc.Bool("rm") {
			return failf("--rm=false cannot be used in a service: each start creates the sandbox anew, so a kept one would be in the way; drop --rm=false")
		}
		return nil
	})
}

// parseRunWordsFor parses the global and run words exactly as `sbxrun run`
// would (the same app, with run's action replaced by check, then
// runOptions); usage is the generator's own command line, for errors.
func parseRunWordsFor(c *cli.Context, global, words []string, usage string, check func(*cli.Context) error) (*runtime.RunOptions, error) {
	var o *runtime.RunOptions
	help := strings.Join(strings.Fields(usage)[:3], " ")
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, c.App.ErrWriter
	run := app.Command("run")
	argv := append(append([]string{"sbxrun"}, global...), "run")
	argv = append(argv, rewriteRun(run, words)...)
	run.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return failf("%v: see `%s --help`", err, help)
	}
	run.Action = func(rc *cli.Context) error {
		if err := check(rc); err != nil {
			return err
		}
		var err error
		o, err = runOptions(rc)
		return err
	}
	if err := app.RunContext(c.Context, argv); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, failf("no profile or image given: `%s`", usage)
	}
	o.TTY, o.Interactive = false, false
	return o, nil
}

// globalWords are the global flags the user set, spelled out for the
// unit's command lines.
func globalWords(c *cli.Context) []string {
	var w []string
	for _, f := range c.App.Flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		switch f.(type) {
		case *cli.BoolFlag:
			if c.Bool(name) {
				w = append(w, "--"+name)
			}
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				w = append(w, "--"+name, v)
			}
		default:
			w = append(w, "--"+name, c.String(name))
		}
	}
	return w
}

// splitSecrets returns the run words with every -e value that looks like a
// credential replaced by its name, the credentials as KEY=VALUE, and the
// other values -e KEY takes from this environment (for Environment=).
func splitSecrets(w *generateWords) (run, secrets, fromHost []string) {
	run = slices.Clone(w.run)
	for _, f := range w.flags {
		if f.name != "env" || f.valueAt < 0 {
			continue
		}
		// A bad -e has failed the run's own parse already.
		k, v, ok, err := resolveEnvFlag(f.value, os.LookupEnv)
		if err != nil || !ok {
			continue
		}
		if !strings.Contains(f.value, "=") {
			// -e KEY: the unit sets KEY from this environment.
			if systemd.LooksSecret(k, v) {
				secrets = append(secrets, k+"="+v)
			} else {
				fromHost = append(fromHost, k+"="+v)
			}
			continue
		}
		if !systemd.LooksSecret(k, v) {
			continue
		}
		secrets = append(secrets, f.value)
		if f.inline {
			flag, _, _ := strings.Cut(run[f.valueAt], "=")
			run[f.valueAt] = flag + "=" + k
		} else {
			run[f.valueAt] = k
		}
	}
	return run, secrets, fromHost
}

// warnEnvFiles warns about an --env-file that holds credentials and is
// readable by other users: sbxrun reads it at every start.
func warnEnvFiles(w *generateWords, stderr io.Writer) {
	for _, f := range w.flags {
		if f.name != "env-file" || f.value == "" {
			continue
		}
		fi, err := os.Stat(f.value)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		fh, err := os.Open(f.value)
		if err != nil {
			continue
		}
		kvs, _ := oci.ParseEnvFile(fh, f.value, func(string) (string, bool) { return "", false })
		fh.Close()
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			if systemd.LooksSecret(k, v) {
				fmt.Fprintf(stderr, "sbxrun: warning: --env-file %q holds credentials (%s) and is readable by other users: `chmod 600 %s`\n", f.value, k, f.value)
				break
			}
		}
	}
}

func keys(kvs []string) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i], _, _ = strings.Cut(kv, "=")
	}
	return out
}
