package runtime

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// detachedIO is the I/O of a detached sandbox (run -d), whose output goes
// to its log file at path. Plain -d uses the shim's file logging. With -t
// (Docker's `run -dit IMAGE sh`) the workload gets a terminal, and the shim
// copies the terminal to the file it is given as the terminal's output: it
// opens that path with containerd's fifo package, which opens a regular file
// just as well (the shims of containerd 1.6 and 2.x have no file logging for
// terminals). With -i and no -t, stdin is a FIFO that nobody writes to, so
// the workload waits on input as under Docker instead of reading EOF at
// once; Close removes the FIFO, which the shim holds open by then.
func detachedIO(path string, tty, interactive bool) cio.Creator {
	return func(string) (cio.IO, error) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating log file %q: %w", path, err)
		}
		f.Close()
		d := &detached{}
		switch {
		case tty:
			// One stream: the terminal's.
			d.config = cio.Config{Terminal: true, Stdout: path}
		default:
			uri := "file://" + path
			d.config = cio.Config{Stdout: uri, Stderr: uri}
		}
		if interactive && !tty {
			d.fifo = path + ".stdin"
			_ = os.Remove(d.fifo)
			if err := syscall.Mkfifo(d.fifo, 0o600); err != nil {
				return nil, fmt.Errorf("creating stdin FIFO %q: %w", d.fifo, err)
			}
			d.config.Stdin = d.fifo
		}
		return d, nil
	}
}

// detached is the cio.IO of detachedIO: there is nothing to copy on
// sbxrun's side.
type detached struct {
	config cio.Config
	fifo   string
}

func (d *detached) Config() cio.Config { return d.config }
func (d *detached) Cancel()            {}
func (d *detached) Wait()              {}
func (d *detached) Close() error {
	if d.fifo != "" {
		_ = os.Remove(d.fifo)
	}
	return nil
}

// openRunLog creates the log file of a kept attached run (--rm=false
// without -d), readable by its owner only, replacing an earlier run's.
func openRunLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), logDirMode); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating log file %q: %w", path, err)
	}
	return f, nil
}

// tee writes to w and copies what w took to log; a failing log never
// fails the run's output. A nil log is no tee.
func tee(w io.Writer, log *os.File) io.Writer {
	if log == nil {
		return w
	}
	return &teeWriter{w: w, log: log}
}

type teeWriter struct {
	w   io.Writer
	log *os.File
}

func (t *teeWriter) Write(b []byte) (int, error) {
	n, err := t.w.Write(b)
	if n > 0 {
		_, _ = t.log.Write(b[:n])
	}
	return n, err
}
