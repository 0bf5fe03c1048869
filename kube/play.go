package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// Labels on every sandbox `kube play` creates, so `kube down` removes
// exactly those.
const (
	// LabelFile is the manifest's absolute path.
	LabelFile = "io.sbxrun.kube.file"
	// LabelPod is the Pod's name (a Deployment's or Job's).
	LabelPod = "io.sbxrun.kube.pod"
)

// PlayPod is one Pod of a manifest as sandboxes: Init run first, in order,
// each to completion; then Containers, which share the first one's network
// namespace (--net container:FIRST).
type PlayPod struct {
	// Name is the Pod's name; Kind "Pod", "Deployment" or "Job".
	Name, Kind string
	// Init and Containers are the runs, as `sbxrun run` would be given
	// them (image, command, flags).
	Init, Containers []*runtime.RunOptions
}

// Plan is a manifest read for `kube play`.
type Plan struct {
	// File is the manifest's absolute path, Dir its directory (the
	// project directory of the trust rule).
	File, Dir string
	// Pods in the order of the manifest.
	Pods []PlayPod
	// Warnings are what a sandbox cannot do of the manifest, one line each.
	Warnings []string
}

// Load reads the manifest at file strictly and plans its Pods, Deployments
// (one replica) and Jobs as sandboxes. Until the user trusts the file
// (`sbxrun trust FILE`, the store of trustFile, "" is the default), it may
// not ask for privileged containers, added capabilities, host namespaces or
// hostPath volumes outside its directory: each is one line naming the file
// and the fix, and nothing is planned.
func Load(file, trustFile string) (*Plan, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, badf("reading the manifest: %v: give the path of a YAML file", err)
	}
	objs, other, err := decode(data, true)
	if err != nil {
		return nil, badf("%s: %v: fix the manifest (kubectl apply --dry-run=client -f %s shows the same)", abs, err, file)
	}
	trusted, err := profiles.FileTrusted(trustFile, abs, data)
	if err != nil {
		return nil, err
	}
	p := &Plan{File: abs, Dir: filepath.Dir(abs)}
	for _, o := range other {
		p.warnf("%s: not run (kube play runs Pods, Deployments and Jobs)", o)
	}
	secrets := map[string]*corev1.Secret{}
	for _, o := range objs {
		if s, ok := o.(*corev1.Secret); ok {
			secrets[s.Name] = s
		}
	}
	for _, o := range objs {
		var name, kind string
		var spec *corev1.PodSpec
		switch w := o.(type) {
		case *corev1.Pod:
			name, kind, spec = w.Name, "Pod", &w.Spec
		case *appsv1.Deployment:
			name, kind, spec = w.Name, "Deployment", &w.Spec.Template.Spec
			if w.Spec.Replicas != nil && *w.Spec.Replicas != 1 {
				p.warnf("deployment %s: replicas %d: runs one replica", name, *w.Spec.Replicas)
			}
		case *batchv1.Job:
			name, kind, spec = w.Name, "Job", &w.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				return nil, badf("%s: job %s: %d containers: kube play runs a Job of one container; split it", abs, name, len(spec.Containers))
			}
		default:
			p.warnf("%s %s: not run (kube play runs Pods, Deployments and Jobs)", o.GetObjectKind().GroupVersionKind().Kind, objectName(o))
			continue
		}
		if spec.RestartPolicy == corev1.RestartPolicyAlways || (kind == "Deployment" && spec.RestartPolicy == "") {
			p.warnf("%s %s: restartPolicy Always: nothing restarts a sandbox here (see `sbxrun systemd generate`)", strings.ToLower(kind), name)
		}
		if !trusted {
			if err := p.confine(name, spec); err != nil {
				return nil, err
			}
		}
		pod := PlayPod{Name: name, Kind: kind}
		for _, c := range spec.InitContainers {
			ro, err := p.container(name, spec, &c, secrets)
			if err != nil {
				return nil, err
			}
			ro.Remove = true
			pod.Init = append(pod.Init, ro)
		}
		for i, c := range spec.Containers {
			ro, err := p.container(name, spec, &c, secrets)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				net := "container:" + pod.Containers[0].Name
				ro.Flags.Network = &net
			}
			pod.Containers = append(pod.Containers, ro)
		}
		p.Pods = append(p.Pods, pod)
	}
	if len(p.Pods) == 0 {
		return nil, badf("%s has no Pod, Deployment or Job to play", abs)
	}
	return p, nil
}

func (p *Plan) warnf(format string, a ...any) {
	p.Warnings = append(p.Warnings, fmt.Sprintf(format, a...))
}

func objectName(o any) string {
	if m, ok := o.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}

// defaultCaps are the capabilities a container has by default (the
// runtime's defaults, which the baseline Pod Security level allows to add).
var defaultCaps = []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
	"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

// confine is the trust rule of project files for an untrusted manifest.
func (p *Plan) confine(pod string, spec *corev1.PodSpec) error {
	refuse := func(what string) error {
		return profiles.UntrustedError(p.File+": pod "+pod, p.File, what, "")
	}
	switch {
	case spec.HostNetwork:
		return refuse("hostNetwork")
	case spec.HostPID:
		return refuse("hostPID")
	case spec.HostIPC:
		return refuse("hostIPC")
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc == nil {
			continue
		}
		if sc.Privileged != nil && *sc.Privileged {
			return refuse("container " + c.Name + ": privileged")
		}
		if sc.Capabilities == nil {
			continue
		}
		for _, a := range sc.Capabilities.Add {
			// Adding back a default capability (after drop: [ALL], as
			// `kube generate --pod-security baseline` writes) widens
			// nothing.
			if !slices.Contains(defaultCaps, strings.TrimPrefix(strings.ToUpper(string(a)), "CAP_")) {
				return refuse(fmt.Sprintf("container %s: capabilities.add %s", c.Name, a))
			}
		}
	}
	root, err := filepath.EvalSymlinks(p.Dir)
	if err != nil {
		root = p.Dir
	}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		src := filepath.Clean(v.HostPath.Path)
		if !filepath.IsAbs(src) {
			src = filepath.Join(p.Dir, src)
		}
		if r, err := filepath.EvalSymlinks(src); err == nil {
			src = r
		}
		if rel, err := filepath.Rel(root, src); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return refuse(fmt.Sprintf("hostPath %q (outside the manifest's directory %q)", v.HostPath.Path, p.Dir))
		}
	}
	return nil
}

// container is the run of one container of pod.
func (p *Plan) container(pod string, spec *corev1.PodSpec, c *corev1.Container, secrets map[string]*corev1.Secret) (*runtime.RunOptions, error) {
	f := &profiles.Profile{Labels: map[string]string{LabelFile: p.File, LabelPod: pod}, Env: map[string]string{}}
	where := fmt.Sprintf("%s: pod %s: container %s", p.File, pod, c.Name)
	if c.Image == "" {
		return nil, badf("%s: no image: add image:", where)
	}
	if len(c.Command) > 0 {
		f.Entrypoint = slices.Clone(c.Command)
	}
	pull := "missing"
	switch c.ImagePullPolicy {
	case corev1.PullAlways:
		pull = "always"
	case corev1.PullNever:
		pull = "never"
	}
	f.Pull = &pull
	if c.WorkingDir != "" {
		f.Workdir = ptr(c.WorkingDir)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			f.Env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := secrets[ref.Name]
			v, found := "", false
			if ok {
				if v, found = s.StringData[ref.Key]; !found {
					var b []byte
					b, found = s.Data[ref.Key]
					v = string(b)
				}
			}
			switch {
			case found:
				f.Env[e.Name] = v
			case ref.Optional != nil && *ref.Optional:
			default:
				return nil, badf("%s: env %s: secret %s key %s is not in the manifest: add the Secret to the file", where, e.Name, ref.Name, ref.Key)
			}
		default:
			p.warnf("%s: env %s: only values and secretKeyRef of a Secret in the file are played: left out", where, e.Name)
		}
	}
	sc := c.SecurityContext
	psc := spec.SecurityContext
	uid, gid := int64(-1), int64(-1)
	if psc != nil {
		if psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
	}
	if sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
		if sc.Privileged != nil && *sc.Privileged {
			f.Privileged = ptr(true)
		}
		if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			f.ReadOnly = ptr(true)
		}
		if sc.Capabilities != nil {
			for _, a := range sc.Capabilities.Add {
				f.CapAdd = append(f.CapAdd, string(a))
			}
			for _, d := range sc.Capabilities.Drop {
				f.CapDrop = append(f.CapDrop, string(d))
			}
		}
	}
	switch {
	case uid >= 0 && gid >= 0:
		f.User = ptr(fmt.Sprintf("%d:%d", uid, gid))
	case uid >= 0:
		f.User = ptr(strconv.FormatInt(uid, 10))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		f.Memory = ptr(strconv.FormatInt(q.Value(), 10))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		f.CPUs = ptr(float64(q.MilliValue()) / 1000)
	}
	if q, ok := c.Resources.Limits[GPUResource]; ok {
		f.GPUs = ptr(strconv.FormatInt(q.Value(), 10))
	}
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			return nil, badf("%s: volumeMount %s names no volume of the Pod: add it to volumes", where, vm.Name)
		}
		v := spec.Volumes[i]
		m := profiles.MountSpec{Target: vm.MountPath, ReadOnly: vm.ReadOnly}
		switch {
		case v.HostPath != nil:
			m.Source = v.HostPath.Path
			if !filepath.IsAbs(m.Source) {
				m.Source = filepath.Join(p.Dir, m.Source)
			}
		case v.EmptyDir != nil:
			m.Type = "tmpfs"
			if v.EmptyDir.SizeLimit != nil {
				m.Options = []string{"size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)}
			}
			if vm.MountPath == "/dev/shm" {
				f.ShmSize = ptr("64m")
				if v.EmptyDir.SizeLimit != nil {
					f.ShmSize = ptr(strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10))
				}
				continue
			}
		case v.PersistentVolumeClaim != nil:
			m.Type = "tmpfs"
			p.warnf("%s: volume %s: PersistentVolumeClaim %s: an empty tmpfs here (nothing kept)", where, v.Name, v.PersistentVolumeClaim.ClaimName)
		default:
			p.warnf("%s: volume %s: only emptyDir, hostPath and persistentVolumeClaim are played: left out", where, v.Name)
			continue
		}
		f.Mounts = append(f.Mounts, m)
	}
	name := pod + "-" + c.Name
	return &runtime.RunOptions{Target: c.Image, Args: slices.Concat(c.Args), Flags: f, Name: name,
		Host: profiles.HostEnv{Cwd: p.Dir}}, nil
}

// Play runs the plan: each Pod's init containers in order, each to
// completion, then its containers (detached, sharing the first one's
// network namespace); a Job's one container runs in the foreground and its
// exit status is reported and returned. Every run is runtime.Run, the
// lifecycle of `sbxrun run`.
func Play(ctx context.Context, g runtime.Global, p *Plan, stdout, stderr io.Writer) error {
	for _, w := range p.Warnings {
		fmt.Fprintln(stderr, "sbxrun: warning: "+w)
	}
	for _, pod := range p.Pods {
		for _, ro := range pod.Init {
			ro.Global, ro.Remove, ro.Stdin, ro.Stdout, ro.Stderr = g, true, strings.NewReader(""), stdout, stderr
			if err := runtime.Run(ctx, ro); err != nil {
				return reported(stderr, fmt.Sprintf("pod %s: init container %s", pod.Name, ro.Name), err)
			}
		}
		for _, ro := range pod.Containers {
			ro.Global, ro.Stdin, ro.Stdout, ro.Stderr = g, strings.NewReader(""), stdout, stderr
			if pod.Kind == "Job" {
				err := runtime.Run(ctx, ro)
				if code := runtime.ExitCode(err); code == 0 {
					fmt.Fprintf(stderr, "sbxrun: job %s: succeeded\n", pod.Name)
				} else {
					return reported(stderr, "job "+pod.Name, err)
				}
				continue
			}
			ro.Detach = true // prints the sandbox's name, as run -d does
			if err := runtime.Run(ctx, ro); err != nil {
				return err
			}
		}
	}
	return nil
}

// reported prints "what: failed, exit status N" for a workload's own exit
// and returns err (the status to exit with); sbxrun's own failures name
// themselves.
func reported(stderr io.Writer, what string, err error) error {
	var ee *runtime.ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		fmt.Fprintf(stderr, "sbxrun: %s: failed, exit status %d\n", what, ee.Code)
	}
	return err
}

// Down removes the sandboxes `kube play` created from the manifest at file
// (by their LabelFile), running or not, and returns their names.
func Down(ctx context.Context, g runtime.Global, file string) ([]string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	list, err := runtime.List(ctx, &g, true)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range list {
		if s.Labels[LabelFile] == abs {
			names = append(names, s.Name)
		}
	}
	return names, runtime.Remove(ctx, &g, names, true)
}
