package sandboxes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeOllama stands in for ollama: "serve" marks the server up in $FAKE_STATE
// until SIGTERM (or, with FAKE_SERVE=hang, never answers; with
// FAKE_SERVE=crash, exits at once), "list" succeeds while it is up, and the
// other commands log their arguments. "run NAME" fails with 9 when no server
// is up, copies standard input with NAME=cat, exits 3 with NAME=fail and
// waits for SIGTERM with NAME=sleep.
const fakeOllama = `#!/bin/sh
state=$FAKE_STATE
case $1 in
serve)
	echo serve-start >>"$state/log"
	# The trap is set before the server looks up: a TERM that follows at once
	# must find it (under load the gap was enough to lose serve-term).
	trap 'rm -f "$state/up"; echo serve-term >>"$state/log"; exit 0' TERM
	case ${FAKE_SERVE:-} in
	crash) echo "Error: listen tcp 127.0.0.1:11434: bind: address already in use"; exit 1 ;;
	hang) ;;
	*) touch "$state/up" ;;
	esac
	echo "serving"
	while :; do sleep 0.05; done
	;;
list) test -f "$state/up" ;;
run)
	echo "run $2" >>"$state/log"
	test -f "$state/up" || { echo "Error: could not connect to ollama server" >&2; exit 9; }
	case $2 in
	cat) cat ;;
	fail) exit 3 ;;
	sleep) trap 'echo run-term >>"$state/log"; exit 143' TERM; echo sleeping; while :; do sleep 0.05; done ;;
	*) echo "ran $2" ;;
	esac
	;;
create)
	echo "create $2 $3 $(cat "$4")" >>"$state/log"
	;;
*) echo "$*" >>"$state/log" ;;
esac
`

// scriptEnv prepares a sandbox-like environment for the scripts: a bin
// directory with the fakes first in PATH, HOME, and the hooks directory
// holding the given hooks. It returns the environment and the state dir.
func scriptEnv(t *testing.T, hooks ...string) ([]string, string) {
	t.Helper()
	root := t.TempDir()
	bin, state, home, hookDir := filepath.Join(root, "bin"), filepath.Join(root, "state"), filepath.Join(root, "home"), filepath.Join(root, "hooks")
	for _, d := range []string{bin, state, home, hookDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "ollama"), []byte(fakeOllama), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		abs, err := filepath.Abs(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(hookDir, filepath.Base(h))); err != nil {
			t.Fatal(err)
		}
	}
	tools, err := filepath.Abs("model-dev/bin")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + bin + ":" + tools + ":" + os.Getenv("PATH"),
		"HOME=" + home,
		"FAKE_STATE=" + state,
		"SBXRUN_ENTRYPOINT_DIR=" + hookDir,
		"SBXRUN_SERVICE_STOP_TIMEOUT=5",
		"TMPDIR=" + root,
	}
	return env, state
}

func readLog(t *testing.T, state string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// runScript runs a script with env and stdin and returns its output and
// exit status.
func runScript(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running %q: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestEntrypointStartsOllama(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       []string
		serverUp  bool
		stdin     string
		code      int
		stdout    string
		stderr    string
		log       string
		serverLog string
	}{
		{name: "run starts and stops the server", args: []string{"ollama", "run", "llama3"}, stdout: "ran llama3\n",
			log: "serve-start\nrun llama3\nserve-term\n", serverLog: "serving\n"},
		{name: "standard input reaches the command", args: []string{"ollama", "run", "cat"}, stdin: "hello\n", stdout: "hello\n",
			log: "serve-start\nrun cat\nserve-term\n"},
		{name: "exit status is the command's", args: []string{"ollama", "run", "fail"}, code: 3, log: "serve-start\nrun fail\nserve-term\n"},
		{name: "a running server is used", args: []string{"ollama", "run", "llama3"}, serverUp: true, stdout: "ran llama3\n", log: "run llama3\n"},
		{name: "pull starts it too", args: []string{"ollama", "pull", "llama3"}, log: "serve-start\npull llama3\nserve-term\n"},
		{name: "ollama-setup starts it too", args: []string{"ollama-setup", "run", "llama3"}, stdout: "ran llama3\n",
			log: "serve-start\nrun llama3\nserve-term\n"},
		{name: "ollama-setup help needs no server", args: []string{"ollama-setup", "help"}, stdout: "usage: ollama-setup setup BASE NAME [MODELFILE]\n       ollama-setup run NAME [PROMPT...]\n\n" +
			"  setup  pull BASE (e.g. llama3) and create the model NAME from MODELFILE,\n         or from \"FROM BASE\" when no Modelfile is given\n" +
			"  run    run the model NAME, with PROMPT or interactively\n"},
		{name: "serve itself is not wrapped", args: []string{"ollama", "--version"}, log: "--version\n"},
		{name: "other commands are exec'd", args: []string{"sh", "-c", "echo plain"}, stdout: "plain\n"},
		{name: "autostart off", args: []string{"ollama", "run", "llama3"}, env: []string{"SBXRUN_OLLAMA_AUTOSTART=0"}, code: 9,
			stderr: "could not connect", log: "run llama3\n"},
		{name: "server never answers", args: []string{"ollama", "run", "llama3"}, env: []string{"FAKE_SERVE=hang", "OLLAMA_START_TIMEOUT=1"}, code: 125,
			stderr: "sandbox-entrypoint: ollama did not answer within 1s", log: "serve-start\nserve-term\n"},
		{name: "server exits", args: []string{"ollama", "run", "llama3"}, env: []string{"FAKE_SERVE=crash"}, code: 125,
			stderr: "address already in use", log: "serve-start\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: these subtests write executables and run them; a sibling
			// forking while one is open for writing makes exec fail with ETXTBSY.
			env, state := scriptEnv(t, "model-dev/entrypoint.d/ollama.sh")
			env = append(env, tt.env...)
			if tt.serverUp {
				if err := os.WriteFile(filepath.Join(state, "up"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, code := runScript(t, env, tt.stdin, append([]string{"base/sandbox-entrypoint"}, tt.args...)...)
			if code != tt.code || stdout != tt.stdout || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr containing %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
			if got := readLog(t, state); got != tt.log {
				t.Errorf("calls %q, want %q", got, tt.log)
			}
			if tt.serverLog != "" {
				home := strings.TrimPrefix(env[1], "HOME=")
				b, err := os.ReadFile(filepath.Join(home, ".ollama", "logs", "server.log"))
				if err != nil || string(b) != tt.serverLog {
					t.Errorf("server log %q (%v), want %q under ~/.ollama/logs", b, err, tt.serverLog)
				}
			}
			if _, err := os.Stat(filepath.Join(state, "up")); !tt.serverUp && err == nil {
				t.Error("the server is still up after the command ended")
			}
		})
	}
}

// TestEntrypointForwardsSignals stops a command that runs beside a service
// the way sbxrun stop does (SIGTERM to the entrypoint, tini's child): the
// command gets it, its status is the result, and the service is stopped.
func TestEntrypointForwardsSignals(t *testing.T) {
	env, state := scriptEnv(t, "model-dev/entrypoint.d/ollama.sh")
	cmd := exec.Command("base/sandbox-entrypoint", "ollama", "run", "sleep")
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "sleeping") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the command did not start; log %q", readLog(t, state))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("exit %v, want status 143", err)
	}
	if got, want := readLog(t, state), "serve-start\nrun sleep\nrun-term\nserve-term\n"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// TestEntrypointStartsXvfb runs the test sandbox's hook with the real Xvfb
// on a display of its own.
func TestEntrypointStartsXvfb(t *testing.T) {
	if _, err := exec.LookPath("Xvfb"); err != nil {
		t.Fatal("Xvfb not found: install it with: apt-get install -y xvfb")
	}
	env, _ := scriptEnv(t, "test/entrypoint.d/xvfb.sh")
	display := 100 + os.Getpid()%5000
	socket := fmt.Sprintf("/tmp/.X11-unix/X%d", display)
	env = append(env, fmt.Sprintf("DISPLAY=:%d", display))
	check := `test -S "$1" && echo "up on $DISPLAY"`
	stdout, stderr, code := runScript(t, env, "", "base/sandbox-entrypoint", "sh", "-c", check, "sh", socket)
	if code != 0 || stdout != fmt.Sprintf("up on :%d\n", display) {
		t.Errorf("exit %d, stdout %q, stderr %q: want Xvfb listening on %s while the command runs", code, stdout, stderr, socket)
	}
	if _, err := os.Stat(socket); err == nil {
		t.Errorf("%s is still there: Xvfb was not stopped", socket)
	}

	stdout, _, code = runScript(t, append(env, "SBXRUN_XVFB=0"), "", "base/sandbox-entrypoint", "sh", "-c", `test -S "$1" || echo none`, "sh", socket)
	if code != 0 || stdout != "none\n" {
		t.Errorf("SBXRUN_XVFB=0: exit %d, stdout %q; want no X server", code, stdout)
	}
}

// fakePython logs its arguments, for the model-test cases.
const fakePython = `#!/bin/sh
echo "python3 $*" >>"$FAKE_STATE/log"
`

func TestModelDevTools(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		files  map[string]string
		code   int
		stdout string
		stderr string
		log    string
	}{
		{name: "model-test without a command", args: []string{"model-test"}, code: 2, stderr: "model-test: no command given\nusage: model-test test"},
		{name: "model-test unknown command", args: []string{"model-test", "frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "model-test help", args: []string{"model-test", "help"}, stdout: "usage: model-test test [PYTEST_ARGS...]"},
		{name: "bench", args: []string{"model-test", "bench", "resnet50", "32", "10"},
			log: "python3 /opt/sbxrun/benchmarks/run.py --model resnet50 --batch-size 32 --iterations 10\n"},
		{name: "bench passes runner arguments", args: []string{"model-test", "bench", "mlp", "8", "5", "--json"},
			log: "python3 /opt/sbxrun/benchmarks/run.py --model mlp --batch-size 8 --iterations 5 --json\n"},
		{name: "bench batch zero", args: []string{"model-test", "bench", "mlp", "0", "5"}, code: 2, stderr: `BATCH must be a positive integer, not "0"`},
		{name: "bench iterations not a number", args: []string{"model-test", "bench", "mlp", "8", "x"}, code: 2, stderr: `ITERS must be a positive integer, not "x"`},
		{name: "bench bad model", args: []string{"model-test", "bench", "a b", "8", "5"}, code: 2, stderr: `invalid model name "a b"`},
		{name: "bench missing arguments", args: []string{"model-test", "bench", "mlp"}, code: 2, stderr: "bench takes MODEL BATCH ITERS"},
		{name: "test over tests/", args: []string{"model-test", "test"}, files: map[string]string{"tests/test_x.py": ""},
			log: "python3 -m pytest --cov=. --cov-report=term-missing tests\n"},
		{name: "test with pytest arguments", args: []string{"model-test", "test", "-k", "fast"},
			log: "python3 -m pytest --cov=. --cov-report=term-missing -k fast\n"},
		{name: "setup from the base model", args: []string{"ollama-setup", "setup", "llama3", "mine"},
			log: "pull llama3\ncreate mine -f FROM llama3\n"},
		{name: "setup with a Modelfile", args: []string{"ollama-setup", "setup", "llama3:8b", "team/mine:v1", "Modelfile"},
			files: map[string]string{"Modelfile": "FROM llama3:8b\nPARAMETER temperature 0.2"},
			log:   "pull llama3:8b\ncreate team/mine:v1 -f FROM llama3:8b\nPARAMETER temperature 0.2\n"},
		{name: "setup with a missing Modelfile", args: []string{"ollama-setup", "setup", "llama3", "mine", "nope"}, code: 1, stderr: `Modelfile "nope" not found`},
		{name: "setup without a name", args: []string{"ollama-setup", "setup", "llama3"}, code: 2, stderr: "setup takes BASE NAME [MODELFILE]"},
		{name: "setup with a bad name", args: []string{"ollama-setup", "setup", "llama3", "my model"}, code: 2, stderr: `invalid model name "my model"`},
		{name: "run", args: []string{"ollama-setup", "run", "mine"}, log: "run mine\n"},
		{name: "run without a name", args: []string{"ollama-setup", "run"}, code: 2, stderr: "run takes NAME"},
		{name: "ollama-setup unknown command", args: []string{"ollama-setup", "pull"}, code: 2, stderr: `unknown command "pull"`},
		{name: "ollama-setup without a command", args: []string{"ollama-setup"}, code: 2, stderr: "no command given"},
	}
	tools, err := filepath.Abs("model-dev/bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: see TestEntrypointStartsOllama (ETXTBSY).
			env, state := scriptEnv(t)
			bin := filepath.Join(filepath.Dir(state), "bin")
			if err := os.WriteFile(filepath.Join(bin, "python3"), []byte(fakePython), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(state, "up"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(work, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{filepath.Join(tools, tt.args[0])}, tt.args[1:]...)
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env, cmd.Dir = env, work
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			code := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, stdout containing %q, stderr containing %q",
					code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
			if got := readLog(t, state); got != tt.log {
				t.Errorf("calls %q, want %q", got, tt.log)
			}
		})
	}
}

// TestBenchmarkRunner runs benchmarks/run.py with the host's Python: its
// argument checks always, and a real CPU measurement where PyTorch is
// installed (the model-dev sandbox); elsewhere it must say PyTorch is missing.
func TestBenchmarkRunner(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 not found: install it with: apt-get install -y python3")
	}
	runner := "model-dev/benchmarks/run.py"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"--help"}, 0, ""},
		{"missing model", []string{"--batch-size", "1", "--iterations", "1"}, 2, "the following arguments are required: --model"},
		{"zero batch", []string{"--model", "mlp", "--batch-size", "0", "--iterations", "1"}, 2, "0 must be at least 1"},
		{"bad iterations", []string{"--model", "mlp", "--batch-size", "1", "--iterations", "x"}, 2, "'x' is not an integer"},
		{"bad mode", []string{"--model", "mlp", "--batch-size", "1", "--iterations", "1", "--mode", "fast"}, 2, "invalid choice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runScript(t, os.Environ(), "", append([]string{python, runner}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d, stderr containing %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}

	stdout, stderr, code := runScript(t, os.Environ(), "", python, runner, "--model", "mlp", "--batch-size", "4", "--iterations", "2", "--warmup", "1", "--device", "cpu", "--json")
	if exec.Command(python, "-c", "import torch").Run() != nil {
		if code != 1 || !strings.Contains(stderr, "PyTorch is not installed") {
			t.Errorf("without PyTorch: exit %d, stderr %q; want 1 and a line saying PyTorch is missing", code, stderr)
		}
		return
	}
	var res struct {
		Device     string   `json:"device"`
		Batch      int      `json:"batch_size"`
		Iterations int      `json:"iterations"`
		Throughput float64  `json:"samples_per_second"`
		PeakGPU    *float64 `json:"peak_gpu_memory_mib"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q: %v", code, stdout, stderr, err)
	}
	if res.Device != "cpu" || res.Batch != 4 || res.Iterations != 2 || res.Throughput <= 0 || res.PeakGPU != nil {
		t.Errorf("result %+v: want cpu, batch 4, 2 iterations, a positive throughput and no GPU memory", res)
	}
}
