// Package runtime runs sandboxes as containerd tasks: the run and exec
// lifecycle, ps/stop/kill/rm/logs/wait/inspect, gc and leases. It dials
// containerd (images works on the client runtime hands it); profiles are
// resolved by runtime/profiles, the per-user daemon is runtime/rootless.
//
// One run, as data:
//
//	RunOptions (from the CLI)
//	  → profiles.Load + Resolve: built-in < /etc < ~/.config < ./sbxrun.yaml < --config < flags
//	  → profiles.CheckTrust: an untrusted ./sbxrun.yaml may not widen the sandbox
//	  → Resolved.Expand: ~ and . expanded → oci.Sandbox, validated; caches created
//	  → a CNI network (--net bridge|NAME): network exists, -p host ports free,
//	    the paths of its netns, hosts and resolv.conf in the spec (planNetwork)
//	  → bind sources opened, checked and staged (pinMounts)
//	  → GPUs and CDI devices (gpus, gpu, devices): CDI specs loaded, NVIDIA specs
//	    refreshed when the driver changed (gpu.Refresh), required or optional
//	  → connect (one-line error naming the fix when the socket is missing)
//	  → images.Ensure (pull policy) → image config
//	  → oci.Build → NewContainer(WithNewSnapshot, WithNewSpec) with owner labels
//	  → network.Begin: netns created, CNI ADD under way (network/)
//	  → NewTask (stdio, TTY or log file) → Wait → ADD done → Start → forward signals
//	  → exit status (OOM reported) → delete task and container, CNI DEL meanwhile.
//
// Resolve stops after the expansion (validate with manifestOnly): the same
// resolution as facts for a sandbox meant for another machine (kube
// generate), with no cache created, no CDI device resolved, no host file.
//
// Every container carries owner labels (pid, process start time, boot id) and
// a marker file under the state directory, so gc and the next run can remove
// what a killed sbxrun left without touching live sandboxes.
package runtime
