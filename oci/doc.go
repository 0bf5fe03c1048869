// Package oci turns a resolved sandbox into containerd spec options.
//
// The flow of one run through this package:
//
//	flags and profile -> ParseSize, ParseVolume, ParseMountFlag, ParseEnv, ParseEnvFile
//	                  -> Sandbox (resolved by the runtime: no "~", no relative paths)
//	LoadCDI(spec dirs) -> CDIRegistry: trusted (owner, mode), strictly parsed and validated CDI specs
//	                  (rootless: HostOwners on the host, UseHostOwners inside, tell root's files from others')
//	Build(sandbox, image config) -> Validate -> []oci.SpecOpts, in the order Build documents,
//	                  CDI devices last (explicit hook env, trusted hooks run by their checked path,
//	                  host paths checked)
//	containerd.WithNewSnapshot(...), containerd.WithNewSpec(opts...) -> config.json
//
// Everything here is a pure function of its inputs apart from Validate's
// stat calls, the AppArmor probe and reading CDI specs; only the runtime
// package talks to containerd. Errors about bad input are errdefs.ErrInvalidArgument and name
// the fix in one line.
package oci
