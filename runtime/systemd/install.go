package systemd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ServiceEnvironment picks, from the generating process's environment,
// what the unit must set for sbxrun to run the same sandbox: the variables
// that change what a run does (SBXRUN_*, CONTAINERD_ADDRESS,
// XDG_CONFIG_HOME, XDG_DATA_HOME, the HTTP(S)_PROXY/NO_PROXY pull settings),
// and HOME for a system unit, whose
// processes get none ("~" in mounts and profiles needs it). Values that
// look like credentials are returned apart, for an environment file.
// SBXRUN_ROOTLESS* mark a process sbxrun re-executed itself as and are
// left out.
func ServiceEnvironment(s Scope, environ []string) (env, secrets []string) {
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "SBXRUN_ROOTLESS"):
			continue
		case strings.HasPrefix(k, "SBXRUN_"), k == "CONTAINERD_ADDRESS", k == "XDG_CONFIG_HOME", k == "XDG_DATA_HOME":
		case isProxyVar(k):
			// A unit that pulls at boot behind a proxy needs it too.
		case k == "HOME" && s == System:
		default:
			continue
		}
		if LooksSecret(k, v) {
			secrets = append(secrets, kv)
		} else {
			env = append(env, kv)
		}
	}
	return env, secrets
}

// isProxyVar reports whether k is one of the proxy variables Go's HTTP
// client (and so sbxrun's pulls) reads.
func isProxyVar(k string) bool {
	switch strings.ToUpper(k) {
	case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY":
		return true
	}
	return false
}

// UnitDir is where Install puts units of scope: /etc/systemd/system, or the
// user's $XDG_CONFIG_HOME/systemd/user (~/.config/systemd/user).
func UnitDir(s Scope) (string, error) {
	if s == System {
		return "/etc/systemd/system", nil
	}
	cfg, err := userConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cfg, "systemd", "user"), nil
}

// EnvFilePath is the environment file that holds the credentials of the
// sandbox name: /etc/sbxrun/NAME.env, or ~/.config/sbxrun/NAME.env.
func EnvFilePath(s Scope, name string) (string, error) {
	dir := "/etc/sbxrun"
	if s == User {
		cfg, err := userConfigDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(cfg, "sbxrun")
	}
	return filepath.Join(dir, name+".env"), nil
}

func userConfigDir() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: set HOME")
	}
	return filepath.Join(home, ".config"), nil
}

// Install writes the unit text of the sandbox name into dir (created when
// missing) atomically, mode 0644. It returns the unit's path and whether it
// replaced an existing unit.
func Install(dir, name, text string) (path string, replaced bool, err error) {
	path = filepath.Join(dir, UnitName(name))
	_, err = os.Stat(path)
	replaced = err == nil
	if err := writeFileAtomic(path, []byte(text), 0o644); err != nil {
		return "", false, err
	}
	return path, replaced, nil
}

// Commands are the exact systemctl commands that load and start an
// installed unit of the sandbox name (restart instead of start when it
// replaced one).
func Commands(s Scope, name string, replaced bool) []string {
	ctl := "systemctl"
	if s == User {
		ctl = "systemctl --user"
	}
	unit := UnitName(name)
	cmds := []string{ctl + " daemon-reload", ctl + " enable --now " + unit}
	if replaced {
		cmds = append(cmds, ctl+" restart "+unit)
	}
	if s == User {
		// Without lingering, a user's services start at login, not at boot.
		cmds = append(cmds, "loginctl enable-linger \"$USER\"")
	}
	return cmds
}

// WriteEnvFile sets the KEY=VALUE pairs kvs in the systemd environment file
// at path: it creates the file (mode 0600) and its directory when missing,
// replaces the lines that set one of these keys, keeps every other line,
// and leaves the file mode 0600. The directory is 0755: /etc/sbxrun also
// holds the system profile file, which every user reads.
func WriteEnvFile(path string, kvs []string) error {
	set := map[string]bool{}
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var out bytes.Buffer
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %q: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		k, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "export "), "=")
		if set[strings.TrimSpace(k)] {
			continue
		}
		out.WriteString(l + "\n")
	}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		out.WriteString(k + "=" + envFileQuote(v) + "\n")
	}
	return writeFileAtomic(path, out.Bytes(), 0o600)
}

// envFileQuote writes v as a double-quoted value of a systemd environment
// file, in which a backslash escapes '"', '\\', '`' and '$'.
func envFileQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range v {
		if strings.ContainsRune("\"\\`$", c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

// writeFileAtomic writes data to a temporary file next to path with mode
// perm and renames it over path, so readers see the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %q: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	return nil
}
