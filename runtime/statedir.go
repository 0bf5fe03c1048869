package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files in the state directory that a run depends on are written before
// containerd creates anything: an attached run's marker (without it a kill
// would leave a sandbox nothing points at) and a detached run's log (without
// room for it, `run -d` would report success and its output would be lost).
// A state directory that cannot take them fails the run with one line.

// stateDirError is the one line for a state directory sbxrun cannot write.
func stateDirError(stateDir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot write to sbxrun's state directory %q: %w: free space there, or point SBXRUN_STATE_DIR at a writable directory", stateDir, err)
}

// logDirMode and logFileMode keep sandbox output readable by its owner
// only: workloads print tokens and paths that other users need not see.
const (
	logDirMode  = 0o700
	logFileMode = 0o600
)

// prepareLog makes the log directory of a sandbox (owner-only, also when
// an older sbxrun created it world-readable) and checks that a log can be
// written there: it writes a probe file beside it, which fails on a full
// file system, and removes it. The log itself is left alone: it may belong
// to a sandbox of the same name that this run will not replace.
func prepareLog(stateDir, path string) error {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if err := os.MkdirAll(d, logDirMode); err != nil {
			return stateDirError(stateDir, err)
		}
		if err := os.Chmod(d, logDirMode); err != nil {
			return stateDirError(stateDir, err)
		}
		if filepath.Base(d) == "logs" || filepath.Dir(d) == d {
			break
		}
	}
	probe := filepath.Join(filepath.Dir(path), fmt.Sprintf(".probe-%d", os.Getpid()))
	err := os.WriteFile(probe, []byte{'\n'}, logFileMode)
	_ = os.Remove(probe)
	if err != nil {
		return stateDirError(stateDir, err)
	}
	return nil
}
