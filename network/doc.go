// Package network gives sandboxes their own network: CNI networks (a bridge
// per network, host-local addresses, published ports, firewall guards), the
// sandbox's network namespace, the names sandboxes of one network know each
// other by, and the collection of network state whose sandbox is gone.
//
// Only the runtime calls it; it knows nothing of containerd or the CLI. One
// sandbox's network, as data:
//
//	runtime.validate   ParsePublish(-p) -> ResolvePorts (free, not published
//	                   by another sandbox, bindable) -> Ports in the spec labels
//	                   NetNSPath, HostsPath, ResolvPath -> oci.Sandbox
//	runtime.Run        container created ->
//	Begin              lock -> network config (the default one is created
//	                   on first use) -> record (owner of what follows) ->
//	                   firewall guards (iptables-save; restore only when
//	                   missing) -> named netns (unshare + bind mount,
//	                   lo up, ping_group_range) -> /etc/resolv.conf and
//	                   /etc/hosts of the sandbox -> CNI ADD in the background
//	                   (bridge + host-local, portmap when ports)
//	                   task created in that netns, meanwhile
//	Pending.Wait       ADD done -> record completed -> hosts files of the
//	                   network's members rewritten in place; the task starts
//	                   ... the workload exits
//	Detach             CNI DEL with the config ADD used (while the task is
//	                   deleted) -> netns unmounted -> record and files
//	                   removed -> members refreshed
//
// Rootless (AttachOptions.Pasta): no bridge, no CNI, no firewall. Begin
// writes the record, creates the namespace (inside RootlessKit's user
// namespace) and the two files, then starts pasta on it in the background
// (pasta.go): the namespace's uplink and the published ports; the record
// gets pasta's pid. Detach ends pasta, then removes the rest as above.
//
// State (Paths): network configs are CNI conflists, ConfDir/NAME.conflist,
// that users may edit or add; everything sbxrun creates per sandbox lives
// under StateDir (attachment records, hosts files, host-local allocations)
// and NetNSDir (the namespaces). A record is written before anything it
// describes exists and removed after all of it is gone, so GC, given which
// sandboxes still exist, can always undo a run that was killed half-way.
package network
