package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/images"
)

// LabelRunLease marks the lease that holds a starting run's image snapshot
// until its container exists; the value is the run's pid.
const LabelRunLease = "sbxrun.run"

// runLeaseExpiry bounds how long the lease of a run that was killed before
// it could release it keeps the snapshot: containerd drops it then.
const runLeaseExpiry = 10 * time.Minute

// ensureAttempts is how often a run fetches its image when something (a
// concurrent prune) removes it while the run gets it ready.
const ensureAttempts = 3

// ensureHeld gets the run's image ready under a lease of its own, which
// holds the unpacked snapshot (and the container's rootfs snapshot, once
// prepared under the returned context) until release: a prune at any
// moment of a run's start cannot take the image from under it. When the
// image disappears while Ensure works, Ensure runs again and fetches it
// anew, as the pull policy allows.
func ensureHeld(ctx context.Context, c *client.Client, ref, policy, snapshotter string, o *RunOptions) (*images.Image, context.Context, func(), error) {
	l, err := c.LeasesService().Create(ctx, leases.WithRandomID(), leases.WithExpiration(runLeaseExpiry),
		leases.WithLabels(map[string]string{LabelRunLease: strconv.Itoa(os.Getpid())}))
	if err != nil {
		return nil, ctx, func() {}, fmt.Errorf("creating a lease for the run: %w", err)
	}
	var once sync.Once
	release := func() {
		// The container holds its snapshot now; containerd's collector
		// needs no synchronous delete here.
		once.Do(func() { _ = c.LeasesService().Delete(context.WithoutCancel(ctx), l) })
	}
	lctx := leases.WithLease(ctx, l.ID)
	for attempt := 1; ; attempt++ {
		img, err := images.Ensure(lctx, c, ref, policy, snapshotter, o.Stderr)
		if err == nil {
			return img, lctx, release, nil
		}
		if attempt == ensureAttempts || !errdefs.IsNotFound(err) || errors.Is(err, images.ErrNotPresent) || ctx.Err() != nil {
			release()
			return nil, ctx, func() {}, err
		}
	}
}
