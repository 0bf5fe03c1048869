package runtime

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/sbxrun/sbxrun/internal/hostinfo"
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

// procStart is hostinfo.ProcStart: the start time of pid, "" when it is gone.
func procStart(pid int) string { return hostinfo.ProcStart(pid) }

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
