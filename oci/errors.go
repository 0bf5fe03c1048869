package oci

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// invalidError marks bad user input (a flag, a profile value) as
// errdefs.ErrInvalidArgument without changing its text, so the runtime maps
// it to exit code 125 in one place.
type invalidError struct{ err error }

func (e invalidError) Error() string { return e.err.Error() }

func (e invalidError) Unwrap() []error { return []error{e.err, errdefs.ErrInvalidArgument} }

// invalidf formats an invalid-argument error; %w is honoured.
func invalidf(format string, a ...any) error {
	return invalidError{fmt.Errorf(format, a...)}
}
