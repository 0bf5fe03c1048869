package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// LabelName holds the sandbox's name as the user gave it. Docker's names
// (`a--b`, `a__b`, `a-`) are wider than containerd's identifiers, so the
// container's ID may be a mapped form of the name (see containerID); every
// command shows this label and finds the sandbox by it.
const LabelName = "sbxrun.name"

// maxNameLength bounds a sandbox name. Docker sets no limit; a name has to
// fit a label and a log file name, and longer ones are mistakes.
const maxNameLength = 128

// maxHostname is the kernel's limit on a hostname (HOST_NAME_MAX).
const maxHostname = 64

// dockerName is Docker's rule for container names (without its leading
// "/"), relaxed to allow one character, which sbxrun always accepted.
var dockerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// separatorRun is a run of the characters containerd allows only alone
// between letters and digits.
var separatorRun = regexp.MustCompile(`[._-]+`)

// checkName accepts exactly the names Docker accepts.
func checkName(name string) error {
	if !dockerName.MatchString(name) {
		return fmt.Errorf("invalid --name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("invalid --name %q: it has %d characters, the limit is %d: choose a shorter name", name, len(name), maxNameLength)
	}
	return nil
}

// containerID is the containerd ID of the sandbox called name: the name
// itself when containerd accepts it, else the name with every run of
// separators collapsed to its first character, cut to fit, and a hash of
// the full name appended (`a--b` -> `a-b-1c2d3e4f`). The mapping is
// deterministic, so two runs with one name still race for one ID and
// exactly one wins, and every command finds the sandbox from its name
// without listing the namespace.
func containerID(name string) string {
	if identifiers.Validate(name) == nil {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:4])
	base := separatorRun.ReplaceAllStringFunc(name, func(s string) string { return s[:1] })
	if max := 76 - len(suffix); len(base) > max {
		base = base[:max]
	}
	base = strings.TrimRight(base, "._-")
	if base == "" {
		base = "sandbox"
	}
	return base + suffix
}

// hostnameFor is the hostname of a sandbox called name that sets none: the
// name, cut to the kernel's 64 characters (Docker never fails on a long
// name either: its hostname is not the name but the ID's first 12
// characters; sbxrun keeps the name, which is more useful, and cuts it).
func hostnameFor(name string) string {
	if len(name) > maxHostname {
		name = strings.TrimRight(name[:maxHostname], "._-")
	}
	return name
}

// sandboxName is the name a container shows: its LabelName, else its ID
// (containers created before names were mapped, or by gc's view of them).
func sandboxName(id string, labels map[string]string) string {
	if n := labels[LabelName]; n != "" {
		return n
	}
	return id
}
