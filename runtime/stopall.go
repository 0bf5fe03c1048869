package runtime

import (
	"context"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

// StopAll kills and deletes every task of the containerd at socket, in every
// namespace, and removes the sandboxes sbxrun would remove anyway (--rm). It
// returns how many tasks it ended. `sbxrun rootless stop` calls it before
// stopping the daemon, since shims outlive containerd.
func StopAll(socket string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(socket, client.WithTimeout(5*time.Second))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Containers(nctx)
		if err != nil {
			continue
		}
		for _, ctr := range ctrs {
			if _, err := ctr.Task(nctx, nil); err == nil {
				n++
			}
			if labels, _ := ctr.Labels(nctx); labels[LabelRemove] == "true" {
				_ = remove(nctx, c, ctr, true)
			} else {
				_ = endTask(nctx, ctr, true)
			}
		}
	}
	if rootless.Active() {
		// The daemon's mount namespace, and with it the sandboxes' network
		// namespaces, go with it: end their pasta processes now.
		_ = network.DetachPasta(ctx, netPathsAt(StateDir()))
	}
	return n, nil
}
