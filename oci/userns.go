package oci

// The userns choices (--userns, the profile key userns).
const (
	// UsernsKeepID: in rootful mode, what the workload writes to a bind
	// mount whose source the workspace's owner owns belongs to that owner
	// on the host, and the owner's files there appear as the workload's
	// own; the workload keeps the image's user (its name, HOME and tools).
	UsernsKeepID = "keep-id"
	// UsernsHost: the image's user as is; files written to bind mounts
	// belong to its uid on the host.
	UsernsHost = "host"
	// AnnotationUserns records the choice in the spec ("keep-id uid:gid"
	// with the host owner, or "host").
	AnnotationUserns = "sbxrun.userns"
)
