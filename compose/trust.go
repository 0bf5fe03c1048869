package compose

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// daemonSockets are the bind sources no compose file gets, trusted or not:
// they hand the sandbox the host (the same paths `sbxrun run` refuses
// without --allow-unsafe-mounts).
var daemonSockets = []string{
	"/var/run/docker.sock", "/run/docker.sock",
	"/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock",
	"/run/podman/podman.sock", "/var/run/podman/podman.sock",
}

// Check refuses what sbxrun will not run from this project, before anything
// is created. Every project: a service with build: and no image:, and a
// bind of a container daemon's socket. An untrusted project (one whose
// files the user has not trusted with `sbxrun trust`): what an untrusted
// ./sbxrun.yaml may not ask for either (profiles.CheckTrust): privileged,
// added capabilities, security options, devices, host namespaces, bind
// propagation, and bind mounts outside the project directory and the
// built-in caches. Each refusal is one line naming the file (and line), the
// service and the key.
func (p *Project) Check(h profiles.HostEnv) error {
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if s.Image == "" {
			if s.Build != nil {
				return BadInputf("%s: service %q has build and no image: sbxrun runs prebuilt images only: build and push it, then add image: NAME to the service", p.Locate(name, "build"), name)
			}
			return BadInputf("%s: service %q has no image: add image: NAME", p.Locate(name, ""), name)
		}
		for i, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if isDaemonSocket(v.Source) {
				return BadInputf("%s: service %q: volumes: bind mount of %q gives the sandbox control of the host: remove it (sbxrun runs no Docker daemon; a trusted `sbxrun run --allow-unsafe-mounts` is the only way to mount it)", p.Locate(name, fmt.Sprintf("volumes.%d", i)), name, v.Source)
			}
		}
		if s.UseAPISocket {
			return BadInputf("%s: service %q: use_api_socket gives the sandbox control of the host: remove it", p.Locate(name, "use_api_socket"), name)
		}
		if !p.Trusted {
			if err := p.checkUntrusted(name, s, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// isDaemonSocket reports whether src is (or resolves to) a daemon socket.
func isDaemonSocket(src string) bool {
	cands := []string{filepath.Clean(src)}
	if r, err := filepath.EvalSymlinks(src); err == nil {
		cands = append(cands, r)
	}
	for _, c := range cands {
		for _, s := range daemonSockets {
			if c == s {
				return true
			}
		}
	}
	return false
}

// checkUntrusted applies the allowlist of an untrusted project file to one
// service.
func (p *Project) checkUntrusted(name string, s types.ServiceConfig, h profiles.HostEnv) error {
	dir := p.WorkingDir
	refuse := func(key, what, flag string) error {
		return profiles.UntrustedError(fmt.Sprintf("%s: service %q", p.Locate(name, key), name), dir, what, flag)
	}
	if s.Privileged {
		return refuse("privileged", "privileged: true", "--privileged")
	}
	if len(s.CapAdd) > 0 {
		return refuse("cap_add", "cap_add: "+s.CapAdd[0], "--cap-add "+s.CapAdd[0])
	}
	for _, so := range s.SecurityOpt {
		k, v, _ := strings.Cut(strings.ReplaceAll(so, "=", ":"), ":")
		if k == "no-new-privileges" && (v == "" || v == "true") {
			continue
		}
		return refuse("security_opt", "security_opt: "+so, "--security-opt "+so)
	}
	if len(s.Devices) > 0 {
		return refuse("devices", "devices: "+s.Devices[0].Source, "--device")
	}
	if len(s.DeviceCgroupRules) > 0 {
		return refuse("device_cgroup_rules", "device_cgroup_rules", "")
	}
	for _, ns := range []struct{ key, val string }{
		{"network_mode", s.NetworkMode}, {"pid", s.Pid}, {"ipc", s.Ipc}, {"uts", s.Uts}, {"userns_mode", s.UserNSMode}, {"cgroup", s.Cgroup},
	} {
		if ns.val == "host" {
			return refuse(ns.key, ns.key+": host", "--net host")
		}
	}
	for i, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		at := fmt.Sprintf("%s: service %q: volumes", p.Locate(name, fmt.Sprintf("volumes.%d", i)), name)
		if v.Bind != nil && v.Bind.Propagation != "" && v.Bind.Propagation != types.PropagationPrivate && v.Bind.Propagation != types.PropagationRPrivate {
			return profiles.UntrustedError(at, dir, "bind propagation "+v.Bind.Propagation, "")
		}
		if h.Home != "" && strings.HasPrefix(v.Source, h.Home+"/") && !strings.HasPrefix(v.Source, dir+"/") {
			// ~/.gitconfig, ~/.ssh: the user's own files, fine once the
			// user says so (the built-in caches are allowed as they are).
			if err := profiles.ConfineBind(at, dir, profiles.MountSpec{Source: v.Source, Target: v.Target}, h); err != nil {
				return BadInputf("%s: bind mount of %q is outside the project directory %q, as your own files (~/.gitconfig, ~/.ssh) are: review the file, then run `sbxrun trust %s` to allow them", at, v.Source, dir, dir)
			}
			continue
		}
		if err := profiles.ConfineBind(at, dir, profiles.MountSpec{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}, h); err != nil {
			return err
		}
	}
	return nil
}
