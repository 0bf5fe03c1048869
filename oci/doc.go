// Package oci turns a resolved sandbox into containerd spec options.
//
// The flow of one run through this package:
//
//	flags and profile -> ParseSize, ParseVolume, ParseMountFlag, ParseEnv, ParseEnvFile
//	                  -> Sandbox (resolved by the runtime: no "~", no relative paths)
//	Build(sandbox, image config) -> Validate -> []oci.SpecOpts, in the order Build documents
//	containerd.WithNewSnapshot(...), containerd.WithNewSpec(opts...) -> config.json
//
// Everything here is a pure function of its inputs apart from Validate's
// stat calls and the AppArmor probe; only the runtime package talks to
// containerd. Errors about bad input are errdefs.ErrInvalidArgument and name
// the fix in one line.
package oci
