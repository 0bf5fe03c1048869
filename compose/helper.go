package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/internal/libexec"
)

// LoaderBinary is the program that loads compose files (LoadPlan runs
// it): compose-go's loader links a JSON Schema compiler whose package
// initialisation costs about 10 ms, which every sbxrun command would pay
// if sbxrun linked it.
const LoaderBinary = "sbxrun-compose-load"

// Request is what one load needs: which files, the host's home (for the
// trust rule; the working directory is the project's) and what to plan.
type Request struct {
	Options Options
	Home    string
	Plan    PlanOptions
	// Config asks for the model as `compose config` prints it.
	Config bool
}

// Loaded is a project loaded, checked (the trust rule) and planned.
type Loaded struct {
	Plan *Plan
	// ConfigYAML and ConfigJSON are the resolved model (with Config).
	ConfigYAML, ConfigJSON []byte
}

// Response is the loader's answer on its standard output.
type Response struct {
	Loaded *Loaded `json:",omitempty"`
	// Error is the failure, one line; Input says it is bad input.
	Error string `json:",omitempty"`
	Input bool   `json:",omitempty"`
}

// ResponseFor is the Response of a load's result.
func ResponseFor(l *Loaded, err error) Response {
	if err != nil {
		input := errors.Is(err, errdefs.ErrInvalidArgument)
		msg := err.Error()
		if input {
			msg = strings.TrimSuffix(msg, "\n"+errdefs.ErrInvalidArgument.Error())
		}
		return Response{Error: msg, Input: input}
	}
	return Response{Loaded: l}
}

// LoadPlan loads, checks and plans a project with the loader program:
// SBXRUN_COMPOSE_LOADER, else sbxrun-compose-load beside this program or
// in ../libexec/sbxrun. It runs in this directory with this environment
// (compose files are found and interpolated from them).
func LoadPlan(ctx context.Context, r Request) (*Loaded, error) {
	bin, err := loaderPath()
	if err != nil {
		return nil, err
	}
	in, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &stderr
	runErr := cmd.Run()
	var resp Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if runErr != nil && msg == "" {
			msg = runErr.Error()
		}
		return nil, fmt.Errorf("loading the compose files with %s failed: %s", bin, strings.Join(strings.Fields(msg), " "))
	}
	if resp.Error != "" {
		if resp.Input {
			return nil, inputError{errors.New(resp.Error)}
		}
		return nil, errors.New(resp.Error)
	}
	if resp.Loaded == nil || resp.Loaded.Plan == nil {
		return nil, fmt.Errorf("%s answered without a plan", bin)
	}
	return resp.Loaded, nil
}

// loaderPath finds the loader program.
func loaderPath() (string, error) {
	if p, ok := libexec.Find(LoaderBinary, "SBXRUN_COMPOSE_LOADER"); ok {
		return p, nil
	}
	return "", inputError{fmt.Errorf("%s, which reads compose files for sbxrun, is not beside sbxrun nor in ../libexec/sbxrun: reinstall sbxrun (`make install`, or its package), or set SBXRUN_COMPOSE_LOADER to its path", LoaderBinary)}
}
