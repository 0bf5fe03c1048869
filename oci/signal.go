package oci

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/moby/sys/signal"
)

// MaxSignal is the highest signal number on Linux (SIGRTMAX).
const MaxSignal = 64

// ParseSignal accepts TERM, SIGTERM, term or 15. Numbers outside 1..64,
// which moby's parser passes through and runc refuses only after the
// sandbox is found, are refused here.
func ParseSignal(s string) (syscall.Signal, error) {
	sig, err := signal.ParseSignal(strings.ToUpper(s))
	if err != nil || sig < 1 || sig > MaxSignal {
		return 0, fmt.Errorf("invalid signal %q: use a name such as TERM or KILL, or a number from 1 to %d", s, MaxSignal)
	}
	return sig, nil
}
