package systemd

import (
	"fmt"
	"strings"
)

// RootlessDaemonName is the unit name (sbxrun-containerd.service) of a
// user's rootless containerd.
const RootlessDaemonName = "containerd"

// RootlessDaemonUnit is a systemd --user unit that runs the user's rootless
// containerd (`sbxrun rootless start --foreground`, Type=notify: ready once
// the socket answers). On stop, sbxrun ends the sandboxes first, then the
// daemon; KillMode=mixed lets it do so before anything else is killed.
// Sandbox units of the same user order themselves after it.
func RootlessDaemonUnit(exe string) (string, error) {
	q, err := quoteExe(exe)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[Unit]
Description=sbxrun rootless containerd (RootlessKit)
Documentation=https://github.com/sbxrun/sbxrun

[Service]
Type=notify
NotifyAccess=main
ExecStart=%s rootless start --foreground
KillMode=mixed
TimeoutStartSec=60
TimeoutStopSec=60
Restart=on-failure
RestartSec=5s
Delegate=yes

[Install]
WantedBy=default.target
`, q)
	return b.String(), nil
}
