package oci

// Sandbox is the fully resolved description of one sandbox: profile layers,
// flags and host facts already merged and expanded (no "~", no relative paths).
// Build turns it, plus the image's config, into containerd spec options.
//
// Zero values mean "not set": Build then keeps containerd's default or the
// image's value.
type Sandbox struct {
	// ID is the containerd container ID (the sandbox name).
	ID string
	// Namespace is the containerd namespace; it names the cgroup parent.
	Namespace string

	// Entrypoint replaces the image's entrypoint when EntrypointSet is true
	// (an empty Entrypoint with EntrypointSet clears it, as docker --entrypoint "").
	Entrypoint    []string
	EntrypointSet bool
	// Args replaces the image's Cmd when non-empty (the words after "--").
	Args []string
	// Env is KEY=VALUE, applied over the image's environment in order
	// (later entries win).
	Env []string
	// Workdir is the absolute working directory; empty keeps the image's.
	Workdir string
	// User is "uid[:gid]" or "name[:group]"; empty keeps the image's.
	User string
	// Hostname of the sandbox; empty means the ID.
	Hostname string
	// Terminal gives the process a TTY (process.terminal) and TERM=xterm
	// unless Env or the image sets TERM, as docker run -t.
	Terminal bool
	// OOMScoreAdj is the workload's oom_score_adj (-1000 to 1000). nil
	// leaves it unset, and the workload inherits the shim's (1 under
	// containerd); the runtime sets 0, Docker's default, where it may.
	OOMScoreAdj *int

	// Mounts are bind mounts (and tmpfs) added to the default mounts.
	Mounts []Mount
	// HostsFile and ResolvConf are host paths bind-mounted read-only at
	// /etc/hosts and /etc/resolv.conf; empty leaves the image's files.
	HostsFile  string
	ResolvConf string
	// ExtraHosts (--add-host HOST:IP) and DNSServers, DNSSearch and
	// DNSOptions (--dns, --dns-search, --dns-option) are what runtime
	// writes into those files before the task starts; the spec itself
	// only mounts them.
	ExtraHosts []string
	DNSServers []string
	DNSSearch  []string
	DNSOptions []string

	// Memory is the memory limit in bytes; 0 is unlimited.
	Memory int64
	// MemorySwap is memory+swap in bytes as in Docker: 0 unset (twice Memory
	// when Memory is set), -1 unlimited swap.
	MemorySwap int64
	// NoSwapLimit leaves the swap limit unset because the host cannot enforce
	// it (cgroup v1 without memory.memsw, where runc would fail); Memory still
	// applies, as Docker does with a warning. The runtime sets it.
	NoSwapLimit bool
	// CPUs is the CPU quota in CPUs (1.5 = 150ms per 100ms); 0 is unlimited.
	CPUs float64
	// PidsLimit caps the number of processes; 0 unlimited.
	PidsLimit int64
	// ShmSize is the size of /dev/shm in bytes; 0 keeps containerd's 64m.
	ShmSize int64
	// NoCgroups leaves linux.resources empty and cgroupsPath unset (rootless
	// cgroup v1, where any cgroup setting fails).
	NoCgroups bool
	// CgroupNamespace gives the sandbox a private cgroup namespace, Docker's
	// default on cgroup v2 hosts (the runtime sets it there; on v1 Docker
	// shares the host's).
	CgroupNamespace bool

	// Network is "host" or "none" ("" is host), or a CNI network ("bridge",
	// a network name) the runtime attached NetNSPath to.
	Network string
	// NetNSPath is the network namespace a CNI network's sandbox joins
	// (created by the runtime before the task starts); required for a
	// Network other than host and none.
	NetNSPath string
	// ReadOnly makes the root filesystem read-only.
	ReadOnly bool
	// Userns is UsernsKeepID or UsernsHost ("" is host). With keep-id the
	// runtime stages the bind mounts whose source the workspace's owner
	// owns as idmapped mounts (the workload's uid and gid shown as that
	// owner's on the host); the spec records it in AnnotationUserns.
	Userns string
	// CapAdd and CapDrop adjust the 14 default capabilities; names with or
	// without the CAP_ prefix, any case, or "ALL".
	CapAdd  []string
	CapDrop []string
	// Privileged grants all capabilities and devices, unconfined.
	Privileged bool
	// NoNewPrivileges is the no_new_privs bit (sbxrun's default is true).
	NoNewPrivileges bool
	// Seccomp is "" for containerd's default profile, "unconfined", or a
	// path to a JSON profile.
	Seccomp string
	// AppArmor is "" for the default profile where the host supports
	// AppArmor, "unconfined", or a loaded profile name.
	AppArmor string
	// AllowUnsafeMounts lets bind mounts of the host's /, the containerd or
	// Docker sockets and daemon state through (--allow-unsafe-mounts).
	AllowUnsafeMounts bool
	// BindSys bind-mounts the host's /sys read-only instead of mounting a new
	// sysfs: needed when the sandbox shares a network namespace its user
	// namespace does not own (rootless on the host network).
	BindSys bool
	// CgroupsPath replaces containerd's default cgroupsPath (/<namespace>/<id>),
	// e.g. to place a rootless sandbox under the user's delegated cgroup.
	CgroupsPath string
	// ProtectedPaths are host paths refused as bind sources (like the
	// built-in list of daemon sockets) unless AllowUnsafeMounts: the socket
	// of the containerd this sandbox runs on, wherever it is.
	ProtectedPaths []string
	// Annotations are added to the spec.
	Annotations map[string]string

	// CDIDevices are fully qualified CDI device names (VENDOR/CLASS=NAME,
	// such as nvidia.com/gpu=all) injected after every other option, so
	// nothing resets the env, mounts and hooks they add.
	CDIDevices []string
	// CDISpecDirs are the directories CDI specs are read from when CDI is
	// nil; empty is DefaultCDISpecDirs.
	CDISpecDirs []string
	// CDI is the loaded, trusted CDI specs the devices come from; nil loads
	// CDISpecDirs when Build runs. The runtime sets it after checking that
	// the specs are fresh.
	CDI *CDIRegistry
}

// Mount is one mount of a sandbox.
type Mount struct {
	// Type is "bind" (default) or "tmpfs".
	Type string
	// Source is an absolute host path (bind) or empty (tmpfs).
	Source string
	// Destination is the absolute path inside the sandbox.
	Destination string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// Options are extra mount options (e.g. "rprivate", "size=64m").
	Options []string
	// Within, when set, is a host directory the bind source must resolve
	// into (checked by Validate and again on the pinned descriptor): the
	// project directory or a cache, for a mount an untrusted project file
	// asked for.
	Within string
	// Handle, when set, is the path runc mounts instead of Source: the
	// /proc/PID/fd/N link of a descriptor of the source opened and checked
	// by the runtime, so the source cannot be swapped between the check and
	// the mount. Source stays what the user wrote, for messages and
	// `sbxrun spec`.
	Handle string
}
