// Package profiles loads, layers, trusts and resolves sandbox profiles into
// an oci.Sandbox. It is pure: it reads profile files and the host's paths,
// and never talks to containerd.
//
//	Load: built-in < /etc/sbxrun/sbxrun.yaml < ~/.config/sbxrun/sbxrun.yaml
//	      < ./sbxrun.yaml (a project file: untrusted until `sbxrun trust`)
//	      < --config, each file read strictly with yaml/v3 (file:line errors)
//	Set.Resolve(name, flags): extends flattened, flags the last layer,
//	      Sources saying where each value came from (`profiles show`)
//	CheckTrust: what an untrusted project file may not ask for (an allowlist)
//	Resolved.Expand(host): ~ and . expanded, mounts of an untrusted file
//	      confined to its directory and the built-in caches → oci.Sandbox
//	CreateDirs: the caches a run creates once everything else was checked
package profiles
