package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// completionEnv puts the built sbxrun on PATH as "sbxrun" and returns the
// directory to complete in: it holds a project file defining the profile
// zzproject, so completion is seen to read the profiles `sbxrun
// profiles` lists.
func completionEnv(t *testing.T) (dir string, env []string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.Symlink(harness.sbxrun, filepath.Join(bin, "sbxrun")); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sbxrun.yaml"), []byte("profiles:\n  zzproject:\n    extends: base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+t.TempDir(), "XDG_CONFIG_HOME=")
}

func shell(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install it with: apt-get install -y zsh fish (hack/deps.sh does)", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(strings.SplitN(l, "\t", 2)[0]) == want {
			return true
		}
	}
	return false
}

// TestCompletion loads the bash, zsh and fish scripts in their shells
// (which must not print errors) and completes a profile name, a
// command's flag and a run flag after a profile.
func TestCompletion(t *testing.T) {
	t.Parallel()
	requireHarness(t)
	dir, env := completionEnv(t)

	t.Run("fish", func(t *testing.T) {
		// complete -C asks fish for the completions of a command line.
		out := shell(t, dir, env, "fish", "--no-config", "-c",
			`sbxrun completion fish | source; and complete -C "sbxrun zzp"; and complete -C "sbxrun base --memo"; and complete -C "sbxrun doctor --f"; and complete -C "sbxrun gpu st"`)
		for _, want := range []string{"zzproject", "--memory", "--memory-swap", "--format", "status"} {
			if !hasLine(out, want) {
				t.Errorf("fish completions lack %q:\n%s", want, out)
			}
		}
		if hasLine(out, "base") {
			t.Errorf("fish completed %q with candidates that do not match:\n%s", "zzp", out)
		}
	})

	t.Run("zsh", func(t *testing.T) {
		// compinit loads the script as from fpath; compadd is replaced by
		// a function printing what the script offers, and zsh's own
		// prefix matching is done by the test.
		fpath := t.TempDir()
		text, err := exec.Command(harness.sbxrun, "completion", "zsh").Output()
		if err != nil {
			t.Fatalf("sbxrun completion zsh: %v", err)
		}
		if err := os.WriteFile(filepath.Join(fpath, "_sbxrun"), text, 0o644); err != nil {
			t.Fatal(err)
		}
		script := `fpath=(` + fpath + ` $fpath); autoload -Uz compinit; compinit -u -d ` + filepath.Join(t.TempDir(), "zcompdump") + `
[[ ${_comps[sbxrun]} == _sbxrun ]] || { print "sbxrun has no completion function: ${_comps[sbxrun]}"; exit 1 }
compadd() { print -rl -- "${@[$@[(i)--]+1,-1]}" }
autoload -Uz _sbxrun
words=(sbxrun zzp); CURRENT=2; _sbxrun
words=(sbxrun base --memo); CURRENT=3; _sbxrun
words=(sbxrun doctor --f); CURRENT=3; _sbxrun`
		out := shell(t, dir, env, "zsh", "-f", "-c", script)
		for _, want := range []string{"zzproject", "base", "--memory", "--memory-swap", "--format"} {
			if !hasLine(out, want) {
				t.Errorf("zsh candidates lack %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "command not found") || strings.Contains(out, "error") {
			t.Errorf("zsh printed errors:\n%s", out)
		}
	})

	t.Run("bash", func(t *testing.T) {
		out := shell(t, dir, env, "bash", "--norc", "-c",
			`source <(sbxrun completion bash); COMP_WORDS=(sbxrun zzp); COMP_CWORD=1; _sbxrun; printf '%s\n' "${COMPREPLY[@]}"
COMP_WORDS=(sbxrun base --memo); COMP_CWORD=2; _sbxrun; printf '%s\n' "${COMPREPLY[@]}"`)
		for _, want := range []string{"zzproject", "--memory", "--memory-swap"} {
			if !hasLine(out, want) {
				t.Errorf("bash completions lack %q:\n%s", want, out)
			}
		}
		if hasLine(out, "base") {
			t.Errorf("bash offered non-matching words:\n%s", out)
		}
	})

	t.Run("unknown shell", func(t *testing.T) {
		stdout, stderr, code := run(t, "completion", "tcsh")
		expect(t, "completion tcsh", code, 125, stdout, stderr)
		if !strings.Contains(stderr, "`sbxrun completion bash`, `zsh` or `fish`") || stdout != "" {
			t.Errorf("stderr %q, stdout %q", stderr, stdout)
		}
	})
}
