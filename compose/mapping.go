package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/sbxrun/sbxrun/network"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// Labels sbxrun puts on what a project creates: Docker Compose's own keys,
// so tools that know Compose read them too.
const (
	// LabelPrefix begins every one of them.
	LabelPrefix     = "com.docker.compose."
	LabelProject    = "com.docker.compose.project"
	LabelService    = "com.docker.compose.service"
	LabelNumber     = "com.docker.compose.container-number"
	LabelOneoff     = "com.docker.compose.oneoff"
	LabelConfigHash = "com.docker.compose.config-hash"
	LabelWorkingDir = "com.docker.compose.project.working_dir"
	LabelFiles      = "com.docker.compose.project.config_files"
)

// Service is one compose service mapped onto what `sbxrun run` takes: the
// sandbox's flags as a profile layer, -p values, network aliases and the
// command after "--". Ordering, health and restart are the orchestrator's.
type Service struct {
	// Name is the compose service name.
	Name string
	// Container is the sandbox name: container_name, else
	// PROJECT-SERVICE-1 as Compose names it.
	Container string
	// Image is the image reference (also in Flags.Image).
	Image string
	// Flags is the service as the last profile layer, as flags would be.
	Flags *profiles.Profile
	// Args is command: (the words after "--").
	Args []string
	// Publish are the ports in -p syntax.
	Publish []string
	// Expose are expose:'s ports (PORT[-END][/PROTO]): reachable by the
	// project's other services, published nowhere. Only `kube generate
	// --compose` uses them (a Kubernetes Service per service).
	Expose []string
	// Aliases are the names the sandbox has on its network: the service
	// name and its aliases.
	Aliases []string
	// OOMScoreAdj is oom_score_adj, when set.
	OOMScoreAdj *int
	// TTY and Interactive are tty: and stdin_open:.
	TTY, Interactive bool
	// DependsOn are the services this one waits for, with their condition
	// (service_started, service_healthy, service_completed_successfully).
	DependsOn map[string]Dependency
	// Health is the healthcheck; nil when none or disabled.
	Health *Health
	// Restart is the restart policy: no, always, on-failure[:N],
	// unless-stopped.
	Restart string
	// Volumes are the named volumes (their host directories) the service
	// mounts; the orchestrator records them before they are created.
	Volumes []string
	// ConfigHash identifies the service's configuration: a sandbox created
	// from another is re-created by up.
	ConfigHash string
}

// Dependency is one depends_on entry.
type Dependency struct {
	// Condition is service_started, service_healthy or
	// service_completed_successfully.
	Condition string
	// Required is false for `required: false`: a missing service is fine.
	Required bool
}

// Health is a healthcheck, run inside the sandbox with exec.
type Health struct {
	// Test is the command: ["CMD", args...] or ["CMD-SHELL", "cmd"].
	Test []string
	// Interval, Timeout, StartPeriod and StartInterval are Compose's
	// (defaults 30s, 30s, 0, 5s); Retries defaults to 3.
	Interval, Timeout, StartPeriod, StartInterval time.Duration
	Retries                                       int
}

// Command is the healthcheck test as a command line.
func (h *Health) Command() []string {
	if len(h.Test) == 0 {
		return nil
	}
	switch h.Test[0] {
	case "CMD":
		return h.Test[1:]
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	}
	return h.Test
}

// Network is a network the project uses.
type Network struct {
	// Key is the name in the file ("default"); Name the network's own
	// ("PROJECT_default").
	Key, Name string
	// External networks exist already: up neither creates nor removes them.
	External bool
	// Subnet (ipam.config[0].subnet) and Internal are create's options.
	Subnet   string
	Internal bool
}

// Volume is a named volume: an sbxrun-managed host directory.
type Volume struct {
	// Key is the name in the file; Name the volume's own
	// ("PROJECT_data").
	Key, Name string
	// Dir is its host directory.
	Dir string
	// External volumes are not created or removed by the project.
	External bool
}

// Plan is a project mapped for the orchestrator.
type Plan struct {
	// Project is the project name.
	Project string
	// Dir is the project directory.
	Dir string
	// Files are the compose files, absolute.
	Files []string
	// Services in dependency order (dependencies first).
	Services []*Service
	// Networks and Volumes the services use.
	Networks []Network
	Volumes  []Volume
	// Warnings are one line each for what sbxrun does not honour.
	Warnings []string
}

// Service returns the planned service name, nil when there is none.
func (p *Plan) Service(name string) *Service {
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// PlanOptions say where a plan's volumes live.
type PlanOptions struct {
	// VolumesDir holds the named volumes, one directory each.
	VolumesDir string
	// Services limits the plan to these services and what they depend on;
	// empty is every service.
	Services []string
}

// Plan maps every service onto sbxrun's run options. It reads nothing but
// the project: what the host lacks is found when the services are
// validated as runs.
func (p *Project) Plan(o PlanOptions) (*Plan, error) {
	proj := p.Project
	if len(o.Services) > 0 {
		for _, n := range o.Services {
			if _, err := proj.GetService(n); err != nil {
				return nil, BadInputf("no service %q in %s: the services are %s", n, p.Files[0], strings.Join(proj.ServiceNames(), ", "))
			}
		}
		var err error
		if proj, err = proj.WithSelectedServices(o.Services); err != nil {
			return nil, inputError{OneLine(err)}
		}
	}
	plan := &Plan{Project: proj.Name, Dir: proj.WorkingDir, Files: p.Files}
	usedNets := map[string]bool{}
	usedVols := map[string]bool{}
	order, err := order(proj)
	if err != nil {
		return nil, err
	}
	for _, name := range order {
		s, err := p.mapService(proj, proj.Services[name], o, plan, usedNets, usedVols)
		if err != nil {
			return nil, err
		}
		plan.Services = append(plan.Services, s)
	}
	for _, k := range sortedKeys(usedNets) {
		n := proj.Networks[k]
		pn := Network{Key: k, Name: n.Name, External: bool(n.External), Internal: n.Internal}
		if pn.Name == "" {
			pn.Name = proj.Name + "_" + k
		}
		if len(n.Ipam.Config) > 0 && n.Ipam.Config[0] != nil {
			pn.Subnet = n.Ipam.Config[0].Subnet
		}
		if n.Driver != "" && n.Driver != "bridge" {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("network %q: driver %q is not supported: sbxrun creates a bridge network", k, n.Driver))
		}
		plan.Networks = append(plan.Networks, pn)
	}
	for _, k := range sortedKeys(usedVols) {
		v := proj.Volumes[k]
		name := v.Name
		if name == "" {
			name = proj.Name + "_" + k
		}
		if v.Driver != "" && v.Driver != "local" || len(v.DriverOpts) > 0 {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("volume %q: driver and driver_opts are not supported: sbxrun keeps it as a host directory", k))
		}
		plan.Volumes = append(plan.Volumes, Volume{Key: k, Name: name, Dir: filepath.Join(o.VolumesDir, name), External: bool(v.External)})
	}
	return plan, nil
}

// order is the services with their dependencies first, ties by name.
func order(p *types.Project) ([]string, error) {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return BadInputf("depends_on cycle: %s: remove one of these dependencies", strings.Join(append(path, name), " -> "))
		case 2:
			return nil
		}
		state[name] = 1
		s := p.Services[name]
		for _, d := range sortedKeys(s.DependsOn) {
			if _, ok := p.Services[d]; !ok {
				continue // an optional dependency that is not there
			}
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, name)
		return nil
	}
	for _, n := range p.ServiceNames() {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ContainerName is the sandbox name of a service: container_name, else
// Compose's PROJECT-SERVICE-1.
func ContainerName(project string, s types.ServiceConfig) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	return project + "-" + s.Name + "-1"
}

// mapService maps one service; warnings go to plan.
func (p *Project) mapService(proj *types.Project, s types.ServiceConfig, o PlanOptions, plan *Plan, usedNets, usedVols map[string]bool) (*Service, error) {
	warn := func(key, why string) {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("service %q: %s %s", s.Name, key, why))
	}
	bad := func(key string, err error) error {
		return BadInputf("%s: service %q: %s: %v", p.Locate(s.Name, key), s.Name, key, err)
	}
	f := &profiles.Profile{Labels: map[string]string{}}
	out := &Service{Name: s.Name, Container: ContainerName(proj.Name, s), Image: s.Image, Flags: f, Restart: s.Restart,
		TTY: s.Tty, Interactive: s.StdinOpen, DependsOn: map[string]Dependency{}}
	img := s.Image
	f.Image = &img
	if s.Entrypoint != nil {
		f.Entrypoint = append([]string{}, s.Entrypoint...)
	}
	if s.Command != nil {
		out.Args = append([]string{}, s.Command...)
	}
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	f.Workdir = str(s.WorkingDir)
	f.User = str(s.User)
	f.Hostname = str(s.Hostname)
	f.StopSignal = str(s.StopSignal)
	if s.StopGracePeriod != nil {
		secs := int(math.Ceil(time.Duration(*s.StopGracePeriod).Seconds()))
		f.StopTimeout = &secs
	}
	for k, v := range s.Environment {
		if v == nil {
			continue // KEY alone with no value in the environment: unset, as Compose
		}
		if f.Env == nil {
			f.Env = map[string]string{}
		}
		f.Env[k] = *v
	}
	for k, v := range s.Labels {
		if strings.HasPrefix(k, "sbxrun.") || strings.HasPrefix(k, "com.docker.compose.") {
			return nil, bad("labels", fmt.Errorf("label %q is sbxrun's or Compose's own: choose a key outside sbxrun.* and com.docker.compose.*", k))
		}
		f.Labels[k] = v
	}
	if s.ShmSize > 0 {
		f.ShmSize = str(strconv.FormatInt(int64(s.ShmSize), 10))
	}
	if s.ReadOnly {
		t := true
		f.ReadOnly = &t
	}
	if s.Privileged {
		t := true
		f.Privileged = &t
	}
	f.CapAdd = append(f.CapAdd, s.CapAdd...)
	f.CapDrop = append(f.CapDrop, s.CapDrop...)
	f.SecurityOpt = append(f.SecurityOpt, s.SecurityOpt...)
	if s.OomScoreAdj != 0 {
		v := int(s.OomScoreAdj)
		out.OOMScoreAdj = &v
	}
	switch s.PullPolicy {
	case "":
	case types.PullPolicyAlways, types.PullPolicyNever, types.PullPolicyMissing:
		f.Pull = str(s.PullPolicy)
	case types.PullPolicyIfNotPresent:
		f.Pull = str("missing")
	default:
		warn("pull_policy: "+s.PullPolicy, "is not supported: sbxrun pulls a missing image")
	}

	// Limits: the service keys, then deploy.resources.limits (Compose's
	// precedence: deploy wins).
	if s.MemLimit > 0 {
		f.Memory = str(strconv.FormatInt(int64(s.MemLimit), 10))
	}
	if s.MemSwapLimit != 0 {
		f.MemorySwap = str(strconv.FormatInt(int64(s.MemSwapLimit), 10))
	}
	if s.CPUS > 0 {
		v := float64(s.CPUS)
		f.CPUs = &v
	}
	if s.PidsLimit != 0 {
		v := s.PidsLimit
		f.PidsLimit = &v
	}
	gpuReqs := append([]types.DeviceRequest{}, s.Gpus...)
	if d := s.Deploy; d != nil {
		if l := d.Resources.Limits; l != nil {
			if l.MemoryBytes > 0 {
				f.Memory = str(strconv.FormatInt(int64(l.MemoryBytes), 10))
			}
			if l.NanoCPUs > 0 {
				v := float64(l.NanoCPUs)
				f.CPUs = &v
			}
			if l.Pids != 0 {
				v := l.Pids
				f.PidsLimit = &v
			}
			if len(l.Devices) > 0 || len(l.GenericResources) > 0 {
				warn("deploy.resources.limits.devices", "is not supported: reserve devices under deploy.resources.reservations.devices")
			}
		}
		if r := d.Resources.Reservations; r != nil {
			if r.MemoryBytes > 0 || r.NanoCPUs > 0 || r.Pids > 0 || len(r.GenericResources) > 0 {
				warn("deploy.resources.reservations", "cpus, memory, pids and generic_resources are not supported: sbxrun does not reserve them (limits are)")
			}
			gpuReqs = append(gpuReqs, r.Devices...)
		}
		if d.Replicas != nil && *d.Replicas != 1 {
			warn("deploy.replicas", "is not supported: sbxrun runs one sandbox per service")
		}
		if d.RestartPolicy != nil && s.Restart == "" {
			out.Restart = restartFromDeploy(d.RestartPolicy)
		}
		for _, k := range []struct {
			set  bool
			name string
		}{
			{d.Mode != "", "deploy.mode"}, {len(d.Labels) > 0, "deploy.labels"}, {d.UpdateConfig != nil, "deploy.update_config"},
			{d.RollbackConfig != nil, "deploy.rollback_config"}, {len(d.Placement.Constraints)+len(d.Placement.Preferences) > 0, "deploy.placement"},
			{d.EndpointMode != "", "deploy.endpoint_mode"},
		} {
			if k.set {
				warn(k.name, "is not supported: ignored")
			}
		}
	}
	if g, err := gpuRequest(gpuReqs); err != nil {
		return nil, bad("deploy.resources.reservations.devices", err)
	} else if g != "" {
		f.GPUs = &g
	}
	for _, d := range s.Devices {
		if _, _, _, err := parser.ParseQualifiedName(d.Source); err == nil {
			f.Devices = append(f.Devices, d.Source)
			continue
		}
		warn("devices: "+d.Source, "is not supported: sbxrun passes devices through CDI only: use a CDI name such as nvidia.com/gpu=0")
	}
	if s.Scale != nil && *s.Scale != 1 {
		warn("scale", "is not supported: sbxrun runs one sandbox per service")
	}

	// Network.
	switch {
	case s.NetworkMode == "none" || s.NetworkMode == "host":
		f.Network = str(s.NetworkMode)
	case s.NetworkMode != "":
		warn("network_mode: "+s.NetworkMode, "is not supported: the service joins the project's network")
		fallthrough
	default:
		keys := s.NetworksByPriority()
		if len(keys) == 0 {
			keys = []string{"default"}
		}
		k := keys[0]
		if len(keys) > 1 {
			warn("networks", fmt.Sprintf("lists %d networks: sbxrun joins one, %q", len(keys), k))
		}
		n, ok := proj.Networks[k]
		if !ok {
			return nil, bad("networks", fmt.Errorf("no network %q in the file: add it under networks:", k))
		}
		name := n.Name
		if name == "" {
			name = proj.Name + "_" + k
		}
		usedNets[k] = true
		f.Network = &name
		out.Aliases = []string{s.Name}
		if nc := s.Networks[k]; nc != nil {
			if !nc.ServiceNameAliasEnabled() {
				out.Aliases = nil
			}
			out.Aliases = append(out.Aliases, nc.Aliases...)
			if nc.Ipv4Address != "" || nc.Ipv6Address != "" || nc.MacAddress != "" {
				warn("networks."+k, "ipv4_address, ipv6_address and mac_address are not supported: the network assigns them")
			}
		}
		for _, pc := range s.Ports {
			out.Publish = append(out.Publish, publishFlag(pc))
		}
		for _, e := range s.Expose {
			if !exposeRE.MatchString(e) {
				return nil, bad("expose", fmt.Errorf("%q is not a port: write PORT, PORT-END, PORT/udp", e))
			}
			out.Expose = append(out.Expose, e)
		}
	}
	// Names and resolvers: --add-host, --dns, --dns-search, --dns-option.
	if len(s.ExtraHosts) > 0 {
		hosts := s.ExtraHosts.AsList(":")
		sort.Strings(hosts)
		f.AddHosts = hosts
	}
	f.DNS = append([]string(nil), s.DNS...)
	f.DNSSearch = append([]string(nil), s.DNSSearch...)
	f.DNSOptions = append([]string(nil), s.DNSOpts...)
	for _, h := range f.AddHosts {
		if _, _, err := network.ParseAddHost(h); err != nil {
			return nil, bad("extra_hosts", err)
		}
	}
	for _, d := range []struct {
		key string
		dns network.DNS
	}{{"dns", network.DNS{Servers: f.DNS}}, {"dns_search", network.DNS{Search: f.DNSSearch}}, {"dns_opt", network.DNS{Options: f.DNSOptions}}} {
		if err := network.CheckDNS(d.dns); err != nil {
			return nil, bad(d.key, err)
		}
	}
	if len(s.Ports) > 0 && (s.NetworkMode == "none" || s.NetworkMode == "host") {
		warn("ports", "are ignored with network_mode: "+s.NetworkMode)
	}

	// Mounts.
	for i, v := range s.Volumes {
		key := fmt.Sprintf("volumes.%d", i)
		switch v.Type {
		case types.VolumeTypeBind:
			m := profiles.MountSpec{Type: "bind", Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
			if v.Bind != nil {
				if v.Bind.Propagation != "" {
					m.Options = append(m.Options, v.Bind.Propagation)
				}
				m.Create = !bool(v.Bind.CreateHostPath)
				if v.Bind.SELinux != "" {
					warn(key+": "+v.String(), "SELinux relabelling (:z, :Z) is not supported: ignored")
				}
			}
			f.Mounts = append(f.Mounts, m)
		case types.VolumeTypeVolume:
			vk := v.Source
			if vk == "" {
				// An anonymous volume: one of the project's, per service
				// and target, kept like the others until down -v.
				sum := sha256.Sum256([]byte(s.Name + "\x00" + v.Target))
				vk = s.Name + "_anon_" + hex.EncodeToString(sum[:4])
				if proj.Volumes == nil {
					proj.Volumes = types.Volumes{}
				}
				proj.Volumes[vk] = types.VolumeConfig{Name: proj.Name + "_" + vk}
			}
			vc, ok := proj.Volumes[vk]
			if !ok {
				return nil, bad(key, fmt.Errorf("no volume %q in the file: add it under volumes:", vk))
			}
			name := vc.Name
			if name == "" {
				name = proj.Name + "_" + vk
			}
			dir := filepath.Join(o.VolumesDir, name)
			usedVols[vk] = true
			out.Volumes = append(out.Volumes, dir)
			m := profiles.MountSpec{Type: "bind", Source: dir, Target: v.Target, ReadOnly: v.ReadOnly, Create: !bool(vc.External)}
			if v.Volume != nil && v.Volume.Subpath != "" {
				warn(key, "subpath is not supported: the whole volume is mounted")
			}
			f.Mounts = append(f.Mounts, m)
		case types.VolumeTypeTmpfs:
			m := profiles.MountSpec{Type: "tmpfs", Target: v.Target}
			if v.Tmpfs != nil {
				if v.Tmpfs.Size > 0 {
					m.Options = append(m.Options, "size="+strconv.FormatInt(int64(v.Tmpfs.Size), 10))
				}
				if v.Tmpfs.Mode != 0 {
					m.Options = append(m.Options, "mode="+strconv.FormatUint(uint64(v.Tmpfs.Mode), 8))
				}
			}
			f.Mounts = append(f.Mounts, m)
		default:
			warn(key+": type "+v.Type, "is not supported: use a bind, a named volume or tmpfs")
		}
	}
	for _, t := range s.Tmpfs {
		target, opts, _ := strings.Cut(t, ":")
		m := profiles.MountSpec{Type: "tmpfs", Target: target}
		if opts != "" {
			m.Options = strings.Split(opts, ",")
		}
		f.Mounts = append(f.Mounts, m)
	}

	// Ordering and health.
	for d, dep := range s.DependsOn {
		if _, ok := proj.Services[d]; !ok {
			if dep.Required {
				return nil, bad("depends_on", fmt.Errorf("no service %q: define it or drop the dependency", d))
			}
			continue
		}
		c := dep.Condition
		if c == "" {
			c = types.ServiceConditionStarted
		}
		if c == types.ServiceConditionHealthy {
			if hc := proj.Services[d].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
				return nil, bad("depends_on", fmt.Errorf("service %q has no healthcheck to wait for: add one, or use condition: service_started", d))
			}
		}
		out.DependsOn[d] = Dependency{Condition: c, Required: dep.Required}
	}
	if hc := s.HealthCheck; hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		h := &Health{Test: append([]string{}, hc.Test...), Interval: 30 * time.Second, Timeout: 30 * time.Second, StartInterval: 5 * time.Second, Retries: 3}
		dur := func(d *types.Duration, into *time.Duration) {
			if d != nil && *d > 0 {
				*into = time.Duration(*d)
			}
		}
		dur(hc.Interval, &h.Interval)
		dur(hc.Timeout, &h.Timeout)
		dur(hc.StartPeriod, &h.StartPeriod)
		dur(hc.StartInterval, &h.StartInterval)
		if hc.Retries != nil {
			h.Retries = int(*hc.Retries)
		}
		out.Health = h
	}
	if err := checkRestart(out.Restart); err != nil {
		return nil, bad("restart", err)
	}

	p.warnUnsupported(s, warn)

	f.Labels[LabelProject] = proj.Name
	f.Labels[LabelService] = s.Name
	f.Labels[LabelNumber] = "1"
	f.Labels[LabelOneoff] = "False"
	f.Labels[LabelWorkingDir] = proj.WorkingDir
	f.Labels[LabelFiles] = strings.Join(p.Files, ",")
	out.ConfigHash = configHash(out)
	f.Labels[LabelConfigHash] = out.ConfigHash
	return out, nil
}

// configHash identifies a mapped service: its flags, command and ports.
func configHash(s *Service) string {
	b, _ := json.Marshal(struct {
		F       *profiles.Profile
		A, P, N []string
		O       *int
	}{s.Flags, s.Args, s.Publish, s.Aliases, s.OOMScoreAdj})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// exposeRE is an expose: entry: PORT[-END][/tcp|/udp].
var exposeRE = regexp.MustCompile(`^[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp))?$`)

// publishFlag is a port in -p syntax: [IP:][HOSTPORT:]PORT[/PROTO].
func publishFlag(pc types.ServicePortConfig) string {
	s := strconv.FormatUint(uint64(pc.Target), 10)
	if pc.Published != "" {
		s = pc.Published + ":" + s
		if pc.HostIP != "" {
			s = pc.HostIP + ":" + s
		}
	} else if pc.HostIP != "" {
		s = pc.HostIP + "::" + s
	}
	if pc.Protocol != "" && pc.Protocol != "tcp" {
		s += "/" + pc.Protocol
	}
	return s
}

// gpuRequest folds GPU device requests into --gpus syntax: count all (or
// -1) is "all", a count N is "N", device_ids are "device=ID,...". Requests
// of other drivers or without the gpu capability are refused: sbxrun
// gives NVIDIA GPUs, and other devices through devices: CDI names.
func gpuRequest(reqs []types.DeviceRequest) (string, error) {
	var all bool
	var count int
	var ids []string
	for _, r := range reqs {
		if r.Driver != "" && r.Driver != "nvidia" {
			return "", fmt.Errorf("driver %q: sbxrun reserves NVIDIA GPUs only (driver: nvidia); give other devices as devices: VENDOR/CLASS=NAME", r.Driver)
		}
		if len(r.Capabilities) > 0 && !contains(r.Capabilities, "gpu") {
			return "", fmt.Errorf("capabilities %v: sbxrun reserves GPUs (capabilities: [gpu])", r.Capabilities)
		}
		switch {
		case len(r.IDs) > 0:
			ids = append(ids, r.IDs...)
		case r.Count < 0:
			all = true
		case r.Count > 0:
			count += int(r.Count)
		default:
			all = true // no count and no ids: Compose reserves every GPU
		}
	}
	switch {
	case len(reqs) == 0:
		return "", nil
	case all:
		return "all", nil
	case len(ids) > 0 && count > 0:
		return "", fmt.Errorf("count and device_ids together: give one")
	case len(ids) > 0:
		return "device=" + strings.Join(ids, ","), nil
	}
	return strconv.Itoa(count), nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

var restartRE = regexp.MustCompile(`^(no|always|unless-stopped|on-failure(:[0-9]+)?)$`)

// checkRestart accepts Compose's restart policies.
func checkRestart(r string) error {
	if r == "" || restartRE.MatchString(r) {
		return nil
	}
	return fmt.Errorf("unknown policy %q: use no, always, on-failure[:N] or unless-stopped", r)
}

// restartFromDeploy is deploy.restart_policy as a restart: value.
func restartFromDeploy(r *types.RestartPolicy) string {
	switch r.Condition {
	case "none":
		return "no"
	case "on-failure":
		if r.MaxAttempts != nil {
			return fmt.Sprintf("on-failure:%d", *r.MaxAttempts)
		}
		return "on-failure"
	}
	return "always" // "any", Compose's default
}

// supportedKeys are the service keys sbxrun honours; every other key a
// service sets is one warning line.
var supportedKeys = map[string]bool{
	"image": true, "command": true, "entrypoint": true, "environment": true, "env_file": true, "working_dir": true,
	"user": true, "hostname": true, "volumes": true, "tmpfs": true, "ports": true, "networks": true, "network_mode": true,
	"shm_size": true, "cap_add": true, "cap_drop": true, "security_opt": true, "read_only": true, "labels": true,
	"stop_signal": true, "stop_grace_period": true, "deploy": true, "gpus": true, "devices": true, "privileged": true,
	"mem_limit": true, "memswap_limit": true, "cpus": true, "pids_limit": true, "depends_on": true, "healthcheck": true,
	"restart": true, "container_name": true, "profiles": true, "build": true, "expose": true, "tty": true,
	"stdin_open": true, "pull_policy": true, "oom_score_adj": true, "scale": true, "label_file": true,
	"extra_hosts": true, "dns": true, "dns_search": true, "dns_opt": true,
}

// warnUnsupported warns once for each service key sbxrun does not honour.
func (p *Project) warnUnsupported(s types.ServiceConfig, warn func(key, why string)) {
	b, err := json.Marshal(s)
	if err != nil {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return
	}
	for _, k := range sortedKeys(m) {
		if supportedKeys[k] || strings.HasPrefix(k, "x-") {
			continue
		}
		switch v := string(m[k]); v {
		case "null", "[]", "{}", `""`, "false", "0":
			continue // zero values the loader writes
		}
		if k == "extends" {
			continue // resolved by the loader
		}
		warn(k, "is not supported by sbxrun: ignored")
	}
}
