package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/errdefs"
	"go.yaml.in/yaml/v3"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// Options say which compose files to read and how, as the global flags of
// `docker compose` do.
type Options struct {
	// Files are -f values; empty finds compose.yaml (and its override) in
	// WorkingDir or a parent, or takes COMPOSE_FILE.
	Files []string
	// Project is -p; empty takes COMPOSE_PROJECT_NAME, the file's name:
	// key, then the project directory's name.
	Project string
	// Profiles are --profile values; empty takes COMPOSE_PROFILES.
	Profiles []string
	// EnvFiles are --env-file values; empty reads .env of the project
	// directory when there is one.
	EnvFiles []string
	// WorkingDir is --project-directory; empty is the directory of the
	// first compose file.
	WorkingDir string
	// TrustFile is the trust store; "" is profiles.DefaultTrustFile().
	TrustFile string
}

// Project is a loaded and validated compose project.
type Project struct {
	*types.Project
	// Files are the compose files read, absolute, in load order (included
	// files last).
	Files []string
	// Trusted is set when the user trusted every one of Files, with the
	// content read (`sbxrun trust DIR`).
	Trusted bool
}

// badInput marks err as bad input: exit 125, nothing created.
func badInput(err error) error {
	return errors.Join(err, errdefs.ErrInvalidArgument)
}

// badInputf formats a bad-input error.
func badInputf(format string, a ...any) error {
	return inputError{fmt.Errorf(format, a...)}
}

// inputError is a bad-input error whose text is its own (errors.Join would
// add the kind's text on a second line).
type inputError struct{ err error }

func (e inputError) Error() string   { return e.err.Error() }
func (e inputError) Unwrap() []error { return []error{e.err, errdefs.ErrInvalidArgument} }

// Load finds, reads, interpolates and validates the compose files with
// compose-go, then judges their trust on the bytes that were read.
func Load(ctx context.Context, o Options) (*Project, error) {
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
		return nil, inputError{oneLine(err)}
	}
	if len(opts.ConfigPaths) == 0 {
		return nil, badInputf("no compose file: none of compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml in this directory or a parent; give one with -f FILE")
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
			return nil, badInputf("-f -: sbxrun reads compose files from disk only (their trust is recorded per file): save it to a file")
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, badInput(err)
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
			return nil, badInputf("%s changed while sbxrun read it: run the command again", f)
		}
	}
	trusted := true
	for i, f := range files {
		ok, err := profiles.FileTrusted(o.TrustFile, f, after[i])
		if err != nil {
			return nil, badInput(err)
		}
		trusted = trusted && ok
	}
	// Environment from env_file is part of each service, as Compose has it.
	if p2, err := p.WithServicesEnvironmentResolved(true); err == nil {
		p = p2
	} else {
		return nil, inputError{oneLine(err)}
	}
	return &Project{Project: p, Files: files, Trusted: trusted}, nil
}

// digests reads each file's content (what profiles.FileTrusted hashes).
func digests(files []string) ([][]byte, error) {
	out := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, badInputf("reading compose file %q: %v", f, errors.Unwrap(err))
		}
		out[i] = b
	}
	return out, nil
}

// oneLine is err's text on one line, with compose-go's fix hints kept.
func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// Locate says where the key of service (a path such as "privileged" or
// "deploy.resources"), or the service itself when key is "", is written:
// "FILE:LINE" of the last compose file that sets it, or the first file when
// none does (a key that came from an env file or an extends).
func (p *Project) Locate(service, key string) string {
	path := []string{"services", service}
	if key != "" {
		path = append(path, strings.Split(key, ".")...)
	}
	for i := len(p.Files) - 1; i >= 0; i-- {
		if line := lineOf(p.Files[i], path); line > 0 {
			return fmt.Sprintf("%s:%d", p.Files[i], line)
		}
	}
	// The key is not written as such (short forms, extends): the service.
	if key != "" {
		return p.Locate(service, "")
	}
	if len(p.Files) > 0 {
		return p.Files[0]
	}
	return "compose file"
}

// lineOf is the line of the key at path in the YAML file, 0 when absent.
func lineOf(file string, path []string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, k := range path {
		if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			return 0
		}
		if n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(n.Content) {
				return 0
			}
			n = n.Content[i]
			line = n.Line
			continue
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return 0
		}
	}
	return line
}

// unknownKeyRE matches compose-go's schema error for a key the Compose
// specification does not have.
var unknownKeyRE = regexp.MustCompile(`^validating (.+): services\.([^.\s]+)\.(\S+) (false schema|additional propert)`)

// schemaError is a load error on one line; a key the specification does
// not know names the file, line, service and key.
func schemaError(err error) error {
	e := oneLine(err)
	m := unknownKeyRE.FindStringSubmatch(e.Error())
	if m == nil {
		return inputError{e}
	}
	file, service, key := m[1], m[2], m[3]
	at := file
	if line := lineOf(file, append([]string{"services", service}, strings.Split(key, ".")...)); line > 0 {
		at = fmt.Sprintf("%s:%d", file, line)
	}
	return badInputf("%s: service %q: unknown key %q: the Compose specification has no such key: fix its spelling, or name it x-%s to keep it as an extension", at, service, key, key)
}
