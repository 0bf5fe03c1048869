package hostinfo

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
)

// CgroupV2 reports whether the host runs the unified cgroup hierarchy, read
// once per process.
var CgroupV2 = sync.OnceValue(func() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
})

// ProcStart returns the start time (field 22 of /proc/PID/stat, in clock
// ticks since boot) of pid, or "" when pid does not exist or has ended (a
// zombie). Together with the pid and the boot id it identifies a process
// even after pid reuse.
func ProcStart(pid int) string {
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
		return ""
	}
	return f[19]
}
