package runtime

import (
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// ServiceFacts is what a service unit must know about a run: how the
// sandbox stops, and what has to exist before it starts.
type ServiceFacts struct {
	// Name is the sandbox name.
	Name string
	// Profile is the profile run; "" for an image reference.
	Profile string
	// Image is the image reference the sandbox runs.
	Image string
	// StopSignal is the signal that stops the workload.
	StopSignal syscall.Signal
	// StopTimeout is how long sbxrun waits after the stop signal before it
	// SIGKILLs the workload.
	StopTimeout time.Duration
	// Network is whether a start may need the network: the sandbox uses the
	// host's network, or the image may be pulled.
	Network bool
	// GPUs is whether the resolved profile and flags ask for GPUs or CDI
	// devices.
	GPUs bool
	// GPUsOptional is set when the GPUs are optional: the sandbox runs
	// without them on a host that has none.
	GPUsOptional bool
}

// ServiceFacts resolves and validates o exactly as Run would, without
// talking to containerd, and returns what a service unit for it needs. It
// may create the cache directories the profile asks for, as Run does.
func (o *RunOptions) ServiceFacts() (*ServiceFacts, error) {
	// A unit is not a run: what a run would warn about (optional GPUs this
	// host lacks, a CDI spec it refreshed) is not the generator's to say.
	o.readOnlyHost = true
	p, err := o.validate()
	o.notes = nil
	if err != nil {
		return nil, err
	}
	gpus, optional, err := wantsGPUs(p.res)
	if err != nil {
		return nil, err
	}
	return &ServiceFacts{
		Name:         o.Name,
		Profile:      p.profile,
		Image:        p.image,
		StopSignal:   p.stopSignal(),
		StopTimeout:  p.stopTimeout(),
		Network:      p.sb.Network != "none" || (p.pull != images.PullNever),
		GPUs:         gpus,
		GPUsOptional: optional,
	}, nil
}

// nvidiaVendor is the CDI vendor of NVIDIA's devices (nvidia.com/gpu=0).
const nvidiaVendor = "nvidia.com"

// wantsGPUs reports whether the resolved run asks for NVIDIA GPUs (its
// gpus key, or NVIDIA CDI devices), and whether they are optional: only
// optional gpus (profiles.Resolved.gpuRequest) without an NVIDIA device, which is
// always required.
func wantsGPUs(r *profiles.Resolved) (want, optional bool, err error) {
	req, optional, err := gpuRequest(r)
	if err != nil {
		return false, false, err
	}
	if slices.ContainsFunc(r.Profile.Devices, func(d string) bool { return strings.HasPrefix(d, nvidiaVendor+"/") }) {
		return true, false, nil
	}
	return req != nil, optional, nil
}
