package main

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitGenerateWords(t *testing.T) {
	tests := []struct {
		name    string
		words   string
		gen     map[string][]string
		run     string
		help    bool
		wantErr string
	}{
		{name: "issue example", words: "model-dev --name ollama -- ollama serve",
			run: "model-dev --name ollama -- ollama serve"},
		{name: "generate flags anywhere before the command", words: "--install --restart always --name x base --after a.service -e A=1 --description=my%unit -- sh",
			gen: map[string][]string{"install": {"true"}, "restart": {"always"}, "after": {"a.service"}, "description": {"my%unit"}},
			run: "--name x base -e A=1 -- sh"},
		{name: "the command is untouched", words: "base --name x ls --install --restart=no",
			run: "base --name x ls --install --restart=no"},
		{name: "after -- too", words: "base --name x -- sh --wants y.service",
			run: "base --name x -- sh --wants y.service"},
		{name: "spellings kept", words: "--name=x -e=K=V --env K2=V2 -m 1g -it base",
			run: "--name=x -e=K=V --env K2=V2 -m 1g -it base"},
		{name: "repeated", words: "--after a.service --after 'b.service c.target' --name x base",
			gen: map[string][]string{"after": {"a.service", "b.service c.target"}}, run: "--name x base"},
		{name: "gpus", words: "--gpus all --name x base", run: "--gpus all --name x base"},
		{name: "gpus none", words: "--gpus=none --name x base", run: "--gpus=none --name x base"},
		{name: "nvidia device", words: "--device nvidia.com/gpu=0 --name x base", run: "--device nvidia.com/gpu=0 --name x base"},
		{name: "other device", words: "--device example.com/fpga=0 --name x base", run: "--device example.com/fpga=0 --name x base"},
		{name: "hosts and dns", words: "--add-host db:10.1.2.3 --name x base --dns 192.0.2.53 --dns-search=example.test --dns-option ndots:2 --install -- sh",
			gen: map[string][]string{"install": {"true"}},
			run: "--add-host db:10.1.2.3 --name x base --dns 192.0.2.53 --dns-search=example.test --dns-option ndots:2 -- sh"},
		{name: "help", words: "--name x --help base", run: "--name x base", help: true},
		{name: "short help", words: "-h --name x base", run: "--name x base", help: true},
		{name: "combined short flags stay run flags", words: "-ih --name x base", run: "-ih --name x base"},
		{name: "generate flag with =", words: "--install=false --name x base", gen: map[string][]string{"install": {"false"}}, run: "--name x base"},
		{name: "missing value", words: "base --restart", wantErr: "--restart needs a value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := splitGenerateWords(shellWords(tt.words))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := shellWords(tt.run); !slices.Equal(w.run, want) {
				t.Errorf("run words %q, want %q", w.run, want)
			}
			if len(w.gen) != len(tt.gen) {
				t.Errorf("generate flags %q, want %q", w.gen, tt.gen)
			}
			for k, v := range tt.gen {
				if !slices.Equal(w.gen[k], v) {
					t.Errorf("--%s = %q, want %q", k, w.gen[k], v)
				}
			}
			if w.help != tt.help {
				t.Errorf("help = %v, want %v", w.help, tt.help)
			}
		})
	}
}

func TestSplitSecrets(t *testing.T) {
	t.Setenv("FROM_HOST", "plain value")
	t.Setenv("SECRET_FROM_HOST", "s3")
	t.Setenv("TOKENISH", "ghp_abcdefghijklmnopqrstuvwxyz")
	// generate's own flags between them: the positions are the run words'.
	w, err := splitGenerateWords([]string{"--restart", "always", "-e", "HF_TOKEN=hf_x", "--install", "--env=DB_PASSWORD=p w", "--after=a.service", "-e", "PLAIN=1", "-e", "FROM_HOST",
		"-e", "SECRET_FROM_HOST", "-e=TOKENISH", "-e", "UNSET_SBXRUN_TEST", "--name", "x", "base", "--", "echo", "-e", "HF_TOKEN=hf_y"})
	if err != nil {
		t.Fatal(err)
	}
	run, secrets, env := splitSecrets(w)
	wantRun := []string{"-e", "HF_TOKEN", "--env=DB_PASSWORD", "-e", "PLAIN=1", "-e", "FROM_HOST",
		"-e", "SECRET_FROM_HOST", "-e=TOKENISH", "-e", "UNSET_SBXRUN_TEST", "--name", "x", "base", "--", "echo", "-e", "HF_TOKEN=hf_y"}
	if !slices.Equal(run, wantRun) {
		t.Errorf("run words\n %q\nwant\n %q", run, wantRun)
	}
	if want := []string{"HF_TOKEN=hf_x", "DB_PASSWORD=p w", "SECRET_FROM_HOST=s3", "TOKENISH=ghp_abcdefghijklmnopqrstuvwxyz"}; !slices.Equal(secrets, want) {
		t.Errorf("secrets %q, want %q", secrets, want)
	}
	if want := []string{"FROM_HOST=plain value"}; !slices.Equal(env, want) {
		t.Errorf("environment %q, want %q", env, want)
	}
	if !slices.Equal(w.run[:2], []string{"-e", "HF_TOKEN=hf_x"}) {
		t.Errorf("splitSecrets changed its input: %q", w.run)
	}
}

// shellWords splits s at blanks, with '...' quoting.
func shellWords(s string) []string {
	var out []string
	for i, part := range strings.Split(s, "'") {
		if i%2 == 1 {
			out = append(out, part)
			continue
		}
		out = append(out, strings.Fields(part)...)
	}
	return out
}
