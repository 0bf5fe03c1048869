// Package rootless runs one user's own containerd under RootlessKit, so a
// user without root can run sandboxes (`sbxrun rootless setup|start|stop|
// status`), and moves an sbxrun process into that daemon's namespaces
// (Enter) before it does anything else.
//
//	Setup: check prerequisites (Check), write the daemon's config (Paths)
//	Start: rootlesskit --net=host ... containerd; wait for the socket
//	Enter: nsenter -U -m into RootlessKit's child, re-executing sbxrun there
//	       with the host owners of CDI files recorded (oci.HostOwners)
//	Stop:  end the sandboxes (a StopFunc the runtime gives), then the daemon
//
// It knows nothing of sandboxes themselves: the runtime asks it where the
// socket is (Socket), whether sbxrun works rootless (Active) and whether
// cgroup limits can be enforced (Limits).
package rootless
