package runtime

import (
	"io"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/sbxrun/sbxrun/images"
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
	stderr := o.Stderr
	o.Stderr = io.Discard
	p, err := o.prepare()
	o.Stderr = stderr
	if err != nil {
		return nil, withCode(ExitFailed, err)
	}
	gpus, optional := wantsGPUs(&p.res.Profile)
	if p.res.Sources["gpus"] == sourceFlag {
		// GPUs asked for on the command line are always required.
		optional = false
	}
	return &ServiceFacts{
		Name:         p.sb.ID,
		Profile:      p.profile,
		Image:        p.image,
		StopSignal:   p.stopSignal(),
		StopTimeout:  p.stopTimeout(),
		Network:      p.sb.Network != "none" || (p.pull != images.PullNever),
		GPUs:         gpus,
		GPUsOptional: optional,
	}, nil
}

// NVIDIAVendor is the CDI vendor of NVIDIA's devices (nvidia.com/gpu=0).
const NVIDIAVendor = "nvidia.com"

// wantsGPUs reports whether a resolved profile requests NVIDIA GPUs (its
// gpus key, or NVIDIA CDI devices), and whether the request is optional (the profile's GPUs with
// "gpu: optional", which a host without GPUs runs without). It reads the
// request by the profile's yaml keys (gpus, gpu, devices) rather than by
// field name, so it does not depend on how the GPU fields are spelled.
func wantsGPUs(p *Profile) (want, optional bool) {
	gpus, _ := yamlValue(p, "gpus").(string)
	mode, _ := yamlValue(p, "gpu").(string)
	devices, _ := yamlValue(p, "devices").([]string)
	for _, d := range devices {
		if strings.HasPrefix(d, NVIDIAVendor+"/") {
			return true, false
		}
	}
	if gpus != "" && gpus != "none" {
		return true, mode == "optional"
	}
	return false, false
}

// yamlValue is the value of the Profile field with yaml key key, with
// pointers followed; nil when there is none or it is unset.
func yamlValue(p *Profile, key string) any {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != key {
			continue
		}
		f := v.Field(i)
		for f.Kind() == reflect.Pointer {
			if f.IsNil() {
				return nil
			}
			f = f.Elem()
		}
		return f.Interface()
	}
	return nil
}
