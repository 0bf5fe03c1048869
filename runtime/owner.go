package runtime

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Labels sbxrun puts on every container it creates, so that gc and the next
// run can tell an orphan from a live sandbox.
const (
	LabelProfile     = "sbxrun.profile"
	LabelImage       = "sbxrun.image"
	LabelOwnerPID    = "sbxrun.owner.pid"
	LabelOwnerStart  = "sbxrun.owner.start"
	LabelBootID      = "sbxrun.owner.boot-id"
	LabelRemove      = "sbxrun.rm"
	LabelDetached    = "sbxrun.detached"
	LabelStopSignal  = "sbxrun.stop-signal"
	LabelStopTimeout = "sbxrun.stop-timeout"
	LabelMemory      = "sbxrun.memory"
)

var bootID = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
})

// procStart returns the start time (field 22 of /proc/PID/stat, in clock
// ticks since boot) of pid, or "" when pid does not exist. Together with the
// pid and the boot id it identifies a process even after pid reuse.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name may hold spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		// A zombie has ended: it cannot own anything any more.
		return ""
	}
	return f[19]
}

// ownerLabels names the current process as the owner of a container.
func ownerLabels() map[string]string {
	pid := os.Getpid()
	return map[string]string{
		LabelOwnerPID:   strconv.Itoa(pid),
		LabelOwnerStart: procStart(pid),
		LabelBootID:     bootID(),
	}
}

// ownerAlive reports whether the sbxrun process that created a container
// with these labels is still running.
func ownerAlive(labels map[string]string) bool {
	if labels[LabelBootID] != bootID() {
		return false
	}
	pid, err := strconv.Atoi(labels[LabelOwnerPID])
	if err != nil || pid <= 0 {
		return false
	}
	start := procStart(pid)
	return start != "" && start == labels[LabelOwnerStart]
}
