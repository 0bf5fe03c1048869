package compose

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/errdefs"
	"go.yaml.in/yaml/v3"
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

// BadInput marks err as bad input: exit 125, nothing created.
func BadInput(err error) error {
	return errors.Join(err, errdefs.ErrInvalidArgument)
}

// BadInputf formats a bad-input error.
func BadInputf(format string, a ...any) error {
	return inputError{fmt.Errorf(format, a...)}
}

// inputError is a bad-input error whose text is its own (errors.Join would
// add the kind's text on a second line).

// InputError marks err as bad input, keeping its text as it is.
func InputError(err error) error { return inputError{err} }

type inputError struct{ err error }

func (e inputError) Error() string   { return e.err.Error() }
func (e inputError) Unwrap() []error { return []error{e.err, errdefs.ErrInvalidArgument} }

// OneLine is err's text on one line, with compose-go's fix hints kept.
func OneLine(err error) error {
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
		if line := LineOf(p.Files[i], path); line > 0 {
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

// LineOf is the line of the key at path in the YAML file, 0 when absent.
func LineOf(file string, path []string) int {
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
