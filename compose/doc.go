// Package compose turns a Compose file into sandboxes sbxrun already knows
// how to run. It is pure: compose/loader loads and validates the files with
// the specification's reference loader (compose-go), in the program
// sbxrun-compose-load that LoadPlan runs; this package applies sbxrun's trust
// rule to them and maps each service onto the same option structs `sbxrun
// run` fills from its flags. It never talks to containerd; runtime.Project* does,
// through runtime.Run and friends.
//
//	compose.yaml (+ overrides, .env, COMPOSE_*) --Load--> Project
//	Project --CheckTrust--> refusals (file:line, service, key), exit 125
//	Project --Plan--> []Service{Flags *profiles.Profile, Publish, Aliases, ...}
//	Service --runtime--> runtime.RunOptions --> runtime.Run
//
// Because a service becomes a profile layer exactly as command-line flags do,
// a service and the equivalent `sbxrun run` flags produce the same OCI spec.
package compose
