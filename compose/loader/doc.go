// Package loader reads compose files with compose-go (the specification's
// reference loader): Load finds, interpolates and validates them and
// judges their trust; LoadPlan also checks and plans the project, as
// compose.LoadPlan asks for it. Only the sbxrun-compose-load program links
// this package: compose-go's loader brings a JSON Schema package whose
// initialisation (~10 ms) sbxrun itself must not pay on every command.
//
//	sbxrun --compose.LoadPlan--> sbxrun-compose-load (JSON Request on stdin)
//	  --loader.LoadPlan--> Load, Check, Plan --> JSON Response on stdout
package loader
