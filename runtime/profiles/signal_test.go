package profiles

import (
	"errors"
	"strings"
	"testing"
)

// TestStopSignalRange: a profile's stop_signal outside 1..64 is refused
// when the layer is read, not when the sandbox is stopped.
func TestStopSignalRange(t *testing.T) {
	for _, s := range []string{"65", "-1", "0"} {
		p := &Profile{StopSignal: &s}
		err := validateProfile(p, func(key string, err error) error { return errors.New(key + ": " + err.Error()) })
		if err == nil || !strings.HasPrefix(err.Error(), "stop_signal: ") {
			t.Errorf("stop_signal %s: %v, want an error about stop_signal", s, err)
		}
	}
}
