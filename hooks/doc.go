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
// image's LD_PRELOAD loaded into the toolkit's createContainer hook). Two
// layers make sure: every hook sbxrun injects gets Env(vendor) as its
// explicit environment in config.json, and the hook entry point scrubs its
// own environment before doing anything.
package hooks
