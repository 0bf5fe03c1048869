package profiles

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// PublishAddressKey is the top-level key of the system's and the user's
// sbxrun.yaml that sets the host address published ports (-p, -P) bind
// when they name none. Without it that is 127.0.0.1: a notebook or a
// model server published by a development sandbox must not appear on
// every interface of the host by accident.
const PublishAddressKey = "default_publish_address"

// checkPublishAddress validates the value of PublishAddressKey.
func (w *walker) checkPublishAddress(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return w.errorf(v, "%s must be an IP address such as 127.0.0.1 or 0.0.0.0, not %s", PublishAddressKey, describeNode(v))
	}
	if _, err := netip.ParseAddr(v.Value); err != nil {
		return w.errorf(v, "%s %q is not an IP address: use 127.0.0.1 (the default), 0.0.0.0 (every interface) or an address of this host", PublishAddressKey, v.Value)
	}
	return nil
}

// DefaultPublishAddress is PublishAddressKey as the configuration sets
// it ("" when it does not): the system file, then the user's file, then
// --config, the later winning. A project file (./sbxrun.yaml) does not
// set it, trusted or not: where the user's ports appear is the user's
// choice, not a cloned repository's.
func DefaultPublishAddress(opts LoadOptions) (string, error) {
	files, err := opts.files()
	if err != nil {
		return "", err
	}
	addr := ""
	for _, f := range files {
		if f.project {
			continue
		}
		data, err := readProfileFile(f.path)
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		if err != nil {
			return "", badConfigf("reading profile file %q: %w", f.path, err)
		}
		if !bytes.Contains(data, []byte(PublishAddressKey)) {
			continue
		}
		abs, _ := filepath.Abs(f.path)
		if _, err := parseProfileFile(abs, data); err != nil {
			return "", err
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			continue // parseProfileFile read it: not reached
		}
		if v, ok := doc[PublishAddressKey].(string); ok {
			addr = v
		}
	}
	return addr, nil
}
