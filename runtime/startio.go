package runtime

import (
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// containerd's client cancels and closes a task's IO when Start fails.
// Start also fails when containerd goes away while it starts the task
// (a restart): the workload may run anyway, in its shim, and the run goes
// on waiting for it (startedAcrossRestart). With its FIFO copies already
// cancelled, whatever it wrote from then on was lost. heldIO keeps the
// copies going while Start is in flight: Cancel and Close are deferred
// until the run knows whether the task started.

// heldIO is a task's IO whose Cancel and Close wait while held.
type heldIO struct {
	cio.IO
	held     atomic.Bool
	mu       sync.Mutex
	canceled bool
	closed   bool
}

func (h *heldIO) Cancel() {
	if h.held.Load() {
		h.mu.Lock()
		h.canceled = true
		h.mu.Unlock()
		return
	}
	h.IO.Cancel()
}

func (h *heldIO) Close() error {
	if h.held.Load() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		return nil
	}
	return h.IO.Close()
}

// hold defers Cancel and Close from now on.
func (h *heldIO) hold() {
	if h != nil {
		h.held.Store(true)
	}
}

// release stops deferring; with apply it also does what was deferred (the
// task did not start, so its IO must end).
func (h *heldIO) release(apply bool) {
	if h == nil {
		return
	}
	h.held.Store(false)
	h.mu.Lock()
	canceled, closed := h.canceled, h.closed
	h.canceled, h.closed = false, false
	h.mu.Unlock()
	if !apply {
		return
	}
	if canceled {
		h.IO.Cancel()
	}
	if closed {
		_ = h.IO.Close()
	}
}

// holdable wraps creator so the IO it creates can be held (*h).
func holdable(creator cio.Creator, h **heldIO) cio.Creator {
	return func(id string) (cio.IO, error) {
		io, err := creator(id)
		if err != nil || io == nil {
			return io, err
		}
		*h = &heldIO{IO: io}
		return *h, nil
	}
}
