package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/images"
)

// LabelRunLease marks the lease that holds a starting run's image snapshot
// until its container exists. The lease also carries the owner labels
// (pid, start time, boot id) of the run, so gc and prune can drop the lease
// of a run that was killed before it released it.
const LabelRunLease = "sbxrun.run"

// runLeaseExpiry bounds how long the lease of a killed run keeps the
// snapshot when nothing removes it earlier (containerd collects expired
// leases).
const runLeaseExpiry = 10 * time.Minute

// runLeaseFresh is how long a run lease is trusted to stay alive: after a
// longer image step (a slow pull) the run takes a new lease and checks the
// image again, so the lease it creates the container under is never close
// to its expiry.
const runLeaseFresh = runLeaseExpiry / 2

// ensureAttempts is how often a run gets its image ready when something (a
// concurrent prune) removes it, or the lease expires, meanwhile.
const ensureAttempts = 3

// runLease is one run's lease.
type runLease struct {
	c       *client.Client
	l       leases.Lease
	created time.Time
	once    sync.Once
}

// newRunLease creates a lease labelled with this process as its owner.
func newRunLease(ctx context.Context, c *client.Client) (*runLease, error) {
	labels := map[string]string{LabelRunLease: "1"}
	maps.Copy(labels, ownerLabels())
	l, err := c.LeasesService().Create(ctx, leases.WithRandomID(), leases.WithExpiration(runLeaseExpiry), leases.WithLabels(labels))
	if err != nil {
		return nil, fmt.Errorf("creating a lease for the run: %w", err)
	}
	return &runLease{c: c, l: l, created: time.Now()}, nil
}

// release deletes the lease once. The container holds its snapshot by
// then; containerd's collector needs no synchronous delete.
func (r *runLease) release(ctx context.Context) {
	r.once.Do(func() { _ = r.c.LeasesService().Delete(context.WithoutCancel(ctx), r.l) })
}

// ensureHeld gets the run's image ready under a lease of its own, which
// holds the unpacked snapshot (and the container's rootfs snapshot, once
// prepared under the returned context) until release: a prune at any
// moment of a run's start cannot take the image from under it. When the
// image disappears while Ensure works, or the step took so long (a slow
// pull) that the lease may have expired, it takes a new lease and runs
// Ensure again, which finds the image present or fetches it anew as the
// pull policy allows.
func ensureHeld(ctx context.Context, c *client.Client, ref, policy, snapshotter string, o *RunOptions) (*images.Image, context.Context, func(), error) {
	var lastErr error
	for attempt := 1; attempt <= ensureAttempts; attempt++ {
		rl, err := newRunLease(ctx, c)
		if err != nil {
			return nil, ctx, func() {}, err
		}
		release := func() { rl.release(ctx) }
		lctx := leases.WithLease(ctx, rl.l.ID)
		img, err := images.Ensure(lctx, c, ref, policy, snapshotter, o.Stderr)
		if err == nil && time.Since(rl.created) < runLeaseFresh {
			return img, lctx, release, nil
		}
		release()
		if err == nil {
			// The image is here now; the next attempt holds it under a
			// fresh lease in a moment.
			continue
		}
		if !errdefs.IsNotFound(err) || errors.Is(err, images.ErrNotPresent) || ctx.Err() != nil {
			return nil, ctx, func() {}, err
		}
		lastErr = err
	}
	if lastErr == nil {
		return nil, ctx, func() {}, fmt.Errorf("getting image %q ready took longer than %v %d times: run `sbxrun pull %s` first, then the run", ref, runLeaseFresh, ensureAttempts, ref)
	}
	return nil, ctx, func() {}, fmt.Errorf("getting image %q ready: %w (something removes it while the run starts: is a prune running in a loop?)", ref, lastErr)
}

// dropDeadLeases is dropDeadRunLeases on its own connection.
func dropDeadLeases(ctx context.Context, g *Global) error {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = dropDeadRunLeases(ctx, c)
	return err
}

// dropDeadRunLeases deletes the run leases whose sbxrun is gone (killed
// between the image check and the container's creation) and returns how
// many it deleted. The deletes are synchronous: the snapshots those leases
// held are gone when gc returns, not at containerd's next collection.
func dropDeadRunLeases(ctx context.Context, c *client.Client) (int, error) {
	ls := c.LeasesService()
	all, err := ls.List(ctx, `labels."`+LabelRunLease+`"`)
	if err != nil {
		return 0, fmt.Errorf("listing leases: %w", err)
	}
	var dead []leases.Lease
	for _, l := range all {
		if !ownerAlive(l.Labels) {
			dead = append(dead, l)
		}
	}
	for i, l := range dead {
		// One collection, after the last delete, takes all their snapshots.
		var opts []leases.DeleteOpt
		if i == len(dead)-1 {
			opts = append(opts, leases.SynchronousDelete)
		}
		if err := ls.Delete(ctx, l, opts...); err != nil && !errdefs.IsNotFound(err) {
			return i, fmt.Errorf("removing lease %q: %w", l.ID, err)
		}
	}
	return len(dead), nil
}
