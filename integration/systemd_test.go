package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// The tests below turn sandbox commands into units with `sbxrun systemd
// generate`, check them with systemd-analyze, and run the units' commands
// the way systemd does: the ExecStart= argv as systemd splits it, in the
// unit's WorkingDirectory, with only the unit's environment and a
// NOTIFY_SOCKET the test reads; `systemctl stop` is SIGTERM to the main
// process (KillMode=mixed), a crash is SIGKILL.

// unitValues are a unit file's values by key (sections ignored: the keys
// read here occur in one section each), raw, in order.
type unitValues map[string][]string

func parseUnitText(t *testing.T, text string) unitValues {
	t.Helper()
	u := unitValues{}
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			t.Fatalf("unit line %d %q continues on the next line; generated units never do", i+1, l)
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("unit line %d %q is no KEY=VALUE", i+1, l)
		}
		u[k] = append(u[k], v)
	}
	return u
}

func (u unitValues) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("unit has %d %s= lines %q, want one", len(u[key]), key, u[key])
	}
	return u[key][0]
}

// unitWords splits a unit value as systemd does: "%%" is "%" (no other
// specifier is expected), then words at blanks with "..." or '...' quoting
// and C escapes.
func unitWords(t *testing.T, value string) []string {
	t.Helper()
	v := strings.ReplaceAll(value, "%%", "\x00")
	if strings.Contains(v, "%") {
		t.Fatalf("value %q uses a specifier", value)
	}
	v = strings.ReplaceAll(v, "\x00", "%")
	var words []string
	var w []byte
	in, quote := false, byte(0)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v):
			i++
			switch e := v[i]; e {
			case 'n':
				w = append(w, '\n')
			case 't':
				w = append(w, '\t')
			case 'r':
				w = append(w, '\r')
			case 'x':
				n, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
				if err != nil {
					t.Fatalf("bad \\x escape in %q", value)
				}
				w = append(w, byte(n))
				i += 2
			default:
				w = append(w, e)
			}
			in = true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w = append(w, c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, string(w))
			}
			w, in = nil, false
		default:
			w, in = append(w, c), true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quoting in %q", value)
	}
	if in {
		words = append(words, string(w))
	}
	return words
}

// command is the argv systemd runs for a command-line value, and whether
// its failure is ignored ("-" prefix). "$$" is "$" in the arguments.
func (u unitValues) command(t *testing.T, value string) (argv []string, ignoreFailure bool) {
	t.Helper()
	if strings.HasPrefix(value, "-") {
		ignoreFailure, value = true, value[1:]
	}
	argv = unitWords(t, value)
	for i := 1; i < len(argv); i++ {
		a := strings.ReplaceAll(argv[i], "$$", "\x00")
		if strings.Contains(a, "$") {
			t.Fatalf("argument %q would expand a variable", argv[i])
		}
		argv[i] = strings.ReplaceAll(a, "\x00", "$")
	}
	return argv, ignoreFailure
}

// environment is what systemd gives the unit's processes: a PATH, the
// Environment= assignments, then the EnvironmentFile= contents.
func (u unitValues) environment(t *testing.T) []string {
	t.Helper()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, v := range u["Environment"] {
		env = append(env, unitWords(t, v)...)
	}
	for _, f := range u["EnvironmentFile"] {
		b, err := os.ReadFile(strings.ReplaceAll(f, "%%", "%"))
		if err != nil {
			t.Fatalf("EnvironmentFile: %v", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if !ok || strings.HasPrefix(l, "#") {
				continue
			}
			if uq, err := strconv.Unquote(strings.ReplaceAll(v, `\$`, "$")); err == nil {
				v = uq
			}
			env = append(env, k+"="+v)
		}
	}
	return env
}

// generate runs `sbxrun systemd generate args...` in dir and returns the
// unit it printed and its stderr.
func generate(t *testing.T, dir string, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, code := runWith(t, opts{dir: dir}, append([]string{"systemd", "generate"}, args...)...)
	expect(t, "sbxrun systemd generate "+strings.Join(args, " "), code, 0, stdout, stderr)
	if code != 0 {
		t.FailNow()
	}
	return stdout, stderr
}

// analyzeVerify checks a unit file with `systemd-analyze verify`: exit 0
// and nothing on stderr.
func analyzeVerify(t *testing.T, path string) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found: install it with `apt-get install -y systemd` (hack/deps.sh does)")
	}
	cmd := exec.Command(bin, "verify", "--man=no", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		text, _ := os.ReadFile(path)
		t.Errorf("systemd-analyze verify %s: %v\nstdout: %s\nstderr: %s\nunit:\n%s", path, err, out, stderr.String(), text)
	}
}

// verifyText writes text as sbxrun-NAME.service and verifies it.
func verifyText(t *testing.T, name, text string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sbxrun-"+name+".service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	analyzeVerify(t, path)
}

// notifySocket is a datagram socket standing in for systemd's.
type notifySocket struct {
	path string
	msgs chan map[string]string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// Short: a socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "sbxrun-notify-")
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan map[string]string, 16)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		os.RemoveAll(dir)
	})
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := map[string]string{}
			for _, l := range strings.Split(string(buf[:k]), "\n") {
				key, v, _ := strings.Cut(l, "=")
				m[key] = v
			}
			n.msgs <- m
		}
	}()
	return n
}

// next returns the next message, failing t after d.
func (n *notifySocket) next(t *testing.T, p *proc, d time.Duration) map[string]string {
	t.Helper()
	select {
	case m := <-n.msgs:
		return m
	case <-p.done:
		select {
		case m := <-n.msgs:
			return m
		default:
		}
		t.Fatalf("sbxrun exited %d before sending a notify message\nstdout: %q\nstderr: %q", p.code, p.stdout.String(), p.stderr.String())
	case <-time.After(d):
		t.Fatalf("no notify message within %s\nstdout: %q\nstderr: %q", d, p.stdout.String(), p.stderr.String())
	}
	return nil
}

// none fails t when a message is waiting.
func (n *notifySocket) none(t *testing.T, what string) {
	t.Helper()
	select {
	case m := <-n.msgs:
		t.Errorf("%s: unexpected notify message %q", what, m)
	default:
	}
}

// startUnit starts the unit's ExecStart= the way systemd does, with
// NOTIFY_SOCKET pointing at n. The process is killed when the test ends.
func startUnit(t *testing.T, u unitValues, n *notifySocket) *proc {
	t.Helper()
	argv, _ := u.command(t, u.one(t, "ExecStart"))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = strings.ReplaceAll(u.one(t, "WorkingDirectory"), "%%", "%")
	cmd.Env = append(u.environment(t), "NOTIFY_SOCKET="+n.path)
	p := &proc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ExecStart %q: %v", argv, err)
	}
	go func() {
		err := cmd.Wait()
		p.code = exitCode(err, cmd)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// runUnitCommand runs one of the unit's other command lines (ExecStartPre=,
// ExecStopPost=) as systemd does and returns its exit status and whether
// systemd would ignore a failure.
func runUnitCommand(t *testing.T, u unitValues, key string) (code int, ignoreFailure bool, out string) {
	t.Helper()
	argv, ignore := u.command(t, u.one(t, key))
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = strings.ReplaceAll(u.one(t, "WorkingDirectory"), "%%", "%")
	cmd.Env = u.environment(t)
	b, err := cmd.CombinedOutput()
	return exitCode(err, cmd), ignore, string(b)
}

// awaitReady waits for READY=1 from p and checks that it names sbxrun as
// the main process and comes once the sandbox's task runs.
func awaitReady(t *testing.T, n *notifySocket, p *proc, name string) {
	t.Helper()
	m := n.next(t, p, 60*time.Second)
	if m["READY"] != "1" {
		t.Fatalf("first notify message %q, want READY=1", m)
	}
	if got, want := m["MAINPID"], strconv.Itoa(p.cmd.Process.Pid); got != want {
		t.Errorf("MAINPID=%s, want %s (the sbxrun that systemd started)", got, want)
	}
	ctx, cancel := nsCtx(t)
	defer cancel()
	ctr, err := harness.client.LoadContainer(ctx, name)
	if err != nil {
		t.Fatalf("READY=1 came, but there is no container %q: %v", name, err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatalf("READY=1 came, but container %q has no task: %v", name, err)
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != client.Running && st.Status != client.Stopped {
		t.Errorf("READY=1 came with the task in state %q (%v), want running (or already done)", st.Status, err)
	}
	if !strings.Contains(m["STATUS"], fmt.Sprintf("pid %d", task.Pid())) {
		t.Errorf("STATUS=%q does not name the workload's pid %d", m["STATUS"], task.Pid())
	}
}

// waitFile waits up to d for path to exist and returns its content.
func waitFile(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	var b []byte
	if !waitFor(d, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	}) {
		t.Fatalf("%s did not appear within %s", path, d)
	}
	return string(b)
}

func TestSystemd(t *testing.T) {
	t.Parallel()
	ns := useNamespace(t, false)

	t.Run("verify", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "sbxrun.yaml"),
			[]byte("profiles:\n  gpu-dev:\n    extends: base\n    gpus: all\n    gpu: optional\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "shared.env"), []byte("API_TOKEN=tok-123\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tricky := []string{"sh", "-c", `echo "$HOME" 100% 'x'; exit 3`, "a b", "", `\;`, ";", "%n", "$$"}
		tests := []struct {
			name string
			args []string
			// run is the expected run words in ExecStart (nil: args).
			run   []string
			check func(t *testing.T, u unitValues, text, stderr string)
		}{
			{"flags-after-target", append([]string{"--restart", "no", "base", "--name", "v1", "--memory", "64m", "-e", "FOO=a b", "--"}, tricky...),
				append([]string{"base", "--name", "v1", "--memory", "64m", "-e", "FOO=a b", "--"}, tricky...),
				func(t *testing.T, u unitValues, _, _ string) {
					if got := u.one(t, "Restart"); got != "no" {
						t.Errorf("Restart=%s", got)
					}
				}},
			{"restart-always", []string{"--name", "v2", "--restart=always", "--after", "nvidia-persistenced.service", "--wants", "nvidia-persistenced.service",
				"--description", "100% ollama", "--stop-timeout", "20", "base", "--", "true"},
				[]string{"--name", "v2", "--stop-timeout", "20", "base", "--", "true"},
				func(t *testing.T, u unitValues, _, _ string) {
					if got := u.one(t, "Restart"); got != "always" {
						t.Errorf("Restart=%s", got)
					}
					if got := u.one(t, "After"); got != "containerd.service network-online.target nvidia-persistenced.service" {
						t.Errorf("After=%s", got)
					}
					if got := u.one(t, "TimeoutStopSec"); got != "50s" {
						t.Errorf("TimeoutStopSec=%s, want 50s (stop timeout 20s + 30s)", got)
					}
				}},
			{"on-failure-default", []string{"--name", "v3", "--net", "none", "--pull", "never", "base", "true"},
				[]string{"--name", "v3", "--net", "none", "--pull", "never", "base", "true"},
				func(t *testing.T, u unitValues, _, _ string) {
					if u.one(t, "Restart") != "on-failure" || u.one(t, "RestartSec") != "5s" {
						t.Errorf("Restart=%s RestartSec=%s, want on-failure 5s", u.one(t, "Restart"), u.one(t, "RestartSec"))
					}
					if got := u.one(t, "After"); got != "containerd.service" {
						t.Errorf("After=%s: a sandbox without network that never pulls needs no network-online.target", got)
					}
				}},
			{"secret", []string{"--name", "v4", "-e", "HF_TOKEN=hf_sekr1t", "--env=DB_PASSWORD=hunter2", "-e", "PLAIN=1", "base", "--", "true"},
				[]string{"--name", "v4", "-e", "HF_TOKEN", "--env=DB_PASSWORD", "-e", "PLAIN=1", "base", "--", "true"},
				func(t *testing.T, u unitValues, text, stderr string) {
					for _, s := range []string{"hf_sekr1t", "hunter2"} {
						if strings.Contains(text, s) {
							t.Errorf("the unit holds the credential %q:\n%s", s, text)
						}
					}
					if got := u.one(t, "EnvironmentFile"); got != "/etc/sbxrun/v4.env" {
						t.Errorf("EnvironmentFile=%s, want /etc/sbxrun/v4.env", got)
					}
					if !strings.Contains(stderr, "HF_TOKEN, DB_PASSWORD") || !strings.Contains(stderr, "/etc/sbxrun/v4.env") || !strings.Contains(stderr, "--install") {
						t.Errorf("stderr %q does not tell where the credentials go", stderr)
					}
				}},
			{"env-file-readable", []string{"--name", "v6", "--env-file", "shared.env", "base", "--", "true"}, nil,
				func(t *testing.T, u unitValues, text, stderr string) {
					if !strings.Contains(stderr, "chmod 600 shared.env") || strings.Contains(text, "tok-123") {
						t.Errorf("a world-readable --env-file with a credential: stderr %q, want a chmod 600 warning; unit:\n%s", stderr, text)
					}
				}},
			{"gpus-optional", []string{"--name", "v5", "gpu-dev", "--", "nvidia-smi"}, nil,
				func(t *testing.T, u unitValues, _, _ string) {
					argv, ignore := u.command(t, u.one(t, "ExecStartPre"))
					if !ignore || !slices.Equal(argv[len(argv)-3:], []string{"gpu", "setup", "--if-stale"}) {
						t.Errorf("ExecStartPre=%s, want -sbxrun ... gpu setup --if-stale", u.one(t, "ExecStartPre"))
					}
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				text, stderr := generate(t, dir, tt.args...)
				u := parseUnitText(t, text)
				verifyText(t, tt.name, text)
				argv, _ := u.command(t, u.one(t, "ExecStart"))
				run := tt.run
				if run == nil {
					run = tt.args
				}
				want := append([]string{harness.sbxrun, "--namespace", ns, "run", "--systemd-notify"}, run...)
				if !slices.Equal(argv, want) {
					t.Errorf("ExecStart runs\n %q\nwant\n %q", argv, want)
				}
				for k, want := range map[string]string{"Type": "notify", "KillMode": "mixed", "WorkingDirectory": dir} {
					if got := u.one(t, k); got != want {
						t.Errorf("%s=%s, want %s", k, got, want)
					}
				}
				if tt.check != nil {
					tt.check(t, u, text, stderr)
				}
			})
		}
	})

	t.Run("refuses", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"base", "--", "true"},
			{"--name", "r1", "-d", "base"},
			{"--name", "r1", "-it", "base"},
			{"--name", "r1", "--rm=false", "base"},
			{"--name", "r1", "--restart", "sometimes", "base"},
			{"--name", "r1", "--memory", "lots", "base"},
		} {
			stdout, stderr, code := run(t, append([]string{"systemd", "generate"}, args...)...)
			expect(t, "systemd generate "+strings.Join(args, " "), code, 125, stdout, stderr)
			if stdout != "" || strings.Count(stderr, "\n") != 1 {
				t.Errorf("systemd generate %q: stdout %q, stderr %q: want one line on stderr only", args, stdout, stderr)
			}
		}
	})

	t.Run("install", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		unitPath := "/etc/systemd/system/sbxrun-" + name + ".service"
		envPath := "/etc/sbxrun/" + name + ".env"
		_, statErr := os.Stat("/etc/sbxrun")
		t.Cleanup(func() {
			os.Remove(unitPath)
			os.Remove(envPath)
			if errors.Is(statErr, os.ErrNotExist) {
				os.Remove("/etc/sbxrun")
			}
		})
		dir := t.TempDir()
		stdout, stderr, code := runWith(t, opts{dir: dir}, "systemd", "generate", "--install", "--name", name, "-e", "HF_TOKEN=hf_install_secret",
			"base", "--", "sh", "-c", `printf %s "$HF_TOKEN" > /workspace/token`)
		expect(t, "systemd generate --install", code, 0, stdout, stderr)
		for _, want := range []string{unitPath, envPath, "systemctl daemon-reload", "systemctl enable --now sbxrun-" + name + ".service"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout %q does not mention %q", stdout, want)
			}
		}
		text, err := os.ReadFile(unitPath)
		if err != nil {
			t.Fatalf("--install wrote no unit: %v", err)
		}
		if strings.Contains(string(text), "hf_install_secret") {
			t.Errorf("the installed unit holds the credential:\n%s", text)
		}
		analyzeVerify(t, unitPath)
		fi, err := os.Stat(envPath)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("environment file %s: %v, mode %v; want mode 0600", envPath, err, fi.Mode().Perm())
		}

		// The installed unit runs, with the credential from its file.
		u := parseUnitText(t, string(text))
		n := newNotifySocket(t)
		p := startUnit(t, u, n)
		awaitReadyOrDone(t, n, p)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("ExecStart exited %d\nstderr: %s", code, p.stderr.String())
		}
		if got := waitFile(t, filepath.Join(dir, "token"), 5*time.Second); got != "hf_install_secret" {
			t.Errorf("the workload saw HF_TOKEN=%q, want the installed credential", got)
		}
		assertGone(t, name)
	})

	t.Run("user-install", func(t *testing.T) {
		t.Parallel()
		// Not root: a user unit under ~/.config/systemd/user. The binary
		// is copied where an unprivileged user can run it.
		const uid = 65534
		dir, err := os.MkdirTemp("", "sbxrun-user-unit-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "sbxrun")
		copyFile(t, harness.sbxrun, bin, 0o755)
		home, project := filepath.Join(dir, "home"), filepath.Join(dir, "project")
		for _, d := range []string{home, project} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		name := nameFor(t)
		var cmd *exec.Cmd
		var stdout, stderr bytes.Buffer
		for range 50 {
			cmd = exec.Command(bin, "systemd", "generate", "--install", "--name", name, "-e", "API_KEY=user-secret", "base", "--", "true")
			cmd.Dir = project
			cmd.Env = []string{"HOME=" + home, "USER=nobody", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"SBXRUN_SYSTEM_CONFIG=" + filepath.Join(dir, "no-such-sbxrun.yaml")}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
			stdout.Reset()
			stderr.Reset()
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			// A process forked elsewhere in this test binary may briefly hold
			// the copied binary open for writing: ETXTBSY, try again.
			if err = cmd.Run(); !errors.Is(err, syscall.ETXTBSY) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code := exitCode(err, cmd); code != 0 {
			t.Fatalf("systemd generate --install as uid %d: exit %d (%v)\nstdout: %s\nstderr: %s", uid, code, err, stdout.String(), stderr.String())
		}
		unitPath := filepath.Join(home, ".config", "systemd", "user", "sbxrun-"+name+".service")
		envPath := filepath.Join(home, ".config", "sbxrun", name+".env")
		for _, want := range []string{unitPath, envPath, "systemctl --user daemon-reload", "systemctl --user enable --now sbxrun-" + name + ".service", "loginctl enable-linger"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("stdout %q does not mention %q", stdout.String(), want)
			}
		}
		text, err := os.ReadFile(unitPath)
		if err != nil {
			t.Fatalf("--install wrote no user unit: %v", err)
		}
		u := parseUnitText(t, string(text))
		if got := u.one(t, "WantedBy"); got != "default.target" {
			t.Errorf("WantedBy=%s, want default.target", got)
		}
		if got := u.one(t, "EnvironmentFile"); got != envPath {
			t.Errorf("EnvironmentFile=%s, want %s", got, envPath)
		}
		if strings.Contains(string(text), "user-secret") || strings.Contains(string(text), "HOME=") || strings.Contains(string(text), "network-online") {
			t.Errorf("user unit holds the credential, a HOME (the user manager sets it) or network-online.target (a system target):\n%s", text)
		}
		fi, err := os.Stat(envPath)
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uid {
			t.Errorf("environment file %s: %v; want mode 0600 owned by uid %d", envPath, err, uid)
		}
		rt := filepath.Join(dir, "run")
		if err := os.Mkdir(rt, 0o700); err != nil {
			t.Fatal(err)
		}
		verify := exec.Command("systemd-analyze", "--user", "verify", "--man=no", unitPath)
		verify.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt)
		var verr bytes.Buffer
		verify.Stderr = &verr
		if out, err := verify.Output(); err != nil || verr.Len() > 0 {
			t.Errorf("systemd-analyze --user verify: %v\nstdout: %s\nstderr: %s\nunit:\n%s", err, out, verr.String(), text)
		}
	})

	t.Run("notify-and-stop", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		dir := t.TempDir()
		script := `echo up > /workspace/started; printf '%s\n' "$@" > /workspace/args; echo "$GREETING" > /workspace/greeting; trap 'echo term > /workspace/stopped; exit 7' TERM; while :; do sleep 0.1; done`
		args := []string{"a b", "$HOME", "100%", `"q"`, "x;y", "%n"}
		// A relative --env-file resolves in the unit's WorkingDirectory.
		if err := os.WriteFile(filepath.Join(dir, "app.env"), []byte("GREETING=hello from the env file\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text, _ := generate(t, dir, append([]string{"--name", name, "--stop-timeout", "5", "--env-file", "app.env", "base", "--", "sh", "-c", script, "sh"}, args...)...)
		u := parseUnitText(t, text)
		n := newNotifySocket(t)
		begin := time.Now()
		p := startUnit(t, u, n)
		awaitReady(t, n, p, name)
		ready := time.Since(begin)
		waitFile(t, filepath.Join(dir, "started"), 5*time.Second)
		t.Logf("READY=1 %.0f ms after ExecStart; workload's file %.0f ms after that", ready.Seconds()*1000, (time.Since(begin)-ready).Seconds()*1000)
		if got, want := waitFile(t, filepath.Join(dir, "args"), 5*time.Second), strings.Join(args, "\n")+"\n"; got != want {
			t.Errorf("the workload got arguments %q through the unit, want %q", got, want)
		}
		if got := waitFile(t, filepath.Join(dir, "greeting"), 5*time.Second); got != "hello from the env file\n" {
			t.Errorf("the workload saw GREETING=%q, want the --env-file's value", got)
		}
		n.none(t, "while running")

		// systemctl stop: SIGTERM to the main process only.
		stop := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if m := n.next(t, p, 10*time.Second); m["STOPPING"] != "1" {
			t.Errorf("after SIGTERM: notify message %q, want STOPPING=1", m)
		}
		if code := p.wait(t, 15*time.Second); code != 7 {
			t.Errorf("sbxrun exited %d after SIGTERM, want the workload's 7\nstderr: %s", code, p.stderr.String())
		}
		if took := time.Since(stop); took > 5*time.Second {
			t.Errorf("stop took %s, longer than the stop timeout of a workload that exits on SIGTERM", took)
		}
		if got := waitFile(t, filepath.Join(dir, "stopped"), time.Second); got != "term\n" {
			t.Errorf("the workload's stop file holds %q, want it to have got SIGTERM", got)
		}
		assertGone(t, name)
	})

	t.Run("stop-timeout", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		dir := t.TempDir()
		// sh as PID 1 without a trap ignores SIGTERM.
		text, _ := generate(t, dir, "--name", name, "--stop-timeout", "2", "base", "--", "sh", "-c", "echo up > /workspace/started; "+loopScript)
		u := parseUnitText(t, text)
		limit, err := time.ParseDuration(u.one(t, "TimeoutStopSec"))
		if err != nil {
			t.Fatal(err)
		}
		n := newNotifySocket(t)
		p := startUnit(t, u, n)
		awaitReady(t, n, p, name)
		waitFile(t, filepath.Join(dir, "started"), 5*time.Second)
		stop := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, limit); code != 137 {
			t.Errorf("sbxrun exited %d, want 137 (the workload SIGKILLed after the stop timeout)\nstderr: %s", code, p.stderr.String())
		}
		took := time.Since(stop)
		t.Logf("stopped in %.1f s (stop timeout 2 s, TimeoutStopSec %s)", took.Seconds(), limit)
		if took < 2*time.Second || took >= limit {
			t.Errorf("stop took %s: want at least the stop timeout 2s and less than TimeoutStopSec %s", took, limit)
		}
		assertGone(t, name)
	})

	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		dir := t.TempDir()
		text, _ := generate(t, dir, "--name", name, "--stop-timeout", "1", "base", "--", "sh", "-c", "echo start >> /workspace/starts; "+loopScript)
		u := parseUnitText(t, text)
		n := newNotifySocket(t)
		p := startUnit(t, u, n)
		awaitReady(t, n, p, name)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 10*time.Second); code != 137 {
			t.Fatalf("sbxrun after SIGKILL: exit %d", code)
		}
		if containerLabels(t, name) == nil {
			t.Fatalf("no stale container %q after the crash: the test proves nothing", name)
		}
		// The next start of the same unit replaces the stale sandbox.
		p2 := startUnit(t, u, n)
		awaitReady(t, n, p2, name)
		starts := ""
		if !waitFor(5*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, "starts"))
			starts = string(b)
			return starts == "start\nstart\n"
		}) {
			t.Errorf("starts file %q, want two starts", starts)
		}
		if strings.Contains(p2.stderr.String(), "already exists") {
			t.Errorf("the restart reported a conflict: %s", p2.stderr.String())
		}
		if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p2.wait(t, 30*time.Second); code != 137 {
			t.Errorf("sbxrun exited %d after SIGTERM, want 137", code)
		}
		assertGone(t, name)
	})

	t.Run("stop-post-cleans-after-sigkill", func(t *testing.T) {
		t.Parallel()
		name := nameFor(t)
		dir := t.TempDir()
		text, _ := generate(t, dir, "--name", name, "base", "--", "sh", "-c", loopScript)
		u := parseUnitText(t, text)
		n := newNotifySocket(t)
		p := startUnit(t, u, n)
		awaitReady(t, n, p, name)
		// TimeoutStopSec ran out: systemd SIGKILLs the main process, then
		// runs ExecStopPost=.
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.wait(t, 10*time.Second)
		if code, _, out := runUnitCommand(t, u, "ExecStopPost"); code != 0 {
			t.Errorf("ExecStopPost exited %d: %s", code, out)
		}
		assertGone(t, name)
	})
}

// awaitReadyOrDone waits for READY=1 from a workload that may end at once.
func awaitReadyOrDone(t *testing.T, n *notifySocket, p *proc) {
	t.Helper()
	if m := n.next(t, p, 60*time.Second); m["READY"] != "1" || m["MAINPID"] != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("notify message %q, want READY=1 with MAINPID=%d", m, p.cmd.Process.Pid)
	}
}
