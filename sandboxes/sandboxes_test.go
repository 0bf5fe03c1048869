package sandboxes

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// open reads the definitions in this directory.
func open(t *testing.T) *Definitions {
	t.Helper()
	d, err := Open(".")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// configs returns every sandbox's computed image config.
func configs(t *testing.T, d *Definitions) map[string]*ocispec.Image {
	t.Helper()
	out := map[string]*ocispec.Image{}
	for _, name := range Names {
		img, err := d.Config(context.Background(), name)
		if err != nil {
			t.Fatalf("Config(%s): %v", name, err)
		}
		out[name] = img
	}
	return out
}

func TestDockerfilesPassLint(t *testing.T) {
	d := open(t)
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			warnings, err := d.Lint(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warnings {
				t.Error(w)
			}
		})
	}
}

// TestLintCatchesProblems makes sure the linter runs at all: a Dockerfile
// with known problems gets the rules' warnings.
func TestLintCatchesProblems(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		rules      []string
		err        string
	}{
		{"casing", "FROM ubuntu:24.04 as build\nRUN true\n", []string{"FromAsCasing"}, ""},
		{"maintainer", "FROM ubuntu:24.04\nMAINTAINER someone\n", []string{"MaintainerDeprecated"}, ""},
		{"shell-form-cmd", "FROM ubuntu:24.04\nCMD echo hi\n", []string{"JSONArgsRecommended"}, ""},
		{"relative-workdir", "FROM ubuntu:24.04\nWORKDIR work\n", []string{"WorkdirRelativePath"}, ""},
		{"legacy-env", "FROM ubuntu:24.04\nENV A 1\n", []string{"LegacyKeyValueFormat"}, ""},
		{"undefined-arg", "FROM ubuntu:${NOPE}\n", nil, "Dockerfile:1: failed to parse stage name"},
		{"undefined-arg-with-default", "ARG TAG=\nFROM ubuntu${TAG}\nFROM ubuntu:${NOPE:-24.04}\n", []string{"UndefinedArgInFrom"}, ""},
		{"secret-in-env", "FROM ubuntu:24.04\nENV API_TOKEN=x\n", []string{"SecretsUsedInArgOrEnv"}, ""},
		{"clean", "FROM ubuntu:24.04\nCMD [\"true\"]\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "base"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, VersionsFile), []byte("SANDBOX_VERSION=1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "base", "Dockerfile"), []byte(tt.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			warnings, err := d.Lint(context.Background(), "base")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range warnings {
				got = append(got, strings.Split(w, ": ")[1])
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.rules) {
				t.Errorf("rules %q, want %q (warnings %q)", got, tt.rules, warnings)
			}
		})
	}
}

func TestReadVersions(t *testing.T) {
	tests := []struct {
		name, text, err string
		want            map[string]string
	}{
		{"ok", "# c\n\nA=1\nB_2=x.y-z\n", "", map[string]string{"A": "1", "B_2": "x.y-z"}},
		{"lower-case", "a=1\n", "upper-case KEY", nil},
		{"no-equals", "A\n", "upper-case KEY", nil},
		{"empty", "A=\n", "non-empty", nil},
		{"quoted", "A=\"1\"\n", "quotes", nil},
		{"space", "A=1 2\n", "spaces", nil},
		{"twice", "A=1\nA=2\n", "set twice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), VersionsFile)
			if err := os.WriteFile(p, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadVersions(p)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want one naming %q and containing %q", err, p, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// parseDockerfile returns the stages and global ARGs of name's Dockerfile.
func parseDockerfile(t *testing.T, d *Definitions, name string) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	f, err := os.Open(d.Dockerfile(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	return stages, metaArgs
}

// TestPinsMatchVersions checks that versions.env is the one place to bump a
// version: every ARG default in a Dockerfile equals it, every ARG without a
// default is one buildkit sets, and every pin is used.
func TestPinsMatchVersions(t *testing.T) {
	d := open(t)
	automatic := []string{"TARGETARCH", "TARGETOS", "TARGETPLATFORM", "TARGETVARIANT", "BUILDARCH", "BUILDOS", "BUILDPLATFORM"}
	used := map[string]bool{}
	for _, name := range Names {
		stages, metaArgs := parseDockerfile(t, d, name)
		args := slices.Clone(metaArgs)
		for _, st := range stages {
			for _, cmd := range st.Commands {
				if a, ok := cmd.(*instructions.ArgCommand); ok {
					args = append(args, *a)
				}
			}
		}
		for _, a := range args {
			for _, kv := range a.Args {
				used[kv.Key] = true
				want, pinned := d.Versions[kv.Key]
				switch {
				case kv.Value == nil && slices.Contains(automatic, kv.Key):
				case kv.Value == nil && kv.Key == "DEBIAN_FRONTEND":
				case kv.Value == nil:
					t.Errorf("%s: ARG %s has no default: give it the value of %s", d.Dockerfile(name), kv.Key, VersionsFile)
				case kv.Key == "BASE_IMAGE":
					if *kv.Value != Repository+"/base:${SANDBOX_VERSION}" {
						t.Errorf("%s: ARG BASE_IMAGE=%s, want %s/base:${SANDBOX_VERSION}", d.Dockerfile(name), *kv.Value, Repository)
					}
				case kv.Key == "DEBIAN_FRONTEND":
				case !pinned:
					t.Errorf("%s: ARG %s is not in %s: add it there", d.Dockerfile(name), kv.Key, VersionsFile)
				case *kv.Value != want:
					t.Errorf("%s: ARG %s=%s, but %s has %s: run make sandbox-pins", d.Dockerfile(name), kv.Key, *kv.Value, VersionsFile, want)
				}
			}
		}
	}
	build, err := os.ReadFile(filepath.Join("local", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for key := range d.Versions {
		if !used[key] && !strings.Contains(string(build), "version "+key) {
			t.Errorf("%s pins %s, which no Dockerfile and not local/build.sh uses: remove it", VersionsFile, key)
		}
	}
}

// builtinProfiles resolves sbxrun's built-in profiles with no profile file.
func builtinProfiles(t *testing.T) *profiles.Set {
	t.Helper()
	t.Setenv(profiles.RegistryEnv, "")
	none := filepath.Join(t.TempDir(), "none.yaml")
	p, err := profiles.Load(profiles.LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(img *ocispec.Image) map[string]string {
	m := map[string]string{}
	for _, kv := range img.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// TestImagesAgreeWithProfiles checks the images' labels, workdirs, env and
// cache paths against the built-in profiles of the same names.
func TestImagesAgreeWithProfiles(t *testing.T) {
	d := open(t)
	profs := builtinProfiles(t)
	imgs := configs(t, d)
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			img := imgs[name]
			r, err := profs.Resolve(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Profile
			labels := img.Config.Labels
			if ref, _ := r.ImageRef(); ref != Repository+"/"+name+":latest" {
				t.Errorf("profile image %q, want %s/%s:latest", ref, Repository, name)
			}
			if labels[LabelProfile] != name {
				t.Errorf("label %s=%q, want %q", LabelProfile, labels[LabelProfile], name)
			}
			if p.Workdir == nil || img.Config.WorkingDir != *p.Workdir {
				t.Errorf("WORKDIR %q, profile workdir %v", img.Config.WorkingDir, p.Workdir)
			}
			if img.Config.User != "1000:1000" {
				t.Errorf("USER %q, want 1000:1000 (the non-root sandbox user)", img.Config.User)
			}
			if home := Home(img); home != "/home/dev" {
				t.Errorf("HOME %q, want /home/dev", home)
			}
			if want := []string{"/usr/bin/tini", "--", "/usr/local/bin/sandbox-entrypoint"}; !slices.Equal(img.Config.Entrypoint, want) {
				t.Errorf("ENTRYPOINT %q, want %q", img.Config.Entrypoint, want)
			}
			if labels["org.opencontainers.image.version"] != d.Versions["SANDBOX_VERSION"] {
				t.Errorf("version label %q, want SANDBOX_VERSION %q", labels["org.opencontainers.image.version"], d.Versions["SANDBOX_VERSION"])
			}

			var workspace string
			var caches []string
			for _, m := range p.Mounts {
				if m.Source == "." {
					workspace = m.Target
				}
				if m.Create {
					caches = append(caches, m.Target)
				}
			}
			if labels[LabelWorkspace] != workspace {
				t.Errorf("label %s=%q, profile mounts . at %q", LabelWorkspace, labels[LabelWorkspace], workspace)
			}
			if got := labels[LabelCaches]; got != strings.Join(caches, ",") {
				t.Errorf("label %s=%q, profile caches %q", LabelCaches, got, caches)
			}
			check := func(label string, v *string) {
				got, ok := labels[label]
				switch {
				case v == nil && ok:
					t.Errorf("label %s=%q, the profile sets none", label, got)
				case v != nil && got != *v:
					t.Errorf("label %s=%q, profile %q", label, got, *v)
				}
			}
			check(LabelShmSize, p.ShmSize)
			check(LabelGPUs, p.GPUs)
			check(LabelGPU, p.GPU)

			env := envOf(img)
			for k, v := range p.Env {
				if env[k] != v {
					t.Errorf("image env %s=%q, profile %q", k, env[k], v)
				}
			}

			// "~" in a profile target is the sandbox user's home: with the
			// image's HOME, the cache mounts land where the image's tools
			// look (HF_HOME, TORCH_HOME, OLLAMA_MODELS).
			flags := &profiles.Profile{Env: map[string]string{"HOME": Home(img)}}
			rr, err := profs.Resolve(name, flags)
			if err != nil {
				t.Fatal(err)
			}
			sb, _, err := rr.Expand(profiles.HostEnv{Home: t.TempDir(), Cwd: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var mounted []string
			for _, m := range sb.Mounts {
				mounted = append(mounted, m.Destination)
			}
			dirs, err := Caches(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, dir := range dirs {
				if !slices.Contains(mounted, dir) {
					t.Errorf("cache %s is not among the profile's mounts %q", dir, mounted)
				}
			}
			for _, k := range []string{"HF_HOME", "TORCH_HOME", "OLLAMA_MODELS"} {
				v, ok := env[k]
				if !ok {
					continue
				}
				if !slices.ContainsFunc(dirs, func(dir string) bool { return v == dir || strings.HasPrefix(v, dir+"/") }) {
					t.Errorf("%s=%s is under none of the persisted caches %q", k, v, dirs)
				}
			}
			if name == "model-dev" {
				for _, k := range []string{"HF_HOME", "TORCH_HOME", "OLLAMA_MODELS"} {
					if _, ok := env[k]; !ok {
						t.Errorf("model-dev sets no %s", k)
					}
				}
			}
		})
	}
}

// TestSetupCreatesOwnedDirs checks that each Dockerfile's sandbox-setup run
// creates the sandbox's workdir and caches, as local/build.sh does through
// ocipack -print-dirs.
func TestSetupCreatesOwnedDirs(t *testing.T) {
	d := open(t)
	imgs := configs(t, d)
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			stages, _ := parseDockerfile(t, d, name)
			final := stages[len(stages)-1]
			var setup []string
			for _, cmd := range final.Commands {
				if run, ok := cmd.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), "sandbox-setup "+name+" ") {
					setup = strings.Fields(strings.Join(run.CmdLine, " "))
				}
			}
			if setup == nil {
				t.Fatalf("the final stage of %s runs no \"sandbox-setup %s ...\"", d.Dockerfile(name), name)
			}
			dirs, err := OwnedDirs(imgs[name])
			if err != nil {
				t.Fatal(err)
			}
			for _, dir := range dirs {
				if dir != "/workspace" && !slices.Contains(setup, dir) {
					t.Errorf("sandbox-setup in %s does not create %s: add it to the RUN line", d.Dockerfile(name), dir)
				}
			}
		})
	}
}

// scripts returns the shell scripts under the sandboxes directory.
func scripts(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		first, _, _ := bytes.Cut(b, []byte("\n"))
		if bytes.HasPrefix(first, []byte("#!/usr/bin/env bash")) || bytes.HasPrefix(first, []byte("#!/bin/sh")) ||
			bytes.HasPrefix(first, []byte("# shellcheck shell=")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScriptsPassShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Fatal("shellcheck not found: install it with: apt-get install -y shellcheck")
	}
	list := scripts(t)
	for _, want := range []string{"base/sandbox-entrypoint", "base/sandbox-setup", "model-dev/bin/model-test", "model-dev/bin/ollama-setup",
		"model-dev/entrypoint.d/ollama.sh", "test/entrypoint.d/xvfb.sh", "local/build.sh", "pins.sh"} {
		if !slices.Contains(list, want) {
			t.Errorf("%s was not found as a shell script", want)
		}
	}
	out, err := exec.Command("shellcheck", append([]string{"--severity=style", "--external-sources"}, list...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck %s: %v\n%s", strings.Join(list, " "), err, out)
	}
}
