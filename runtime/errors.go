package runtime

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
)

// Exit codes shared by every sbxrun command (DESIGN.md, "Contracts").
const (
	// ExitFailed: sbxrun failed before the workload ran.
	ExitFailed = 125
	// ExitCannotExec: the command was found but could not be executed.
	ExitCannotExec = 126
	// ExitNotFound: the command was not found.
	ExitNotFound = 127
)

// ExitError carries the exit status sbxrun must end with. Err, when set, is
// printed as one line; a workload's own non-zero exit has no Err.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// withCode wraps err so that sbxrun exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// ExitCode maps an error returned by this package to sbxrun's exit status:
// nil is 0, an *ExitError its code, anything else 125.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailed
}

// badInputError marks an error as bad input (errdefs.ErrInvalidArgument:
// exit 125, nothing was created) without changing its text.
type badInputError struct{ err error }

func (e badInputError) Error() string { return e.err.Error() }

func (e badInputError) Unwrap() []error { return []error{e.err, errdefs.ErrInvalidArgument} }

// badConfigf formats a bad-input error; %w is honoured.
func badConfigf(format string, a ...any) error {
	return badInputError{fmt.Errorf(format, a...)}
}
