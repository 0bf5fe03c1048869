// Package runtime is sbxrun's core: it resolves profiles and runs sandboxes
// as containerd tasks. It is the only package that talks to containerd.
//
// One run, as data:
//
//	RunOptions (from the CLI)
//	  → LoadProfiles + Resolve: built-in < /etc < ~/.config < ./sbxrun.yaml < --config < flags
//	  → Resolved.Sandbox: ~ and . expanded, caches created → oci.Sandbox, validated
//	  → GPUs and CDI devices (gpus, gpu, devices): CDI specs loaded, NVIDIA specs
//	    refreshed when the driver changed (gpu.Refresh), required or optional
//	  → connect (one-line error naming the fix when the socket is missing)
//	  → images.Ensure (pull policy) → image config
//	  → oci.Build → NewContainer(WithNewSnapshot, WithNewSpec) with owner labels
//	  → NewTask (stdio, TTY or log file) → Wait → Start → forward signals
//	  → exit status (OOM reported) → delete task and container.
//
// Every container carries owner labels (pid, process start time, boot id) and
// a marker file under the state directory, so gc and the next run can remove
// what a killed sbxrun left without touching live sandboxes.
package runtime
