package loader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/sbxrun/sbxrun/compose"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// Load finds, reads, interpolates and validates the compose files with
// compose-go, then judges their trust on the bytes that were read.
func Load(ctx context.Context, o compose.Options) (*compose.Project, error) {
	var included []string
	opts, err := cli.NewProjectOptions(o.Files,
		cli.WithWorkingDirectory(o.WorkingDir),
		cli.WithOsEnv,
		cli.WithEnvFiles(o.EnvFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithName(o.Project),
		cli.WithDefaultProfiles(o.Profiles...),
	)
	if err != nil {
		return nil, compose.InputError(compose.OneLine(err))
	}
	if len(opts.ConfigPaths) == 0 {
		return nil, compose.BadInputf("no compose file: none of compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml in this directory or a parent; give one with -f FILE")
	}
	opts.Listeners = append(opts.Listeners, func(event string, meta map[string]any) {
		if event != "include" {
			return
		}
		wd, _ := meta["workingdir"].(string)
		if paths, ok := meta["path"].(types.StringList); ok {
			for _, p := range paths {
				if !filepath.IsAbs(p) {
					p = filepath.Join(wd, p)
				}
				included = append(included, p)
			}
		}
	})
	files := make([]string, 0, len(opts.ConfigPaths))
	for _, f := range opts.ConfigPaths {
		if f == "-" {
			return nil, compose.BadInputf("-f -: sbxrun reads compose files from disk only (their trust is recorded per file): save it to a file")
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, compose.BadInput(err)
		}
		files = append(files, abs)
	}
	// The trust is judged on the bytes compose-go parses: read before and
	// after; a file that changed in between is read again by no one.
	before, err := digests(files)
	if err != nil {
		return nil, err
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, schemaError(err)
	}
	files = append(files, included...)
	after, err := digests(files)
	if err != nil {
		return nil, err
	}
	for i, f := range files[:len(before)] {
		if !bytes.Equal(before[i], after[i]) {
			return nil, compose.BadInputf("%s changed while sbxrun read it: run the command again", f)
		}
	}
	trusted := true
	for i, f := range files {
		ok, err := profiles.FileTrusted(o.TrustFile, f, after[i])
		if err != nil {
			return nil, compose.BadInput(err)
		}
		trusted = trusted && ok
	}
	// Environment from env_file is part of each service, as Compose has it.
	if p2, err := p.WithServicesEnvironmentResolved(true); err == nil {
		p = p2
	} else {
		return nil, compose.InputError(compose.OneLine(err))
	}
	return &compose.Project{Project: p, Files: files, Trusted: trusted}, nil
}

// digests reads each file's content (what profiles.FileTrusted hashes).
func digests(files []string) ([][]byte, error) {
	out := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, compose.BadInputf("reading compose file %q: %v", f, errors.Unwrap(err))
		}
		out[i] = b
	}
	return out, nil
}

// unknownKeyRE matches compose-go's schema error for a key the Compose
// specification does not have.
var unknownKeyRE = regexp.MustCompile(`^validating (.+): services\.([^.\s]+)\.(\S+) (false schema|additional propert)`)

// schemaError is a load error on one line; a key the specification does
// not know names the file, line, service and key.
func schemaError(err error) error {
	e := compose.OneLine(err)
	m := unknownKeyRE.FindStringSubmatch(e.Error())
	if m == nil {
		return compose.InputError(e)
	}
	file, service, key := m[1], m[2], m[3]
	at := file
	if line := compose.LineOf(file, append([]string{"services", service}, strings.Split(key, ".")...)); line > 0 {
		at = fmt.Sprintf("%s:%d", file, line)
	}
	return compose.BadInputf("%s: service %q: unknown key %q: the Compose specification has no such key: fix its spelling, or name it x-%s to keep it as an extension", at, service, key, key)
}

// LoadPlan loads, checks and plans a project in this process: what the
// loader program (cmd/sbxrun-compose-load) does for compose.LoadPlan.
func LoadPlan(ctx context.Context, r compose.Request) (*compose.Loaded, error) {
	p, err := Load(ctx, r.Options)
	if err != nil {
		return nil, err
	}
	if err := p.Check(profiles.HostEnv{Home: r.Home, Cwd: p.WorkingDir}); err != nil {
		return nil, err
	}
	plan, err := p.Plan(r.Plan)
	if err != nil {
		return nil, err
	}
	l := &compose.Loaded{Plan: plan}
	if r.Config {
		if l.ConfigYAML, err = p.Project.MarshalYAML(); err != nil {
			return nil, fmt.Errorf("printing the model: %w", err)
		}
		if l.ConfigJSON, err = p.Project.MarshalJSON(); err != nil {
			return nil, fmt.Errorf("printing the model: %w", err)
		}
	}
	return l, nil
}
