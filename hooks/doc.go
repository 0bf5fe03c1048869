// Package hooks holds what sbxrun needs to serve OCI hooks itself, so that a
// GPU host needs only the driver, containerd and runc: the name the NVIDIA
// CDI hooks are served under, and the explicit, minimal environment every
// hook runs with.
//
// The sbxrun binary is its own hook. `sbxrun gpu setup` writes CDI specs
// whose hooks run the sbxrun binary with argv[0] "nvidia-cdi-hook" (Invoked
// recognises that, and `sbxrun nvidia-cdi-hook ...` too); the command then
// runs the NVIDIA Container Toolkit's hook commands (create-symlinks,
// update-ldcache, enable-cuda-compat, ...) in an environment that Scrub
// reduced to PATH and the toolkit's own settings.
//
// Nothing an image sets may reach a host-side hook (CVE-2025-23266: an
// image's LD_PRELOAD loaded into the toolkit's createContainer hook). The
// protection is the explicit environment every hook sbxrun injects gets in
// config.json (Env(vendor): PATH plus the spec's own variables, loader
// variables removed), so runc starts the hook with nothing else. The hook
// entry point also scrubs its environment before the toolkit code runs,
// but that is hygiene, not a defence: sbxrun is linked dynamically (cgo),
// so the loader would apply an LD_PRELOAD before main, and the Go runtime
// reads GODEBUG and friends before main too.
package hooks
