package systemd

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sbxrun/sbxrun/runtime"
)

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "systemd", "user")
	for i, text := range []string{"[Unit]\nDescription=one\n", "[Unit]\nDescription=two\n"} {
		path, replaced, err := Install(dir, "ollama", text)
		if err != nil {
			t.Fatalf("Install #%d: %v", i, err)
		}
		if want := filepath.Join(dir, "sbxrun-ollama.service"); path != want {
			t.Errorf("Install wrote %q, want %q", path, want)
		}
		if replaced != (i == 1) {
			t.Errorf("Install #%d: replaced = %v", i, replaced)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != text {
			t.Errorf("unit holds %q (%v), want %q", b, err, text)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("unit mode %v, want 0644", fi.Mode().Perm())
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("unit directory holds %d entries, want only the unit (no temporary files)", len(entries))
	}
}

func TestWriteEnvFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sbxrun")
	path := filepath.Join(dir, "ollama.env")
	if err := WriteEnvFile(path, []string{"HF_TOKEN=hf_one", `ODD=a "b" $c \d`}); err != nil {
		t.Fatal(err)
	}
	want := "HF_TOKEN=\"hf_one\"\nODD=\"a \\\"b\\\" \\$c \\\\d\"\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("env file holds %q, want %q", b, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("env file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o755 {
		t.Errorf("env file directory mode %v, want 0755 (it holds the system profile file too)", di.Mode().Perm())
	}

	// An operator's own lines survive; a key set again is replaced.
	if err := os.WriteFile(path, []byte("# mine\nOTHER=1\nexport HF_TOKEN=old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteEnvFile(path, []string{"HF_TOKEN=hf_two"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "# mine\nOTHER=1\nHF_TOKEN=\"hf_two\"\n" {
		t.Errorf("env file holds %q after the update", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v after the update, want 0600", fi.Mode().Perm())
	}
}

func TestServiceEnvironment(t *testing.T) {
	environ := []string{"HOME=/root", "PATH=/usr/bin", "SBXRUN_ADDRESS=/run/c.sock", "SBXRUN_CDI_SPEC_DIRS=/etc/cdi",
		"CONTAINERD_ADDRESS=/run/d.sock", "XDG_CONFIG_HOME=/cfg", "XDG_DATA_HOME=/data", "XDG_RUNTIME_DIR=/run/user/0",
		"SBXRUN_ROOTLESS=1", "SBXRUN_ROOTLESS_UID=1000", "SBXRUN_REGISTRY_TOKEN=t0k", "NOTIFY_SOCKET=/x", "HF_TOKEN=hf_x",
		"HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost", "HTTP_PROXY=http://u:secret@proxy:3128"}
	tests := []struct {
		scope        Scope
		env, secrets []string
	}{
		{System, []string{"HOME=/root", "SBXRUN_ADDRESS=/run/c.sock", "SBXRUN_CDI_SPEC_DIRS=/etc/cdi", "CONTAINERD_ADDRESS=/run/d.sock",
			"XDG_CONFIG_HOME=/cfg", "XDG_DATA_HOME=/data", "HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost"},
			[]string{"SBXRUN_REGISTRY_TOKEN=t0k", "HTTP_PROXY=http://u:secret@proxy:3128"}},
		// The user manager sets HOME itself.
		{User, []string{"SBXRUN_ADDRESS=/run/c.sock", "SBXRUN_CDI_SPEC_DIRS=/etc/cdi", "CONTAINERD_ADDRESS=/run/d.sock",
			"XDG_CONFIG_HOME=/cfg", "XDG_DATA_HOME=/data", "HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost"},
			[]string{"SBXRUN_REGISTRY_TOKEN=t0k", "HTTP_PROXY=http://u:secret@proxy:3128"}},
	}
	for _, tt := range tests {
		env, secrets := ServiceEnvironment(tt.scope, environ)
		if !slices.Equal(env, tt.env) || !slices.Equal(secrets, tt.secrets) {
			t.Errorf("ServiceEnvironment(%v) = %q, %q; want %q, %q", tt.scope, env, secrets, tt.env, tt.secrets)
		}
	}
}

func TestPaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	tests := []struct {
		scope     Scope
		xdg       string
		unit, env string
	}{
		{System, "", "/etc/systemd/system", "/etc/sbxrun/ollama.env"},
		{User, "", home + "/.config/systemd/user", home + "/.config/sbxrun/ollama.env"},
		{User, "/cfg", "/cfg/systemd/user", "/cfg/sbxrun/ollama.env"},
		{User, "relative", home + "/.config/systemd/user", home + "/.config/sbxrun/ollama.env"},
	}
	for _, tt := range tests {
		t.Setenv("XDG_CONFIG_HOME", tt.xdg)
		dir, err := UnitDir(tt.scope)
		if err != nil || dir != tt.unit {
			t.Errorf("UnitDir(%v) with XDG_CONFIG_HOME=%q = %q, %v; want %q", tt.scope, tt.xdg, dir, err, tt.unit)
		}
		env, err := EnvFilePath(tt.scope, "ollama")
		if err != nil || env != tt.env {
			t.Errorf("EnvFilePath(%v) with XDG_CONFIG_HOME=%q = %q, %v; want %q", tt.scope, tt.xdg, env, err, tt.env)
		}
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		scope    Scope
		replaced bool
		want     []string
	}{
		{System, false, []string{"systemctl daemon-reload", "systemctl enable --now sbxrun-ollama.service"}},
		{System, true, []string{"systemctl daemon-reload", "systemctl enable --now sbxrun-ollama.service", "systemctl restart sbxrun-ollama.service"}},
		{User, false, []string{"systemctl --user daemon-reload", "systemctl --user enable --now sbxrun-ollama.service", `loginctl enable-linger "$USER"`}},
	}
	for _, tt := range tests {
		if got := Commands(tt.scope, "ollama", tt.replaced); !slices.Equal(got, tt.want) {
			t.Errorf("Commands(%v, replaced %v) = %q, want %q", tt.scope, tt.replaced, got, tt.want)
		}
	}
}

// listen opens a datagram socket like systemd's notify socket and points
// NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) map[string]string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notify message: %v", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

func TestNotify(t *testing.T) {
	conn := listen(t)
	o := &runtime.RunOptions{Name: "ollama"}
	var stderr strings.Builder
	Notify(o, &stderr)
	if !o.StopOnTerm || o.OnStarted == nil || o.OnStopping == nil {
		t.Fatalf("Notify left StopOnTerm %v, OnStarted set %v, OnStopping set %v", o.StopOnTerm, o.OnStarted != nil, o.OnStopping != nil)
	}
	o.OnStarted(4242)
	m := receive(t, conn)
	if m["READY"] != "1" || m["MAINPID"] != strconv.Itoa(os.Getpid()) || !strings.Contains(m["STATUS"], "ollama") || !strings.Contains(m["STATUS"], "4242") {
		t.Errorf("started: sent %q, want READY=1, MAINPID=%d (sbxrun itself) and a STATUS naming the sandbox and workload pid", m, os.Getpid())
	}
	o.OnStopping()
	if m := receive(t, conn); m["STOPPING"] != "1" {
		t.Errorf("stopping: sent %q, want STOPPING=1", m)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr: %q", stderr.String())
	}

	// Without NOTIFY_SOCKET (the command run by hand) nothing is sent and
	// nothing is reported.
	t.Setenv("NOTIFY_SOCKET", "")
	o.OnStarted(1)
	o.OnStopping()
	// A socket that is gone is reported, not fatal.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	o.OnStarted(1)
	if !strings.Contains(stderr.String(), "READY=1") {
		t.Errorf("a lost READY=1 was not reported: stderr %q", stderr.String())
	}
}
