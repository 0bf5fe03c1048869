package hooks

import (
	"path/filepath"
	"slices"
	"strings"
)

// Name is the program name the CDI hooks are served under, the NVIDIA
// Container Toolkit's own (nvidia-cdi-hook).
const Name = "nvidia-cdi-hook"

// Path is the PATH every hook runs with.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Invoked reports whether the command line args (os.Args) asks sbxrun to
// serve a hook, and returns the hook's command line with Name as argv[0].
// Two spellings: argv[0]'s base name is Name (a multicall binary: CDI specs
// run sbxrun with argv[0] "nvidia-cdi-hook", or a symlink of that name), or
// args[1] is Name (the hidden subcommand, `sbxrun nvidia-cdi-hook HOOK ...`).
func Invoked(args []string) ([]string, bool) {
	switch {
	case len(args) == 0:
		return nil, false
	case filepath.Base(args[0]) == Name:
		return append([]string{Name}, args[1:]...), true
	case len(args) > 1 && args[1] == Name:
		return append([]string{Name}, args[2:]...), true
	}
	return nil, false
}

// Env is the explicit environment of a hook whose CDI spec asks for vendor:
// PATH=Path first, then the vendor's entries except PATH and the variables
// that steer the dynamic loader or libc (Unsafe). A hook never inherits
// anything, neither the image's nor the runtime's environment.
func Env(vendor []string) []string {
	env := []string{"PATH=" + Path}
	for _, kv := range vendor {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || k == "PATH" || Unsafe(k) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Scrub is the environment a served hook keeps of environ (os.Environ()):
// PATH=Path and the NVIDIA toolkit's own switches (NVIDIA_CTK_* and
// NVIDIA_CDI_*, e.g. NVIDIA_CTK_DEBUG). Everything else is dropped before
// the hook runs, so no variable an image may have set can steer it, nor the
// processes it starts (ldconfig).
func Scrub(environ []string) []string {
	env := []string{"PATH=" + Path}
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || Unsafe(k) || !(strings.HasPrefix(k, "NVIDIA_CTK_") || strings.HasPrefix(k, "NVIDIA_CDI_")) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// unsafeVars are the variables glibc removes from the environment of
// setuid programs (its UNSECURE_ENVVARS) besides LD_*: each makes the
// dynamic loader or libc read files the caller chooses.
var unsafeVars = []string{
	"GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
	"MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "MALLOC_PERTURB_", "MALLOC_TRACE", "MALLOC_TOP_PAD_",
	"MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "NIS_PATH", "NLSPATH",
	"RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
}

// goRuntimeVars are read by the Go runtime before main (the hook is sbxrun,
// a Go program): they change its behaviour in ways the caller controls.
var goRuntimeVars = []string{"GODEBUG", "GOTRACEBACK", "GOGC", "GOMEMLIMIT", "GOMAXPROCS"}

// Unsafe reports whether the variable named key may change how a program
// is loaded or behaves in ways its caller controls: every LD_* variable,
// glibc's list of unsecure variables, and the Go runtime's.
func Unsafe(key string) bool {
	return strings.HasPrefix(key, "LD_") || slices.Contains(unsafeVars, key) || slices.Contains(goRuntimeVars, key)
}
