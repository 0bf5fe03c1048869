package kube

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/systemd"
)

// Kinds of workload Generate writes.
const (
	KindPod        = "pod"
	KindJob        = "job"
	KindDeployment = "deployment"
)

// Pod Security Standards levels (--pod-security, Manifest.Level).
const (
	LevelRestricted = "restricted"
	LevelBaseline   = "baseline"
	LevelPrivileged = "privileged"
)

// GPU APIs (--gpu-api).
const (
	// GPUDevicePlugin asks for nvidia.com/gpu, the NVIDIA device plugin's
	// extended resource.
	GPUDevicePlugin = "device-plugin"
	// GPUDRA asks through dynamic resource allocation: a
	// ResourceClaimTemplate of resource.k8s.io/v1 with the device class
	// gpu.nvidia.com (NVIDIA's DRA driver).
	GPUDRA = "dra"
)

// Volume rules (--volumes): what a bind mount becomes.
const (
	// VolumesAuto makes the workspace and caches PersistentVolumeClaims and
	// leaves other host paths (~/.ssh, ~/.gitconfig) out, each with a line.
	VolumesAuto = ""
	// VolumesPVC makes every bind mount a PersistentVolumeClaim.
	VolumesPVC = "pvc"
	// VolumesHostPath keeps every bind mount a hostPath of the node (the
	// privileged Pod Security level).
	VolumesHostPath = "hostpath"
	// VolumesEmptyDir makes every bind mount an emptyDir.
	VolumesEmptyDir = "emptydir"
)

const (
	// LabelApp selects a generated workload's Pods.
	LabelApp = "app.kubernetes.io/name"
	// AnnotationProfile records the profile a manifest was generated from.
	AnnotationProfile = "sbxrun.io/profile"
	// GPUResource is the NVIDIA device plugin's resource.
	GPUResource = "nvidia.com/gpu"
	// GPUDeviceClass is the device class of NVIDIA's DRA driver.
	GPUDeviceClass = "gpu.nvidia.com"
	// gpuClaim names the Pod's claim of a ResourceClaimTemplate.
	gpuClaim = "gpu"
	// workspaceSize, cacheSize and volumeSize (a compose named volume)
	// are the storage requests of generated claims.
	workspaceSize = "10Gi"
	cacheSize     = "100Gi"
	volumeSize    = "10Gi"
)

// Options are `sbxrun kube generate`'s own flags.
type Options struct {
	// Kind is KindPod (""), KindJob or KindDeployment.
	Kind string
	// Name names the objects ("" is the resolved sandbox name); a DNS label.
	Name string
	// Namespace, when set, is written into every object.
	Namespace string
	// Service adds a Service for the published ports.
	Service bool
	// PodSecurity is LevelRestricted ("") or LevelBaseline.
	PodSecurity string
	// GPUAPI is GPUDevicePlugin ("") or GPUDRA.
	GPUAPI string
	// Volumes is the rule for bind mounts (VolumesAuto, VolumesPVC,
	// VolumesHostPath, VolumesEmptyDir).
	Volumes string
	// Pin writes the image by digest (the image must be in containerd:
	// Resolved.ImageDigest).
	Pin bool
	// Claims are host directories that become the named
	// PersistentVolumeClaim given, whatever the Volumes rule: a compose
	// project's named volumes, shared by the services that mount them.
	Claims map[string]string
	// Expose are more container ports (PORT[-END][/PROTO]) than the
	// published ones: compose's expose:, for the Service.
	Expose []string
}

// Manifest is what Generate made of a sandbox.
type Manifest struct {
	// Objects in the order they are written: Secret, claims, claim
	// template, the workload, Service.
	Objects []k8sruntime.Object
	// Volumes says, one line per mount, what each became.
	Volumes []string
	// Warnings are what Kubernetes cannot express, one line each.
	Warnings []string
	// Level is the least Pod Security level that admits the Pod.
	Level string
	// Workload is the Pod, Job or Deployment among Objects.
	Workload k8sruntime.Object
}

// DropSeen removes the shared objects (Kind/Name in shared: a compose
// project's volume claims) that seen holds and adds the others to it, so
// that manifests written together write each shared object once.
func (m *Manifest) DropSeen(seen, shared map[string]bool) {
	m.Objects = slices.DeleteFunc(m.Objects, func(o k8sruntime.Object) bool {
		key := o.GetObjectKind().GroupVersionKind().Kind + "/"
		if a, err := meta.Accessor(o); err == nil {
			key += a.GetName()
		}
		if !shared[key] {
			return false
		}
		dup := seen[key]
		seen[key] = true
		return dup
	})
}

// HasSecret reports whether the manifest carries a Secret (credentials
// from the environment), so a file written with it is the owner's only.
func (m *Manifest) HasSecret() bool {
	return slices.ContainsFunc(m.Objects, func(o k8sruntime.Object) bool {
		_, ok := o.(*corev1.Secret)
		return ok
	})
}

// ErrBadOptions classifies an option Generate refuses (bad input).
var ErrBadOptions = errors.New("invalid kube option")

// badOption is bad input: its message is the one line the user sees.
type badOption struct{ msg string }

func (e *badOption) Error() string        { return e.msg }
func (e *badOption) Is(target error) bool { return target == ErrBadOptions }

func badf(format string, a ...any) error {
	return &badOption{msg: fmt.Sprintf(format, a...)}
}

var nameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// NameFor is the object name for a target (a profile or an image): a DNS
// label, stable (no random suffix) so a manifest regenerated is the same.
func NameFor(target string) string {
	base := target
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.IndexAny(base, ":@"); i >= 0 {
		base = base[:i]
	}
	base = strings.Trim(nameChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "sandbox"
	}
	return base
}

// gen carries one generation.
type gen struct {
	r    *runtime.Resolved
	o    Options
	m    *Manifest
	name string
	meta metav1.ObjectMeta
}

func (g *gen) warnf(format string, a ...any) {
	g.m.Warnings = append(g.m.Warnings, fmt.Sprintf(format, a...))
}

func (g *gen) objectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: g.o.Namespace, Labels: map[string]string{LabelApp: g.name}}
}

// Generate turns a resolved sandbox into Kubernetes objects.
func Generate(r *runtime.Resolved, o Options) (*Manifest, error) {
	switch o.Kind {
	case "", KindPod, KindJob, KindDeployment:
	default:
		return nil, badf("unknown --kind %q: use pod, job or deployment", o.Kind)
	}
	switch o.PodSecurity {
	case "", LevelRestricted, LevelBaseline:
	default:
		return nil, badf("unknown --pod-security %q: use restricted or baseline", o.PodSecurity)
	}
	switch o.GPUAPI {
	case "", GPUDevicePlugin, GPUDRA:
	default:
		return nil, badf("unknown --gpu-api %q: use device-plugin or dra", o.GPUAPI)
	}
	switch o.Volumes {
	case VolumesAuto, VolumesPVC, VolumesHostPath, VolumesEmptyDir:
	default:
		return nil, badf("unknown --volumes %q: use pvc, hostpath or emptydir", o.Volumes)
	}
	name := o.Name
	if name == "" {
		name = NameFor(r.Name)
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > 50 {
		return nil, badf("name %q is not a Kubernetes name (lowercase letters, digits and '-', at most 50 characters here): pass --name NAME", name)
	}
	if o.Namespace != "" {
		if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
			return nil, badf("namespace %q is not a Kubernetes namespace name: use lowercase letters, digits and '-'", o.Namespace)
		}
	}
	g := &gen{r: r, o: o, m: &Manifest{}, name: name}
	spec, err := g.podSpec()
	if err != nil {
		return nil, err
	}
	podMeta := metav1.ObjectMeta{Labels: map[string]string{LabelApp: name}, Annotations: g.meta.Annotations}
	switch o.Kind {
	case "", KindPod:
		spec.RestartPolicy = corev1.RestartPolicyNever
		pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: g.objectMeta(name), Spec: *spec}
		pod.Annotations = podMeta.Annotations
		g.m.Workload = pod
	case KindJob:
		spec.RestartPolicy = corev1.RestartPolicyNever
		g.m.Workload = &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: g.objectMeta(name),
			Spec: batchv1.JobSpec{BackoffLimit: ptr(int32(0)), Template: corev1.PodTemplateSpec{ObjectMeta: podMeta, Spec: *spec}}}
	case KindDeployment:
		spec.RestartPolicy = corev1.RestartPolicyAlways
		g.m.Workload = &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: g.objectMeta(name),
			Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelApp: name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: podMeta, Spec: *spec}}}
	}
	g.m.Objects = append(g.m.Objects, g.m.Workload)
	if o.Service {
		svc, err := g.service(spec)
		if err != nil {
			return nil, err
		}
		g.m.Objects = append(g.m.Objects, svc)
	}
	if g.m.Level, err = Level(spec); err != nil {
		return nil, err
	}
	asked := o.PodSecurity
	if asked == "" {
		asked = LevelRestricted
	}
	if w := exceeds(spec, asked, g.m.Level); w != "" {
		g.warnf("%s", w)
	}
	return g.m, nil
}

func ptr[T any](v T) *T { return &v }

// podSpec is the Pod of the sandbox; the Secret, claims and claim
// template it refers to are added to the manifest on the way.
func (g *gen) podSpec() (*corev1.PodSpec, error) {
	r, sb := g.r, g.r.Sandbox
	c := corev1.Container{Name: g.name, Image: r.Image, WorkingDir: sb.Workdir}
	if g.o.Pin {
		if r.ImageDigest == "" {
			return nil, badf("--pin: image %q is not in containerd, so its digest is unknown: pull it first (`sbxrun pull %s`)", r.Image, r.Image)
		}
		c.Image = pinned(r.Image, r.ImageDigest)
	}
	switch r.Pull {
	case "", "missing":
		c.ImagePullPolicy = corev1.PullIfNotPresent
	case "always":
		c.ImagePullPolicy = corev1.PullAlways
	case "never":
		c.ImagePullPolicy = corev1.PullNever
	}
	if sb.EntrypointSet {
		switch {
		case len(sb.Entrypoint) > 0:
			c.Command = slices.Clone(sb.Entrypoint)
		case len(sb.Args) > 0:
			// docker --entrypoint "": the command is the whole process.
			c.Command = slices.Clone(sb.Args)
		default:
			g.warnf("entrypoint: an empty entrypoint without a command cannot be written: the image's entrypoint stays (give -- CMD)")
		}
	}
	if len(sb.Args) > 0 && !(sb.EntrypointSet && len(sb.Entrypoint) == 0) {
		c.Args = slices.Clone(sb.Args)
	}
	spec := &corev1.PodSpec{Containers: []corev1.Container{c}}
	ct := &spec.Containers[0]
	g.meta.Annotations = map[string]string{}
	if r.Profile != "" {
		g.meta.Annotations[AnnotationProfile] = r.Profile
	}
	for _, k := range sortedKeys(r.Labels) {
		g.meta.Annotations[k] = r.Labels[k]
	}
	g.env(ct)
	if err := g.security(spec, ct); err != nil {
		return nil, err
	}
	g.limits(spec, ct)
	if err := g.gpus(spec, ct); err != nil {
		return nil, err
	}
	if err := g.volumes(spec, ct); err != nil {
		return nil, err
	}
	if err := g.ports(ct); err != nil {
		return nil, err
	}
	g.rest(spec)
	if len(g.meta.Annotations) == 0 {
		g.meta.Annotations = nil
	}
	// The workload goes after what it refers to.
	return spec, nil
}

// pinned is ref with its tag kept (for the reader) and the digest added.
func pinned(ref, digest string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	return ref + "@" + digest
}

// env writes the environment, credentials into a Secret.
func (g *gen) env(ct *corev1.Container) {
	var secret *corev1.Secret
	for _, kv := range g.r.Sandbox.Env {
		k, v, _ := strings.Cut(kv, "=")
		if !systemd.LooksSecret(k, v) {
			ct.Env = append(ct.Env, corev1.EnvVar{Name: k, Value: v})
			continue
		}
		if secret == nil {
			secret = &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: g.objectMeta(g.name + "-env"),
				Type: corev1.SecretTypeOpaque, StringData: map[string]string{}}
			g.m.Objects = append(g.m.Objects, secret)
		}
		secret.StringData[k] = v
		ct.Env = append(ct.Env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret.Name}, Key: k}}})
	}
	if secret != nil {
		g.warnf("env %s: looks like a credential: written to Secret %s, not inline; replace it with your cluster's own secret of that name (see the README)",
			strings.Join(sortedKeys(secret.StringData), ", "), secret.Name)
	}
}

// uidGID parses "uid[:gid]"; ok is false for names.
func uidGID(user string) (uid, gid *int64, ok bool) {
	u, gr, hasGroup := strings.Cut(user, ":")
	if u == "root" {
		u = "0"
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return nil, nil, false
	}
	uid = &n
	if hasGroup {
		if gr == "root" {
			gr = "0"
		}
		m, err := strconv.ParseInt(gr, 10, 64)
		if err != nil {
			return nil, nil, false
		}
		gid = &m
	}
	return uid, gid, true
}

// security writes the security contexts: restricted by default, the local
// sandbox's capabilities with baseline, privileged only when asked.
func (g *gen) security(spec *corev1.PodSpec, ct *corev1.Container) error {
	r, sb := g.r, g.r.Sandbox
	restricted := g.o.PodSecurity != LevelBaseline
	psc := &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	sc := &corev1.SecurityContext{}
	spec.SecurityContext, ct.SecurityContext = psc, sc

	user, from := sb.User, "-u "+sb.User
	known := r.ImageConfig != nil
	if user == "" && known {
		user, from = r.ImageConfig.User, fmt.Sprintf("image %s (user %q)", r.Image, r.ImageConfig.User)
		if user == "" {
			from = fmt.Sprintf("image %s (no user: root)", r.Image)
		}
	}
	uid, gid, numeric := uidGID(user)
	switch {
	case sb.User != "" && !numeric:
		return badf("user %q is a name, and Kubernetes runs a container by number: use -u UID[:GID]", sb.User)
	case sb.User != "":
		psc.RunAsUser, psc.RunAsGroup = uid, gid
	}
	root := (numeric && *uid == 0) || (user == "" && known)
	if restricted && !sb.Privileged {
		switch {
		case root:
			return badf("%s runs as root, which the restricted Pod Security level refuses: run it as a user with -u UID[:GID], or pass --pod-security baseline", from)
		case user != "" && !numeric:
			return badf("%s is a name, and the kubelet cannot tell that it is not root: run it with -u UID[:GID], or pass --pod-security baseline", from)
		case !known && sb.User == "":
			g.warnf("image %s is not in containerd here, so whether it runs as root was not checked: the kubelet refuses to start it as root (runAsNonRoot); `sbxrun pull %s` and generate again to check now", r.Image, r.Image)
		}
		psc.RunAsNonRoot = ptr(true)
	}

	if sb.Privileged {
		if !r.Set("privileged") {
			return badf("privileged from the built-in profile: pass --privileged yourself")
		}
		sc.Privileged = ptr(true)
		g.warnf("privileged: the Pod is privileged, as asked: it needs a namespace at the privileged Pod Security level")
	} else {
		sc.AllowPrivilegeEscalation = ptr(!sb.NoNewPrivileges)
		if !sb.NoNewPrivileges && restricted {
			sc.AllowPrivilegeEscalation = ptr(false)
			g.warnf("security_opt no-new-privileges=false: the restricted level forbids privilege escalation: kept off (use --pod-security baseline)")
		}
		caps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
		var local []string
		for _, cp := range r.Caps {
			local = append(local, strings.TrimPrefix(cp, "CAP_"))
		}
		if restricted {
			if slices.Contains(local, "NET_BIND_SERVICE") {
				caps.Add = []corev1.Capability{"NET_BIND_SERVICE"}
			}
			for _, a := range sb.CapAdd {
				if a = strings.TrimPrefix(a, "CAP_"); a != "NET_BIND_SERVICE" {
					g.warnf("cap_add %s: the restricted Pod Security level allows no capability but NET_BIND_SERVICE: left out (pass --pod-security baseline to keep it)", a)
				}
			}
		} else {
			for _, cp := range local {
				caps.Add = append(caps.Add, corev1.Capability(cp))
			}
		}
		sc.Capabilities = caps
	}
	if sb.ReadOnly {
		sc.ReadOnlyRootFilesystem = ptr(true)
	}
	switch {
	case sb.Seccomp == "unconfined" && restricted:
		g.warnf("security_opt seccomp=unconfined: the restricted level needs a seccomp profile: RuntimeDefault kept (use --pod-security baseline)")
	case sb.Seccomp == "unconfined":
		psc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		g.warnf("security_opt seccomp=unconfined: the Pod is unconfined, as asked: it needs a namespace at the privileged Pod Security level")
	case sb.Seccomp != "":
		g.warnf("security_opt seccomp=%s: a profile file of this host means nothing on a node: RuntimeDefault used (a Localhost profile must be installed on every node)", sb.Seccomp)
	}
	if sb.AppArmor != "" {
		g.warnf("security_opt apparmor=%s: not written: the node's runtime applies its default AppArmor profile", sb.AppArmor)
	}
	return nil
}

// limits writes memory, CPU and /dev/shm.
func (g *gen) limits(spec *corev1.PodSpec, ct *corev1.Container) {
	r, sb := g.r, g.r.Sandbox
	lim := corev1.ResourceList{}
	if sb.Memory > 0 {
		lim[corev1.ResourceMemory] = *resource.NewQuantity(sb.Memory, resource.BinarySI)
	}
	if sb.CPUs > 0 {
		lim[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(sb.CPUs*1000+0.5), resource.DecimalSI)
	}
	if len(lim) > 0 {
		ct.Resources.Limits = lim
	}
	if r.Set("memory_swap") {
		g.warnf("memory_swap: Kubernetes sets swap per node (the kubelet's swap behavior): not written")
	}
	if r.Set("pids_limit") {
		g.warnf("pids_limit %d: Kubernetes sets process limits per node (the kubelet's podPidsLimit): not written", sb.PidsLimit)
	}
	if sb.ShmSize > 0 {
		q := resource.NewQuantity(sb.ShmSize, resource.BinarySI)
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "dshm", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: q}}})
		ct.VolumeMounts = append(ct.VolumeMounts, corev1.VolumeMount{Name: "dshm", MountPath: "/dev/shm"})
		g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("/dev/shm (shm_size %s): emptyDir dshm in memory, sizeLimit %s", q.String(), q.String()))
	}
}

// gpus writes the GPU request with the chosen API.
func (g *gen) gpus(spec *corev1.PodSpec, ct *corev1.Container) error {
	r := g.r
	for _, d := range r.Devices {
		g.warnf("devices %s: CDI devices of this host are not written: ask the cluster's device plugin or DRA driver for it", d)
	}
	req := r.GPUs
	if req == nil {
		return nil
	}
	if r.GPUOptional {
		g.warnf("gpu: optional: a Pod that asks for GPUs waits for a node that has them (pass --gpus none to leave them out)")
	}
	var uuids, indices []string
	for _, id := range req.IDs {
		if _, err := strconv.Atoi(id); err == nil {
			indices = append(indices, id)
		} else {
			uuids = append(uuids, id)
		}
	}
	if g.o.GPUAPI != GPUDRA {
		if len(uuids) > 0 {
			return badf("--gpus device=%s: the device plugin API asks for a number of GPUs, not a particular one: use --gpu-api dra to name it", uuids[0])
		}
		n := req.Count
		switch {
		case req.All:
			n = 1
			g.warnf("gpus all: the device plugin API asks for a number of GPUs: asked for 1 (pass --gpus N, or --gpu-api dra for every GPU of a node)")
		case len(indices) > 0:
			n = len(indices)
			g.warnf("gpus %s: GPU indices of this host mean nothing on a node: asked for %d GPUs", strings.Join(indices, ","), n)
		}
		if ct.Resources.Limits == nil {
			ct.Resources.Limits = corev1.ResourceList{}
		}
		ct.Resources.Limits[GPUResource] = *resource.NewQuantity(int64(n), resource.DecimalSI)
		return nil
	}
	tmpl := &resourcev1.ResourceClaimTemplate{TypeMeta: metav1.TypeMeta{APIVersion: "resource.k8s.io/v1", Kind: "ResourceClaimTemplate"},
		ObjectMeta: g.objectMeta(g.name + "-gpu")}
	exact := func(name string, mode resourcev1.DeviceAllocationMode, count int64, cel string) resourcev1.DeviceRequest {
		e := &resourcev1.ExactDeviceRequest{DeviceClassName: GPUDeviceClass, AllocationMode: mode}
		if mode == resourcev1.DeviceAllocationModeExactCount {
			e.Count = count
		}
		if cel != "" {
			e.Selectors = []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: cel}}}
		}
		return resourcev1.DeviceRequest{Name: name, Exactly: e}
	}
	var reqs []resourcev1.DeviceRequest
	switch {
	case req.All:
		reqs = append(reqs, exact("gpu", resourcev1.DeviceAllocationModeAll, 0, ""))
	case req.Count > 0:
		reqs = append(reqs, exact("gpu", resourcev1.DeviceAllocationModeExactCount, int64(req.Count), ""))
	default:
		for i, id := range req.IDs {
			attr := fmt.Sprintf(`device.attributes["%s"].uuid == %q`, GPUDeviceClass, id)
			if _, err := strconv.Atoi(id); err == nil {
				attr = fmt.Sprintf(`device.attributes["%s"].index == %s`, GPUDeviceClass, id)
			}
			reqs = append(reqs, exact(fmt.Sprintf("gpu-%d", i), resourcev1.DeviceAllocationModeExactCount, 1, attr))
		}
		if len(indices) > 0 {
			g.warnf("gpus %s: indices are the node's (the DRA driver's index attribute), not this host's", strings.Join(indices, ","))
		}
	}
	tmpl.Spec.Spec.Devices.Requests = reqs
	g.m.Objects = append(g.m.Objects, tmpl)
	spec.ResourceClaims = append(spec.ResourceClaims, corev1.PodResourceClaim{Name: gpuClaim, ResourceClaimTemplateName: ptr(tmpl.Name)})
	ct.Resources.Claims = append(ct.Resources.Claims, corev1.ResourceClaim{Name: gpuClaim})
	return nil
}

var volChars = regexp.MustCompile(`[^a-z0-9-]+`)

// volumeName is a DNS label for a mount at dst, unique in spec.
func volumeName(spec *corev1.PodSpec, dst string) string {
	base := strings.Trim(volChars.ReplaceAllString(strings.ToLower(path.Base(dst)), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "vol"
	}
	name := base
	for i := 2; slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == name }); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

// volumes writes the mounts by the rule, one line each.
func (g *gen) volumes(spec *corev1.PodSpec, ct *corev1.Container) error {
	for _, m := range g.r.Mounts {
		vname := volumeName(spec, m.Destination)
		vm := corev1.VolumeMount{Name: vname, MountPath: m.Destination, ReadOnly: m.ReadOnly}
		for _, opt := range m.Options {
			switch {
			case m.Kind == runtime.MountTmpfs && (strings.HasPrefix(opt, "size=") || strings.HasPrefix(opt, "mode=")):
			case opt == "private" || opt == "rprivate":
			default:
				g.warnf("mount %s: option %s is not written (Kubernetes mounts volumes nosuid-free, private)", m.Destination, opt)
			}
		}
		if m.Kind == runtime.MountTmpfs {
			ed := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
			what := "emptyDir " + vname + " in memory"
			for _, opt := range m.Options {
				if s, ok := strings.CutPrefix(opt, "size="); ok {
					if n, err := strconv.ParseInt(s, 10, 64); err == nil {
						ed.SizeLimit = resource.NewQuantity(n, resource.BinarySI)
						what += ", sizeLimit " + ed.SizeLimit.String()
					}
				}
			}
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
			ct.VolumeMounts = append(ct.VolumeMounts, vm)
			g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("%s (tmpfs): %s", m.Destination, what))
			continue
		}
		if claim, ok := g.o.Claims[filepath.Clean(m.Source)]; ok {
			pvc := &corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: g.objectMeta(claim),
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(volumeSize)}}}}
			pvc.Labels = nil // shared by the services that mount it
			g.m.Objects = append(g.m.Objects, pvc)
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
			ct.VolumeMounts = append(ct.VolumeMounts, vm)
			g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("%s (volume %s): PersistentVolumeClaim %s (%s, ReadWriteOnce)", m.Destination, m.As, claim, volumeSize))
			continue
		}
		rule := g.o.Volumes
		isDir := true
		if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
			isDir = false
		}
		if rule == VolumesAuto {
			rule = VolumesPVC
			if m.Kind == runtime.MountBind {
				g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("%s (from %s): left out: a path of this host; give it as a Secret or ConfigMap, or pass --volumes pvc|emptydir|hostpath", m.Destination, m.As))
				continue
			}
		}
		if !isDir && rule != VolumesHostPath {
			g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("%s (from %s): left out: a single file cannot be a %s; give it as a Secret or ConfigMap", m.Destination, m.As, rule))
			continue
		}
		from := fmt.Sprintf("%s (%s from %s)", m.Destination, m.Kind, m.As)
		var vs corev1.VolumeSource
		switch rule {
		case VolumesPVC:
			size := workspaceSize
			if m.Kind == runtime.MountCache {
				size = cacheSize
			}
			claim := &corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: g.objectMeta(g.name + "-" + vname),
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
			g.m.Objects = append(g.m.Objects, claim)
			vs.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name}
			line := fmt.Sprintf("%s: PersistentVolumeClaim %s (%s, ReadWriteOnce)", from, claim.Name, size)
			if m.Kind == runtime.MountWorkspace {
				line += ": copy the project into it, or use --volumes hostpath on a single node"
			}
			g.m.Volumes = append(g.m.Volumes, line)
		case VolumesEmptyDir:
			vs.EmptyDir = &corev1.EmptyDirVolumeSource{}
			g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("%s: emptyDir %s (empty at start, gone with the Pod)", from, vname))
		case VolumesHostPath:
			t := corev1.HostPathDirectory
			if !isDir {
				t = corev1.HostPathFile
			}
			vs.HostPath = &corev1.HostPathVolumeSource{Path: m.Source, Type: &t}
			g.m.Volumes = append(g.m.Volumes, fmt.Sprintf("%s: hostPath %s of the node (the privileged Pod Security level: the namespace must allow it)", from, m.Source))
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: vname, VolumeSource: vs})
		ct.VolumeMounts = append(ct.VolumeMounts, vm)
	}
	return nil
}

// ports writes the published ports, then the exposed ones, as container
// ports, each once.
func (g *gen) ports(ct *corev1.Container) error {
	add := func(port int, protocol string) {
		proto := corev1.ProtocolTCP
		if protocol == "udp" {
			proto = corev1.ProtocolUDP
		}
		for _, have := range ct.Ports {
			if have.ContainerPort == int32(port) && have.Protocol == proto {
				return
			}
		}
		ct.Ports = append(ct.Ports, corev1.ContainerPort{Name: fmt.Sprintf("%s-%d", strings.ToLower(string(proto)), port), ContainerPort: int32(port), Protocol: proto})
	}
	for _, p := range g.r.Ports {
		for port := p.ContainerStart; port <= p.ContainerEnd; port++ {
			add(int(port), p.Protocol)
		}
		if p.HostStart != 0 || p.HostIP != "" {
			if g.o.Service {
				g.warnf("publish %d: the host address and port are not written (Service %s exposes the port in the cluster)", p.ContainerStart, g.name)
			} else {
				g.warnf("publish %d: the host address and port are not written (a Pod's ports are reached through a Service: --service)", p.ContainerStart)
			}
		}
	}
	for _, e := range g.o.Expose {
		start, end, proto, err := parseExpose(e)
		if err != nil {
			return err
		}
		for port := start; port <= end; port++ {
			add(port, proto)
		}
	}
	return nil
}

// parseExpose reads PORT[-END][/tcp|/udp].
func parseExpose(e string) (start, end int, proto string, err error) {
	ports, proto, _ := strings.Cut(e, "/")
	if proto == "" {
		proto = "tcp"
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	if !isRange {
		hi = lo
	}
	start, err1 := strconv.Atoi(lo)
	end, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || start < 1 || end > 65535 || end < start || (proto != "tcp" && proto != "udp") {
		return 0, 0, "", badf("expose %q: not a port (PORT[-END][/tcp|/udp], 1-65535)", e)
	}
	return start, end, proto, nil
}

// rest writes what is left: stop timeout and signal, hostname, network,
// user namespace.
func (g *gen) rest(spec *corev1.PodSpec) {
	r, sb := g.r, g.r.Sandbox
	spec.TerminationGracePeriodSeconds = ptr(int64(r.StopTimeout))
	if r.StopSignal != "" && r.StopSignal != "SIGTERM" && r.StopSignal != "TERM" && r.StopSignal != "15" {
		g.warnf("stop_signal %s: Pods are stopped with SIGTERM here (the stop signal of a container needs a newer feature gate): not written", r.StopSignal)
	}
	if r.Set("hostname") {
		if errs := validation.IsDNS1123Label(sb.Hostname); len(errs) == 0 {
			spec.Hostname = sb.Hostname
		} else {
			g.warnf("hostname %s: not a DNS label, not written", sb.Hostname)
		}
	}
	if r.Set("network") {
		switch sb.Network {
		case "host":
			g.warnf("network host: a Pod has its own network (hostNetwork is refused by the baseline level): not written")
		case "none":
			g.warnf("network none: a Pod always has a network: not written (a NetworkPolicy denies traffic)")
		}
	}
	if r.Set("userns") {
		g.warnf("userns %s: Kubernetes maps users with hostUsers: false per node: not written", sb.Userns)
	}
}

// service is the Service of the published ports.
func (g *gen) service(spec *corev1.PodSpec) (*corev1.Service, error) {
	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: g.objectMeta(g.name),
		Spec: corev1.ServiceSpec{Selector: map[string]string{LabelApp: g.name}}}
	for _, p := range spec.Containers[0].Ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.Name, Port: p.ContainerPort, Protocol: p.Protocol, TargetPort: intstr.FromInt32(p.ContainerPort)})
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, badf("--service needs a published port: add -p PORT")
	}
	if g.o.Kind == "" || g.o.Kind == KindPod || g.o.Kind == KindJob {
		g.warnf("--service with a %s: the Service selects it by label %s=%s; a Deployment keeps it running", kindOr(g.o.Kind), LabelApp, g.name)
	}
	return svc, nil
}

func kindOr(k string) string {
	if k == "" {
		return KindPod
	}
	return k
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
