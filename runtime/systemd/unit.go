// Package systemd turns a sandbox run into a systemd service: it writes the
// unit (Generate, a pure function of Options), installs it (Install,
// WriteEnvFile) and makes a run behave as a Type=notify main process
// (Notify).
//
// The unit runs `sbxrun run --systemd-notify` in the foreground with the
// user's own run words. sbxrun is the unit's main process; the workload
// runs under containerd's shim, outside the unit's cgroup, so sbxrun stops
// it (stop signal, stop timeout, SIGKILL) when systemd sends it SIGTERM,
// cleans up and exits with the workload's status.
package systemd

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Scope says which service manager runs a unit.
type Scope int

const (
	// System is the system manager (root): /etc/systemd/system.
	System Scope = iota
	// User is the invoking user's manager: ~/.config/systemd/user.
	User
)

// Restart policies a unit may have (systemd's Restart=).
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// NotifyFlag is the hidden run flag the generated ExecStart passes: it makes
// sbxrun report readiness to systemd and stop the workload on SIGTERM.
const NotifyFlag = "--systemd-notify"

// RestartSec is the pause before systemd restarts a failed sandbox.
const RestartSec = 5 * time.Second

// TimeoutStartSec bounds a start; the first one may pull a large image.
const TimeoutStartSec = 15 * time.Minute

// stopMargin is added to the sandbox's stop timeout for TimeoutStopSec:
// sbxrun waits up to 10 s for the SIGKILLed workload, then deletes the task,
// container and snapshot.
const stopMargin = 30 * time.Second

// Options describes one service: a sandbox that sbxrun runs in the
// foreground under systemd.
type Options struct {
	// Name is the sandbox's name; the unit is sbxrun-NAME.service.
	Name string
	// Description is the unit's Description=; empty is "sbxrun sandbox
	// NAME (TARGET)".
	Description string
	// Target is the profile or image, for the default description.
	Target string
	// Scope picks the manager: System or User.
	Scope Scope
	// Exec is the absolute path of the sbxrun binary.
	Exec string
	// Global are the global flag words that go before the command, as the
	// user gave them (--address, --namespace, --config, --debug).
	Global []string
	// Run are the words after `run`: the user's run flags, PROFILE|IMAGE and
	// "-- CMD", exactly as given, with credential values replaced by their
	// names (their values come from an EnvironmentFile).
	Run []string
	// WorkingDirectory is the directory the run was generated in: "." mounts
	// and relative paths resolve there.
	WorkingDirectory string
	// Environment is KEY=VALUE for sbxrun's own environment (HOME,
	// SBXRUN_ADDRESS, ...). Never a credential.
	Environment []string
	// EnvironmentFiles are files systemd reads into sbxrun's environment
	// (mode 0600: they hold the credentials).
	EnvironmentFiles []string
	// Restart is RestartNo, RestartOnFailure or RestartAlways; empty is
	// RestartOnFailure.
	Restart string
	// After and Wants are extra units to order after and to pull in.
	After, Wants []string
	// StopSignal and StopTimeout are the sandbox's (ServiceFacts); the exit
	// status the stop signal causes counts as success, and TimeoutStopSec is
	// longer than the stop timeout.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// Network orders the unit after network-online.target (system units).
	Network bool
	// GPUs adds an ExecStartPre= that refreshes the CDI spec when it is
	// stale, so a boot-time start finds the GPUs.
	GPUs bool
	// GPUsOptional lets the unit start when that refresh fails (a profile's
	// optional GPUs, which the sandbox runs without on a host that has
	// none).
	GPUsOptional bool
}

// UnitName is the unit file name of the sandbox name.
func UnitName(name string) string { return "sbxrun-" + name + ".service" }

var (
	// unitNameRE matches a unit name as systemd accepts it.
	unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|device|mount|automount|swap|path|timer|slice|scope)$`)
	// sandboxNameRE is containerd's identifier rule, which --name follows.
	sandboxNameRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`)
)

// Generate returns the unit file for o. It is a pure function: it reads
// nothing from the host.
func Generate(o Options) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	restart := o.Restart
	if restart == "" {
		restart = RestartOnFailure
	}
	desc := o.Description
	if desc == "" {
		desc = "sbxrun sandbox " + o.Name
		if o.Target != "" {
			desc += " (" + o.Target + ")"
		}
	}

	after := []string{"containerd.service"}
	var wants []string
	if o.Scope == User {
		// A user's sandboxes run on the user's rootless containerd
		// (`sbxrun rootless setup --systemd` installs its unit): start it
		// too, and after it.
		after = []string{UnitName(RootlessDaemonName)}
		wants = []string{UnitName(RootlessDaemonName)}
	}
	if o.Network && o.Scope == System {
		after = append(after, "network-online.target")
		wants = append(wants, "network-online.target")
	}
	after = appendNew(after, o.After...)
	wants = appendNew(wants, o.Wants...)

	exe, err := quoteExe(o.Exec)
	if err != nil {
		return "", err
	}
	cmd := func(prefix string, words ...string) string {
		return prefix + exe + " " + quoteWords(append(slices.Clone(o.Global), words...))
	}

	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("# %s: the sbxrun sandbox %s as a systemd service.", UnitName(o.Name), o.Name)
	line("# Generated by `sbxrun systemd generate`: regenerate it rather than edit it.")
	line("[Unit]")
	line("Description=%s", escapeSpecifiers(desc))
	line("After=%s", strings.Join(after, " "))
	if len(wants) > 0 {
		line("Wants=%s", strings.Join(wants, " "))
	}
	line("")
	line("[Service]")
	// sbxrun reports READY=1 once the workload runs.
	line("Type=notify")
	line("NotifyAccess=main")
	for _, kv := range o.Environment {
		line("Environment=%s", quote(kv, false))
	}
	for _, f := range o.EnvironmentFiles {
		line("EnvironmentFile=%s", escapeSpecifiers(f))
	}
	if o.WorkingDirectory != "" {
		line("WorkingDirectory=%s", escapeSpecifiers(o.WorkingDirectory))
	}
	if o.GPUs && o.Scope == System {
		// Services that start before the CDI spec exists fail at boot. (A
		// user cannot write the system spec: the run itself generates one
		// in memory when it is missing or stale.)
		prefix := ""
		if o.GPUsOptional {
			prefix = "-"
		}
		line("ExecStartPre=%s", cmd(prefix, "gpu", "setup", "--if-stale"))
	}
	line("ExecStart=%s", cmd("", append([]string{"run", NotifyFlag}, o.Run...)...))
	// After a SIGKILL (TimeoutStopSec ran out) sbxrun could not clean up:
	// gc removes what it left, and only what its dead owner left.
	line("ExecStopPost=%s", cmd("-", "gc"))
	// SIGTERM goes to sbxrun alone, which stops the workload itself; the
	// final SIGKILL goes to everything left in the unit's cgroup.
	line("KillMode=mixed")
	line("TimeoutStartSec=%s", seconds(TimeoutStartSec))
	line("TimeoutStopSec=%s", seconds(o.StopTimeout+stopMargin))
	line("SuccessExitStatus=%d", 128+int(o.StopSignal))
	line("Restart=%s", restart)
	if restart != RestartNo {
		line("RestartSec=%s", seconds(RestartSec))
	}
	line("")
	line("[Install]")
	if o.Scope == User {
		line("WantedBy=default.target")
	} else {
		line("WantedBy=multi-user.target")
	}
	return b.String(), nil
}

func (o *Options) validate() error {
	if !sandboxNameRE.MatchString(o.Name) {
		return fmt.Errorf("invalid sandbox name %q for a unit: use letters, digits, '.', '_' and '-' (--name)", o.Name)
	}
	if o.Name == RootlessDaemonName {
		return fmt.Errorf("the unit name %s is the rootless containerd's: choose another --name", UnitName(o.Name))
	}
	switch o.Restart {
	case "", RestartNo, RestartOnFailure, RestartAlways:
	default:
		return fmt.Errorf("invalid --restart %q: use no, on-failure or always", o.Restart)
	}
	if !filepath.IsAbs(o.Exec) {
		return fmt.Errorf("the sbxrun binary's path %q is not absolute: systemd needs an absolute ExecStart path", o.Exec)
	}
	if len(o.Run) == 0 {
		return errors.New("no profile or image to run: `sbxrun systemd generate --name NAME PROFILE -- CMD`")
	}
	for _, u := range append(slices.Clone(o.After), o.Wants...) {
		if !unitNameRE.MatchString(u) {
			return fmt.Errorf("invalid unit name %q for --after/--wants: use a full name such as nvidia-persistenced.service", u)
		}
	}
	if o.StopSignal <= 0 || o.StopSignal > 64 {
		return fmt.Errorf("invalid stop signal %d", o.StopSignal)
	}
	if o.StopTimeout < 0 {
		return fmt.Errorf("invalid stop timeout %s: use --stop-timeout SECONDS", o.StopTimeout)
	}
	if err := plainValue("description", o.Description); err != nil {
		return err
	}
	if o.WorkingDirectory != "" {
		if err := pathValue("working directory", o.WorkingDirectory); err != nil {
			return err
		}
	}
	for _, f := range o.EnvironmentFiles {
		if err := pathValue("environment file", f); err != nil {
			return err
		}
	}
	for _, kv := range o.Environment {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("invalid environment entry %q: use KEY=VALUE", kv)
		}
	}
	for _, w := range append(slices.Clone(o.Global), o.Run...) {
		if strings.ContainsRune(w, 0) {
			return fmt.Errorf("argument %q holds a NUL byte, which no command line can carry", w)
		}
	}
	for _, kv := range o.Environment {
		if strings.ContainsRune(kv, 0) {
			return fmt.Errorf("environment entry %q holds a NUL byte", kv)
		}
	}
	return nil
}

// plainValue checks a free-text value that is written unquoted: one line,
// no trailing backslash (a continuation) and valid UTF-8.
func plainValue(what, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") || strings.HasSuffix(v, `\`) || !utf8.ValidString(v) {
		return fmt.Errorf("invalid %s %q: use one line of text that does not end in a backslash", what, v)
	}
	return nil
}

// pathValue checks a path written unquoted (systemd takes these verbatim).
func pathValue(what, p string) error {
	if !filepath.IsAbs(p) || strings.TrimSpace(p) != p {
		return fmt.Errorf("invalid %s %q: use an absolute path without leading or trailing blanks", what, p)
	}
	return plainValue(what, p)
}

func appendNew(list []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

// seconds writes d as systemd's time span, in whole seconds or minutes.
func seconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s >= 60 && s%60 == 0 {
		return strconv.FormatInt(s/60, 10) + "min"
	}
	return strconv.FormatInt(s, 10) + "s"
}

// escapeSpecifiers doubles '%', which systemd would otherwise read as the
// start of a specifier such as %n.
func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// quoteExe writes the executable path, the first word of a command line.
// systemd does not expand $VAR in it, so a '$' cannot be escaped there.
func quoteExe(p string) (string, error) {
	if strings.ContainsAny(p, "$\x00") {
		return "", fmt.Errorf("sbxrun's path %q contains '$', which systemd cannot run: install sbxrun elsewhere", p)
	}
	return quote(p, false), nil
}

func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = quote(w, true)
	}
	return strings.Join(q, " ")
}

// bare reports whether c passes through systemd's command-line parsing
// unchanged outside quotes ('%' and '$' are doubled separately).
func bare(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_-./:=,+@%$^~", c)
}

// quote writes one word of a unit-file command line (systemd.service(5),
// "Command lines"): bare when every character is plain, else in double
// quotes with C escapes. '%' is always doubled (specifiers); '$' is doubled
// when dollar is set, for ExecStart= lines, which expand $VAR (Environment=
// does not).
func quote(w string, dollar bool) string {
	needQuotes := w == ""
	for _, c := range w {
		if !bare(c) {
			needQuotes = true
			break
		}
	}
	var b strings.Builder
	if needQuotes {
		b.WriteByte('"')
	}
	for i := 0; i < len(w); {
		c, size := utf8.DecodeRuneInString(w[i:])
		switch {
		case c == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, w[i])
		case c == '%':
			b.WriteString("%%")
		case c == '$' && dollar:
			b.WriteString("$$")
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteRune(c)
		}
		i += size
	}
	if needQuotes {
		b.WriteByte('"')
	}
	return b.String()
}
