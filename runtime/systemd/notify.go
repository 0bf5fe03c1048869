package systemd

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/sbxrun/sbxrun/runtime"
)

// Notify makes the run o behave as the main process of a Type=notify
// service (the hidden --systemd-notify run flag):
//   - SIGTERM and SIGINT stop the workload with its stop signal, then
//     SIGKILL after its stop timeout, and sbxrun exits with its status;
//   - once the workload runs, sbxrun sends READY=1 with MAINPID set to its
//     own pid: sbxrun is the process in the unit's cgroup that systemd can
//     wait for and signal; the workload runs under containerd's shim,
//     outside that cgroup, where systemd can neither reap it nor see it
//     exit, and a SIGTERM sent to it directly would bypass the stop
//     timeout and the cleanup;
//   - when the stop begins, it sends STOPPING=1.
//
// Without NOTIFY_SOCKET (the ExecStart command run by hand) nothing is
// sent. A message that cannot be delivered is reported on stderr once.
func Notify(o *runtime.RunOptions, stderr io.Writer) {
	if stderr == nil {
		stderr = os.Stderr
	}
	send := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			fmt.Fprintf(stderr, "sbxrun: telling systemd %q: %v\n", strings.SplitN(state, "\n", 2)[0], err)
		}
	}
	o.StopOnTerm = true
	o.OnStarted = func(pid uint32) {
		send(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=sandbox %s running (workload pid %d)", os.Getpid(), o.Name, pid))
	}
	o.OnStopping = func() {
		send(fmt.Sprintf("STOPPING=1\nSTATUS=stopping sandbox %s", o.Name))
	}
}

var (
	// secretKeyWords are the words of a variable name (split at '_', '-'
	// and '.') that mark a credential.
	secretKeyWords = map[string]bool{
		"TOKEN": true, "TOKENS": true, "SECRET": true, "SECRETS": true, "PASSWORD": true, "PASSWD": true,
		"PASS": true, "PASSPHRASE": true, "KEY": true, "APIKEY": true, "CREDENTIAL": true,
		"CREDENTIALS": true, "AUTH": true, "AUTHORIZATION": true, "COOKIE": true, "SESSION": true,
		"PRIVATE": true, "PAT": true, "DSN": true,
	}
	// secretValueRE matches values that are credentials whatever their
	// name: well-known token formats, private keys, URLs with a password.
	secretValueRE = regexp.MustCompile(`^(gh[pousr]_|github_pat_|glpat-|hf_|sk-|sk_live_|rk_live_|xox[abpr]-|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|AIza|ya29\.|npm_|pypi-|eyJ[A-Za-z0-9_-]+\.)|-----BEGIN [A-Z ]*PRIVATE KEY-----|://[^/@\s:]*:[^/@\s]+@`)
)

// LooksSecret reports whether the variable key=value looks like a
// credential, by its name (HF_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD) or
// by its value (ghp_..., hf_..., a URL with a password). Such values are
// never written into a unit.
func LooksSecret(key, value string) bool {
	for _, w := range strings.FieldsFunc(strings.ToUpper(key), func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		if secretKeyWords[w] {
			return true
		}
	}
	return secretValueRE.MatchString(value)
}
