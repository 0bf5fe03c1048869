package oci

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"
)

// AddInMemory adds raw, generated in memory, as a spec of the registry's
// highest priority, for this process only; path names it in messages
// (the file `sbxrun gpu setup` would write). It is what a run gets when
// GPUs are asked for, the driver is loaded and no spec file exists yet.
func (r *CDIRegistry) AddInMemory(path string, raw *cdispecs.Spec) error {
	prio := len(r.dirs)
	s, err := parseInMemory(path, raw, prio)
	if err != nil {
		return err
	}
	r.specs = append(r.specs, s)
	r.index()
	return nil
}

// parseInMemory validates raw exactly as a spec file is validated, through
// a memfd, and returns it marked as held in memory under path's name.
func parseInMemory(path string, raw *cdispecs.Spec, prio int) (*CDISpec, error) {
	data, err := yaml.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encoding the generated CDI spec: %w", err)
	}
	fd, err := unix.MemfdCreate("sbxrun-cdi-spec", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("holding the generated CDI spec in memory: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sbxrun-cdi-spec")
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return nil, fmt.Errorf("holding the generated CDI spec in memory: %w", err)
	}
	s, err := parseCDISpecFd(f, path+" (generated in memory)", prio)
	if err != nil {
		return nil, err
	}
	s.Path, s.InMemory = path, true
	return s, nil
}
