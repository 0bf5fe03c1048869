// Package oci turns a resolved sandbox into containerd spec options.
//
// The flow of one run through this package:
//
//	flags and profile -> ParseSize, ParseVolume, ParseMountFlag, ParseEnvFile
//	                  -> Sandbox (resolved by runtime/profiles: no "~", no relative paths)
//	LoadCDI(spec dirs) -> CDIRegistry: trusted (owner, mode), strictly parsed and validated CDI specs
//	                  (rootless: HostOwners on the host, UseHostOwners inside, tell root's files from others')
//	Build(sandbox, image config) -> Validate -> []oci.SpecOpts, in the order Build documents,
//	                  CDI devices last (explicit hook env, trusted hooks run by their checked path,
//	                  host paths checked)
//	containerd.WithNewSnapshot(...), containerd.WithNewSpec(opts...) -> config.json
//
// Everything here is a pure function of its inputs apart from Validate's
// stat calls, the AppArmor probe, and reading CDI specs and checking who
// owns them and their hooks. Nothing here dials containerd: the runtime
// creates the container with these options, and the one option that needs
// containerd (a user name, looked up in the image's /etc/passwd) reads the
// container's snapshot through the client containerd passes every SpecOpts.
// Errors about bad input are errdefs.ErrInvalidArgument and name the fix in
// one line.
package oci
