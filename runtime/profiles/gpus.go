package profiles

import (
	"fmt"

	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/sbxrun/sbxrun/gpu"
)

// keyError is a validation problem with one profile key.
type keyError struct {
	key string
	err error
}

// validateDevices checks the gpus, gpu and devices keys of one layer.
func validateDevices(p *Profile) *keyError {
	if p.GPUs != nil {
		if _, err := gpu.ParseRequest(*p.GPUs); err != nil {
			return &keyError{"gpus", err}
		}
	}
	if p.GPU != nil {
		switch *p.GPU {
		case "required", "optional":
		default:
			return &keyError{"gpu", fmt.Errorf("unknown gpu %q: use required or optional", *p.GPU)}
		}
	}
	for _, d := range p.Devices {
		if _, _, _, err := parser.ParseQualifiedName(d); err != nil {
			return &keyError{"devices", fmt.Errorf("invalid CDI device %q: use VENDOR/CLASS=NAME, such as nvidia.com/gpu=0", d)}
		}
	}
	return nil
}
