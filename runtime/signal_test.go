package runtime

import (
	"strings"
	"syscall"
	"testing"
)

// TestParseSignal accepts Docker's spellings of signals and refuses the
// numbers no process can be sent, which moby's parser lets through.
func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"TERM", syscall.SIGTERM}, {"SIGTERM", syscall.SIGTERM}, {"term", syscall.SIGTERM},
		{"9", syscall.SIGKILL}, {"1", syscall.SIGHUP}, {"64", 64}, {"RTMAX", 64}, {"RTMIN+1", 35},
		{"65", 0}, {"-1", 0}, {"-9999", 0}, {"0", 0}, {"99999999999999999999", 0}, {"NOPE", 0}, {"", 0},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if tt.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "a number from 1 to 64") {
				t.Errorf("parseSignal(%q) = %d, %v; want an error naming 1 to 64", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if err := CheckSignal("65"); ExitCode(err) != ExitFailed {
		t.Errorf("CheckSignal(65) = %v (exit %d), want exit %d", err, ExitCode(err), ExitFailed)
	}
	if err := CheckSignal("USR1"); err != nil {
		t.Errorf("CheckSignal(USR1) = %v", err)
	}
}
