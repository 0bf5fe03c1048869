package runtime

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// A containerd restart (an upgrade, a crash, `systemctl restart`) does not
// end a sandbox: its task lives in its shim, and containerd picks the shim
// up again when it starts. An attached run whose wait on the task broke
// therefore dials containerd again for a while and waits on the task anew,
// so it still ends with the workload's own exit status. When containerd
// stays away the run says so in one line and leaves its marker behind, so
// the next gc or run collects the sandbox once containerd is back.

// DefaultReconnectTimeout is how long a run waits for containerd to come
// back after losing it: long enough for a restart, even a slow one.
const DefaultReconnectTimeout = 60 * time.Second

// reconnectTimeout is SBXRUN_RECONNECT_TIMEOUT (a Go duration such as
// "30s"), else DefaultReconnectTimeout.
func reconnectTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SBXRUN_RECONNECT_TIMEOUT")); err == nil && d >= 0 {
		return d
	}
	return DefaultReconnectTimeout
}

// rewait waits on task again after its wait failed: it redials containerd with backoff, for up to reconnectTimeout, and returns
// the task's exit status once containerd answers. It fails at once when
// containerd is up but has lost the task.
func rewait(ctx context.Context, c *client.Client, task client.Task, address, id string) (client.ExitStatus, error) {
	address = strings.TrimPrefix(address, "unix://")
	limit := reconnectTimeout()
	deadline := time.Now().Add(limit)
	delay := 100 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return client.ExitStatus{}, ctx.Err()
		}
		if _, err := os.Stat(address); err == nil && c.Reconnect() == nil {
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			serving, _ := c.IsServing(hctx)
			cancel()
			if serving {
				st, err := waitOnce(ctx, task)
				if err == nil {
					return st, nil
				}
				if errdefs.IsNotFound(err) {
					return client.ExitStatus{}, fmt.Errorf("containerd at %q came back without the task of sandbox %s (%w): its exit status is lost; `sbxrun gc` removes what is left", address, id, err)
				}
			}
		}
		if time.Now().After(deadline) {
			return client.ExitStatus{}, lostDaemon(address, id, limit)
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
}

// startedAcrossRestart reports whether a task whose Start failed with err
// runs anyway: containerd went away while it started the task (the
// workload may already run), came back within reconnectTimeout, and the
// task is past Created. The run then goes on to wait on it. When
// containerd stays away, lost is the one line that says so (the sandbox
// may run; gc collects it once containerd is back).
func startedAcrossRestart(ctx context.Context, c *client.Client, task client.Task, address, id string, err error) (started bool, lost error) {
	if !lostConnection(err) {
		return false, nil
	}
	address = strings.TrimPrefix(address, "unix://")
	limit := reconnectTimeout()
	deadline := time.Now().Add(limit)
	delay := 100 * time.Millisecond
	var answered time.Time // when containerd first answered about the task
	for ctx.Err() == nil {
		if _, err := os.Stat(address); err == nil && c.Reconnect() == nil {
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			serving, _ := c.IsServing(hctx)
			cancel()
			if serving {
				// A containerd that has just come back may not answer
				// for the task at once (under load its shims are still
				// being loaded), or still report it Created for a
				// moment: ask again for a while before judging.
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				st, err := task.Status(sctx)
				cancel()
				if err == nil && st.Status != client.Created && st.Status != client.Unknown {
					return true, nil
				}
				if answered.IsZero() {
					answered = time.Now()
				}
				delay = 200 * time.Millisecond
				if time.Since(answered) > 2*time.Second || time.Now().After(deadline) {
					return false, nil
				}
			}
		}
		if time.Now().After(deadline) {
			if !answered.IsZero() {
				return false, nil // it came back and never said the task runs
			}
			return false, lostDaemon(address, id, limit)
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
	return false, nil
}

// lostDaemon is why a run ended when containerd went away and stayed away.
func lostDaemon(address, id string, limit time.Duration) error {
	return fmt.Errorf("lost containerd at %q while sandbox %s ran, and it did not come back within %v: the sandbox may still run; start containerd (systemctl start containerd), then `sbxrun gc` removes it", address, id, limit)
}

// lostConnection reports whether err is the connection to containerd
// breaking rather than an answer from it.
func lostConnection(err error) bool {
	err = errgrpc.ToNative(err)
	return errdefs.IsUnavailable(err) || strings.Contains(err.Error(), "error reading from server") ||
		strings.Contains(err.Error(), "connection reset")
}

// waitOnce waits on task and returns its exit status, or why the wait
// failed.
func waitOnce(ctx context.Context, task client.Task) (client.ExitStatus, error) {
	ch, err := task.Wait(ctx)
	if err != nil {
		return client.ExitStatus{}, errgrpc.ToNative(err)
	}
	st := <-ch
	if err := st.Error(); err != nil {
		return client.ExitStatus{}, errgrpc.ToNative(err)
	}
	return st, nil
}
