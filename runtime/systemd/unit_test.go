package systemd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile is a parsed unit: section -> key -> values in order, with the
// raw values (before any unquoting).
type unitFile map[string]map[string][]string

// parseUnit reads the INI-like unit format (systemd.syntax(7)): comments
// start with '#' or ';', a trailing backslash continues a line.
func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = strings.Trim(l, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %d %q is no KEY=VALUE in a section", i+1, l)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// one returns the only value of section.key.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: got %d values %q, want exactly one", section, key, len(v), v)
	}
	return v[0]
}

// resolveSpecifiers does what systemd does to a value before anything
// else: "%%" is "%". Generated units use no other specifier, so any other
// is an error here.
func resolveSpecifiers(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", fmt.Errorf("specifier %q at %d of %q", s[i:min(i+2, len(s))], i, s)
	}
	return b.String(), nil
}

// splitWords splits a value into words as systemd's extract_first_word
// with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE does: blanks separate words,
// "..." and '...' quote, and backslash escapes are C escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(s) && strings.ContainsRune(" \t\n", rune(s[i])) {
			i++
		}
		if i >= len(s) {
			return words, nil
		}
		var w []byte
		var quote byte
	word:
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\':
				if i+1 >= len(s) {
					return nil, fmt.Errorf("trailing backslash in %q", s)
				}
				i++
				switch e := s[i]; e {
				case 'n':
					w = append(w, '\n')
				case 't':
					w = append(w, '\t')
				case 'r':
					w = append(w, '\r')
				case 'a':
					w = append(w, '\a')
				case 'b':
					w = append(w, '\b')
				case 'f':
					w = append(w, '\f')
				case 'v':
					w = append(w, '\v')
				case 's':
					w = append(w, ' ')
				case '\\', '"', '\'':
					w = append(w, e)
				case 'x':
					if i+2 >= len(s) {
						return nil, fmt.Errorf("short \\x escape in %q", s)
					}
					n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
					if err != nil {
						return nil, fmt.Errorf("bad \\x escape in %q", s)
					}
					w = append(w, byte(n))
					i += 2
				default:
					return nil, fmt.Errorf("unknown escape \\%c in %q", e, s)
				}
			case quote != 0 && c == quote:
				quote = 0
			case quote != 0:
				w = append(w, c)
			case c == '"' || c == '\'':
				quote = c
			case c == ' ' || c == '\t' || c == '\n':
				break word
			default:
				w = append(w, c)
			}
		}
		if quote != 0 {
			return nil, fmt.Errorf("unbalanced quoting in %q", s)
		}
		words = append(words, string(w))
	}
}

// execArgv is the argv systemd runs for a command line value: specifiers,
// words, a "-" prefix on the binary (ignore failure), then "$$" as "$" in
// the arguments (a bare $VAR is an error here: generated lines use none).
func execArgv(value string) (argv []string, ignoreFailure bool, err error) {
	v, err := resolveSpecifiers(value)
	if err != nil {
		return nil, false, err
	}
	if strings.HasPrefix(v, "-") {
		ignoreFailure, v = true, v[1:]
	}
	words, err := splitWords(v)
	if err != nil {
		return nil, false, err
	}
	if len(words) == 0 || !filepath.IsAbs(words[0]) {
		return nil, false, fmt.Errorf("command line %q does not start with an absolute path", value)
	}
	for i, w := range words {
		if i == 0 {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(w); j++ {
			if w[j] != '$' {
				b.WriteByte(w[j])
				continue
			}
			if j+1 < len(w) && w[j+1] == '$' {
				b.WriteByte('$')
				j++
				continue
			}
			return nil, false, fmt.Errorf("argument %q would expand a variable", w)
		}
		words[i] = b.String()
	}
	return words, ignoreFailure, nil
}

// tricky are arguments that systemd's command-line syntax would change
// unless quoted right.
var tricky = []string{
	"plain", "with space", `dq"inside`, `'single'`, "$HOME", "${HOME}", "$$", "100%", "%n", "%%",
	`back\slash`, `\;`, ";", "", " ", "tab\there", "new\nline", "cr\rlf", "é ü 字", "\x01ctl\x7f",
	"invalid\xffutf8", "#hash", "end\\", `"`, `'`, "a'b\"c", "-- ", "KEY=a b", "$(whoami)", "`id`", "*", "~",
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, w := range tricky {
		t.Run(strconv.Quote(w), func(t *testing.T) {
			line := "/bin/x " + quote(w, true)
			argv, _, err := execArgv(line)
			if err != nil {
				t.Fatalf("ExecStart=%s: %v", line, err)
			}
			if len(argv) != 2 || argv[1] != w {
				t.Errorf("ExecStart=%s runs %q, want [/bin/x %q]", line, argv, w)
			}
			// Environment= splits the same way but expands no $VAR.
			kv := "K=" + w
			env, err := resolveSpecifiers(quote(kv, false))
			if err != nil {
				t.Fatal(err)
			}
			words, err := splitWords(env)
			if err != nil || len(words) != 1 || words[0] != kv {
				t.Errorf("Environment=%s sets %q (%v), want %q", quote(kv, false), words, err, kv)
			}
		})
	}
}

// analyze returns the systemd-analyze binary or fails t loudly.
func analyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found: install it with `apt-get install -y systemd` (hack/deps.sh does)")
	}
	return p
}

// verify runs `systemd-analyze [--user] verify` on the unit text written as
// sbxrun-NAME.service and fails t on any output on stderr.
func verify(t *testing.T, name string, scope Scope, text string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, UnitName(name))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--man=no", path}
	env := os.Environ()
	if scope == User {
		args = append([]string{"--user"}, args...)
		rt := filepath.Join(dir, "run")
		if err := os.Mkdir(rt, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, "XDG_RUNTIME_DIR="+rt)
	}
	cmd := exec.Command(analyze(t), args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze %s: %v\nstdout: %s\nstderr: %s\nunit:\n%s", strings.Join(args, " "), err, out, stderr.String(), text)
	}
}

// fakeExec writes an executable standing in for sbxrun (verify checks that
// ExecStart's binary exists and can be executed).
func fakeExec(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sbxrun")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGenerate(t *testing.T) {
	bin := fakeExec(t, t.TempDir())
	spaced := fakeExec(t, filepath.Join(t.TempDir(), "my tools", "100%"))
	base := func() Options {
		return Options{
			Name: "ollama", Target: "model-dev", Scope: System, Exec: bin,
			Run:              []string{"model-dev", "--name", "ollama", "--", "ollama", "serve"},
			WorkingDirectory: "/srv/models", Environment: []string{"HOME=/root"},
			StopSignal: syscall.SIGTERM, StopTimeout: 10 * time.Second, Network: true,
		}
	}
	tests := []struct {
		name string
		edit func(o *Options)
		// check looks at the parsed unit beyond the common checks.
		check func(t *testing.T, u unitFile)
	}{
		{"rootful", func(o *Options) {}, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Unit", "After"); got != "containerd.service network-online.target" {
				t.Errorf("After=%s, want containerd.service network-online.target", got)
			}
			if got := u.one(t, "Unit", "Wants"); got != "network-online.target" {
				t.Errorf("Wants=%s", got)
			}
			if got := u.one(t, "Install", "WantedBy"); got != "multi-user.target" {
				t.Errorf("WantedBy=%s", got)
			}
			if _, ok := u["Service"]["ExecStartPre"]; ok {
				t.Errorf("ExecStartPre without GPUs: %q", u["Service"]["ExecStartPre"])
			}
			if got := u.one(t, "Unit", "Description"); got != "sbxrun sandbox ollama (model-dev)" {
				t.Errorf("Description=%s", got)
			}
		}},
		{"user", func(o *Options) { o.Scope = User; o.Environment = nil }, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Unit", "After"); got != "sbxrun-containerd.service" {
				t.Errorf("user unit After=%s, want the user's rootless containerd alone (no network-online.target for user managers)", got)
			}
			if got := u.one(t, "Unit", "Wants"); got != "sbxrun-containerd.service" {
				t.Errorf("user unit Wants=%s, want the user's rootless containerd (it starts it)", got)
			}
			if got := u.one(t, "Install", "WantedBy"); got != "default.target" {
				t.Errorf("WantedBy=%s, want default.target", got)
			}
		}},
		{"no-network", func(o *Options) { o.Network = false }, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Unit", "After"); got != "containerd.service" {
				t.Errorf("After=%s", got)
			}
		}},
		{"gpus", func(o *Options) { o.GPUs = true; o.Global = []string{"--namespace", "gpu"} }, func(t *testing.T, u unitFile) {
			argv, ignore, err := execArgv(u.one(t, "Service", "ExecStartPre"))
			if err != nil || ignore || !slices.Equal(argv, []string{bin, "--namespace", "gpu", "gpu", "setup", "--if-stale"}) {
				t.Errorf("ExecStartPre runs %q (ignore failure %v, %v), want the CDI refresh", argv, ignore, err)
			}
		}},
		{"gpus-user", func(o *Options) { o.GPUs = true; o.Scope = User }, nil},
		{"gpus-optional", func(o *Options) { o.GPUs, o.GPUsOptional = true, true }, func(t *testing.T, u unitFile) {
			argv, ignore, err := execArgv(u.one(t, "Service", "ExecStartPre"))
			if err != nil || !ignore || !slices.Equal(argv, []string{bin, "gpu", "setup", "--if-stale"}) {
				t.Errorf("ExecStartPre runs %q (ignore failure %v, %v), want the CDI refresh with failure ignored", argv, ignore, err)
			}
		}},
		{"env-files", func(o *Options) {
			o.EnvironmentFiles = []string{"/etc/sbxrun/ollama.env"}
			o.Environment = append(o.Environment, "SBXRUN_ADDRESS=/run/a b/containerd.sock", "X=100% $HOME")
			o.Run = []string{"-e", "HF_TOKEN", "--env-file", "/etc/o.env", "model-dev", "--name", "ollama"}
		}, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Service", "EnvironmentFile"); got != "/etc/sbxrun/ollama.env" {
				t.Errorf("EnvironmentFile=%s", got)
			}
			var env []string
			for _, v := range u["Service"]["Environment"] {
				r, err := resolveSpecifiers(v)
				if err != nil {
					t.Fatal(err)
				}
				w, err := splitWords(r)
				if err != nil {
					t.Fatal(err)
				}
				env = append(env, w...)
			}
			if want := []string{"HOME=/root", "SBXRUN_ADDRESS=/run/a b/containerd.sock", "X=100% $HOME"}; !slices.Equal(env, want) {
				t.Errorf("Environment= sets %q, want %q", env, want)
			}
		}},
		{"env-files-user", func(o *Options) {
			o.Scope = User
			o.EnvironmentFiles = []string{"/home/dev/.config/sbxrun/ollama.env"}
		}, nil},
		{"restart-no", func(o *Options) { o.Restart = RestartNo }, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Service", "Restart"); got != "no" {
				t.Errorf("Restart=%s", got)
			}
			if r := u["Service"]["RestartSec"]; len(r) > 0 {
				t.Errorf("RestartSec=%q with Restart=no", r)
			}
		}},
		{"restart-on-failure", func(o *Options) { o.Restart = RestartOnFailure }, nil},
		{"restart-always", func(o *Options) { o.Restart = RestartAlways }, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Service", "Restart"); got != "always" {
				t.Errorf("Restart=%s", got)
			}
		}},
		{"after-wants-description", func(o *Options) {
			o.After = []string{"nvidia-persistenced.service", "containerd.service"}
			o.Wants = []string{"nvidia-persistenced.service"}
			o.Description = `Ollama on 100% of "GPU0"`
		}, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Unit", "After"); got != "containerd.service network-online.target nvidia-persistenced.service" {
				t.Errorf("After=%s", got)
			}
			if got := u.one(t, "Unit", "Wants"); got != "network-online.target nvidia-persistenced.service" {
				t.Errorf("Wants=%s", got)
			}
			if got, _ := resolveSpecifiers(u.one(t, "Unit", "Description")); got != `Ollama on 100% of "GPU0"` {
				t.Errorf("Description resolves to %q", got)
			}
		}},
		{"stop-signal-timeout", func(o *Options) { o.StopSignal = syscall.SIGINT; o.StopTimeout = 2 * time.Minute }, func(t *testing.T, u unitFile) {
			if got := u.one(t, "Service", "SuccessExitStatus"); got != "130" {
				t.Errorf("SuccessExitStatus=%s, want 130 (SIGINT)", got)
			}
			if got := u.one(t, "Service", "TimeoutStopSec"); got != "150s" {
				t.Errorf("TimeoutStopSec=%s, want 150s", got)
			}
		}},
		{"tricky-arguments", func(o *Options) {
			o.Exec = spaced
			o.WorkingDirectory = "/srv/my models/100%"
			o.Run = append([]string{"base", "--name", "ollama", "--"}, tricky...)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.edit(&o)
			text, err := Generate(o)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			verify(t, o.Name, o.Scope, text)
			u := parseUnit(t, text)
			for k, want := range map[string]string{"Type": "notify", "NotifyAccess": "main", "KillMode": "mixed"} {
				if got := u.one(t, "Service", k); got != want {
					t.Errorf("%s=%s, want %s", k, got, want)
				}
			}
			argv, _, err := execArgv(u.one(t, "Service", "ExecStart"))
			if err != nil {
				t.Fatalf("ExecStart: %v", err)
			}
			want := append(append([]string{o.Exec}, o.Global...), append([]string{"run", NotifyFlag}, o.Run...)...)
			if !slices.Equal(argv, want) {
				t.Errorf("ExecStart runs\n %q\nwant\n %q", argv, want)
			}
			post, ignore, err := execArgv(u.one(t, "Service", "ExecStopPost"))
			if err != nil || !ignore || !slices.Equal(post, append(append([]string{o.Exec}, o.Global...), "gc")) {
				t.Errorf("ExecStopPost runs %q (ignore failure %v, %v), want -sbxrun gc", post, ignore, err)
			}
			if wd, err := resolveSpecifiers(u.one(t, "Service", "WorkingDirectory")); err != nil || wd != o.WorkingDirectory {
				t.Errorf("WorkingDirectory resolves to %q (%v), want %q", wd, err, o.WorkingDirectory)
			}
			stop, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec"))
			if err != nil || stop <= o.StopTimeout+10*time.Second {
				t.Errorf("TimeoutStopSec=%s (%v): want longer than the stop timeout %s plus the 10 s SIGKILL wait", u.one(t, "Service", "TimeoutStopSec"), err, o.StopTimeout)
			}
			restart := o.Restart
			if restart == "" {
				restart = RestartOnFailure
			}
			if got := u.one(t, "Service", "Restart"); got != restart {
				t.Errorf("Restart=%s, want %s", got, restart)
			}
			if restart != RestartNo && u.one(t, "Service", "RestartSec") != "5s" {
				t.Errorf("RestartSec=%s, want 5s", u.one(t, "Service", "RestartSec"))
			}
			if !strings.Contains(u.one(t, "Unit", "After"), "containerd.service") {
				t.Errorf("After= lacks containerd.service")
			}
			if tt.check != nil {
				tt.check(t, u)
			}
		})
	}
}

func TestGenerateRefuses(t *testing.T) {
	good := Options{Name: "x", Exec: "/usr/bin/sbxrun", Run: []string{"base"}, StopSignal: syscall.SIGTERM, StopTimeout: time.Second}
	tests := []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"name", func(o *Options) { o.Name = "a b" }, "invalid sandbox name"},
		{"empty-name", func(o *Options) { o.Name = "" }, "invalid sandbox name"},
		{"restart", func(o *Options) { o.Restart = "sometimes" }, "use no, on-failure or always"},
		{"relative-exec", func(o *Options) { o.Exec = "bin/sbxrun" }, "not absolute"},
		{"dollar-exec", func(o *Options) { o.Exec = "/opt/$x/sbxrun" }, "install sbxrun elsewhere"},
		{"no-target", func(o *Options) { o.Run = nil }, "no profile or image"},
		{"after", func(o *Options) { o.After = []string{"containerd"} }, "invalid unit name"},
		{"wants", func(o *Options) { o.Wants = []string{"a b.service"} }, "invalid unit name"},
		{"description", func(o *Options) { o.Description = "two\nlines" }, "one line"},
		{"continuation", func(o *Options) { o.Description = `ends in \` }, "backslash"},
		{"workdir", func(o *Options) { o.WorkingDirectory = "rel" }, "absolute path"},
		{"env-file", func(o *Options) { o.EnvironmentFiles = []string{"/x.env "} }, "absolute path"},
		{"environment", func(o *Options) { o.Environment = []string{"=x"} }, "KEY=VALUE"},
		{"nul", func(o *Options) { o.Run = []string{"base", "--", "a\x00b"} }, "NUL"},
		{"signal", func(o *Options) { o.StopSignal = 0 }, "stop signal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := Generate(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Generate: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := Generate(good); err != nil {
		t.Errorf("Generate(good): %v", err)
	}
}

func TestLooksSecret(t *testing.T) {
	tests := []struct {
		key, value string
		want       bool
	}{
		{"HF_TOKEN", "x", true},
		{"GITHUB_TOKEN", "x", true},
		{"AWS_SECRET_ACCESS_KEY", "x", true},
		{"DB_PASSWORD", "x", true},
		{"OPENAI_API_KEY", "x", true},
		{"api-key", "x", true},
		{"WANDB_API_KEY", "x", true},
		{"MY_VAR", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", true},
		{"MY_VAR", "hf_abcdefghijkl", true},
		{"DATABASE_URL", "postgres://user:hunter2@db/x", true},
		{"MY_VAR", "AKIAABCDEFGHIJKLMNOP", true},
		{"PATH", "/usr/bin:/bin", false},
		{"OLLAMA_HOST", "0.0.0.0:11434", false},
		{"KEYBOARD", "us", false},
		{"MONKEY", "x", false},
		{"PYTHONPATH", "/workspace", false},
		{"URL", "https://example.com/x", false},
		{"CUDA_VISIBLE_DEVICES", "0,1", false},
	}
	for _, tt := range tests {
		if got := LooksSecret(tt.key, tt.value); got != tt.want {
			t.Errorf("LooksSecret(%q, %q) = %v, want %v", tt.key, tt.value, got, tt.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 40 * time.Second: "40s", 15 * time.Minute: "15min", 90 * time.Second: "90s",
		1500 * time.Millisecond: "2s",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%s) = %q, want %q", d, got, want)
		}
	}
}
