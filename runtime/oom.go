package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/PID/status.
const capSysResource = 24

// checkOOMScoreAdj refuses a negative --oom-score-adj where it would fail
// late in runc ("can't get final child's PID from pipe"): lowering
// oom_score_adj below 0 needs CAP_SYS_RESOURCE, which some hosts withhold
// even from root (and a rootless runc never has).
func checkOOMScoreAdj(v int) error {
	if v >= 0 || hasCap(capSysResource) && !rootless.Active() {
		return nil
	}
	return fmt.Errorf("--oom-score-adj %d needs CAP_SYS_RESOURCE to go below 0, which sbxrun does not have here: use a value from 0 to 1000", v)
}

// hasCap reports whether this process has capability bit in its effective
// set.
func hasCap(bit uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<bit) != 0
		}
	}
	return false
}
