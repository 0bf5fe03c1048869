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

// withCode wraps err so that sbxrun exits with code. Only the workload's own
// status and 128+N (a signal) are codes the core decides; failures are
// returned as errors with a kind (ErrCannotExecute, ErrCommandNotFound,
// errdefs kinds, or none: sbxrun failed, 125), which ExitCode maps once.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// Kinds of failure beyond "sbxrun failed" (125): 126 and 127, as Docker's.
var (
	// ErrCannotExecute: the command was found but could not be executed.
	ErrCannotExecute = errors.New("cannot execute")
	// ErrCommandNotFound: the command (or its interpreter) was not found.
	ErrCommandNotFound = errors.New("command not found")
)

// kindError gives an error a kind without changing its text.
type kindError struct{ err, kind error }

func (e kindError) Error() string { return e.err.Error() }

func (e kindError) Unwrap() []error { return []error{e.err, e.kind} }

// withKind marks err as being of kind.
func withKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return kindError{err, kind}
}

// ExitCode is the exit status for err, the one place statuses are decided:
// nil is 0, an *ExitError its code (the workload's status, 128+N),
// ErrCannotExecute 126, ErrCommandNotFound 127, anything else 125 (sbxrun
// failed).
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, ErrCannotExecute):
		return ExitCannotExec
	case errors.Is(err, ErrCommandNotFound):
		return ExitNotFound
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
