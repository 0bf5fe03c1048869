package profiles

import (
	"path/filepath"
)

// ComposeFiles are the compose files of a project directory that `sbxrun
// trust` records with the profile files (ProjectFiles): the names Compose
// finds by itself, and their override files.
var ComposeFiles = []string{
	"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml",
	"compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml",
}

// FileTrusted reports whether the user trusted file (absolute) with exactly
// this content, in the trust store at trustFile ("" is DefaultTrustFile()).
// It is the rule Load applies to ./sbxrun.yaml, for other project files
// (compose files): the same store, the same hash.
func FileTrusted(trustFile, file string, data []byte) (bool, error) {
	if trustFile == "" {
		trustFile = DefaultTrustFile()
	}
	st, err := readTrust(trustFile)
	if err != nil {
		return false, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return false, err
	}
	return st.trusts(abs, contentDigest(data)), nil
}

// ConfineBind checks a bind mount that an untrusted project file at (as
// "FILE:LINE") asks for, exactly as for ./sbxrun.yaml: its source must lie
// in the project directory dir or in a cache the built-in profiles declare,
// also once symlinks are resolved, and its options may only be private
// propagation. The error names the file and the fix (`sbxrun trust DIR`).
func ConfineBind(at, dir string, m MountSpec, h HostEnv) error {
	src, err := expandSource(m.Source, h)
	if err != nil {
		return err
	}
	_, err = confineMount(at, dir, m, src, h)
	return err
}

// UntrustedError is the one line for a setting an untrusted project file
// may not make (what, written at "FILE:LINE" in project directory dir),
// with the fixes: trust the project, or pass flag yourself.
func UntrustedError(at, dir, what, flag string) error {
	return untrustedError(at, dir, what, flag)
}
