// Package hostinfo reads facts about this host and its processes that both
// the run lifecycle (runtime) and the rootless daemon (runtime/rootless)
// need: the cgroup version and a process's start time, which with its pid
// identifies it across pid reuse.
package hostinfo
