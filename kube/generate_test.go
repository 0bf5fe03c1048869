package kube

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sandboxImage is what the sandbox images' config says: a non-root user.
func sandboxImage(context.Context, string) (*ocispec.ImageConfig, string, error) {
	return &ocispec.ImageConfig{User: "1000:1000", Env: []string{"HOME=/home/dev"}},
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", nil
}

func rootImage(context.Context, string) (*ocispec.ImageConfig, string, error) {
	return &ocispec.ImageConfig{}, "", nil
}

// resolve resolves target with flags as `sbxrun run` would, with no
// profile file but the built-ins, in a project directory of its own.
func resolve(t *testing.T, target string, flags *profiles.Profile, publish []string, args []string, lookup runtime.ImageLookup) *runtime.Resolved {
	t.Helper()
	dir := t.TempDir()
	none := filepath.Join(dir, "none.yaml")
	o := &runtime.RunOptions{
		Target: target, Flags: flags, Publish: publish, Args: args, Name: "sbx",
		Load:   profiles.LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none, TrustFile: filepath.Join(dir, "trust.json")},
		Host:   profiles.HostEnv{Home: filepath.Join(dir, "home"), Cwd: dir},
		Stderr: &bytes.Buffer{},
	}
	r, err := runtime.Resolve(context.Background(), o, lookup)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return r
}

func ptrTo[T any](v T) *T { return &v }

func TestGenerateGolden(t *testing.T) {
	cases := []struct {
		name    string
		target  string
		flags   *profiles.Profile
		publish []string
		args    []string
		o       Options
		level   api.Level
		// kinds are the objects expected, in order.
		kinds []string
	}{
		{
			name: "base-workspace", target: "base", args: []string{"make", "test"},
			o: Options{Name: "base"}, level: api.LevelRestricted,
			kinds: []string{"PersistentVolumeClaim", "Pod"},
		},
		{
			name: "model-dev-gpus-device-plugin", target: "model-dev", args: []string{"ollama", "serve"},
			flags: &profiles.Profile{GPUs: ptrTo("2"), Memory: ptrTo("32g")},
			o:     Options{Name: "ollama"}, level: api.LevelRestricted,
			kinds: []string{"PersistentVolumeClaim", "PersistentVolumeClaim", "PersistentVolumeClaim", "PersistentVolumeClaim", "Pod"},
		},
		{
			name: "model-dev-gpus-dra", target: "model-dev", args: []string{"ollama", "serve"},
			flags: &profiles.Profile{GPUs: ptrTo("2"), Memory: ptrTo("32g")},
			o:     Options{Name: "ollama", GPUAPI: GPUDRA, Volumes: VolumesEmptyDir}, level: api.LevelRestricted,
			kinds: []string{"ResourceClaimTemplate", "Pod"},
		},
		{
			name: "job-memory-secrets", target: "base", args: []string{"python3", "train.py"},
			flags: &profiles.Profile{Memory: ptrTo("512m"), CPUs: ptrTo(1.5),
				Env: map[string]string{"HF_TOKEN": "hf_abcdefghijklmnop", "DB_PASSWORD": "hunter2", "MODE": "batch"}},
			o: Options{Name: "train", Kind: KindJob, Namespace: "ml", Volumes: VolumesEmptyDir}, level: api.LevelRestricted,
			kinds: []string{"Secret", "Job"},
		},
		{
			name: "deployment-service", target: "base", args: []string{"python3", "-m", "http.server", "8000"},
			publish: []string{"8000:8000", "9000/udp"},
			flags:   &profiles.Profile{StopTimeout: ptrTo(30)},
			o:       Options{Name: "web", Kind: KindDeployment, Service: true, PodSecurity: LevelBaseline}, level: api.LevelBaseline,
			kinds: []string{"PersistentVolumeClaim", "Deployment", "Service"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := resolve(t, tc.target, tc.flags, tc.publish, tc.args, sandboxImage)
			m, err := Generate(r, tc.o)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got := len(m.Volumes); got != len(r.Mounts)+boolInt(r.Sandbox.ShmSize > 0) {
				t.Errorf("%d volume lines for %d mounts: %q", got, len(r.Mounts), m.Volumes)
			}
			var b bytes.Buffer
			if err := Write(&b, m); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./kube -update to write it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("%s differs from the generated manifest (go test ./kube -update rewrites it):\n%s", golden, b.String())
			}
			objs, err := Decode(want)
			if err != nil {
				t.Fatalf("decoding %s strictly: %v", golden, err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
				spec := PodSpecOf(o)
				if spec == nil {
					continue
				}
				if l := evaluate(spec, tc.level); l != "" {
					t.Errorf("%s is not admitted at %s: %s", golden, tc.level, l)
				}
				if tc.level == api.LevelBaseline {
					continue
				}
				// restricted promises: the checks the issue names, spelt out.
				sc := spec.Containers[0].SecurityContext
				if spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
					len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 1 {
					t.Errorf("%s: security context is not the restricted one: %+v %+v", golden, spec.SecurityContext, sc)
				}
			}
			if strings.Join(kinds, ",") != strings.Join(tc.kinds, ",") {
				t.Errorf("objects %v, want %v", kinds, tc.kinds)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// evaluate is "" when the Pod Security admission policy admits spec at
// level, else the reasons.
func evaluate(spec *corev1.PodSpec, level api.Level) string {
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return err.Error()
	}
	res := policy.AggregateCheckResults(ev.EvaluatePod(api.LevelVersion{Level: level, Version: api.LatestVersion()}, &metav1.ObjectMeta{}, spec))
	if res.Allowed {
		return ""
	}
	return res.ForbiddenReason() + ": " + res.ForbiddenDetail()
}

func TestGenerateContent(t *testing.T) {
	r := resolve(t, "model-dev", &profiles.Profile{GPUs: ptrTo("2"), Memory: ptrTo("32g")}, nil, []string{"ollama", "serve"}, sandboxImage)
	m, err := Generate(r, Options{Name: "ollama"})
	if err != nil {
		t.Fatal(err)
	}
	pod := m.Workload.(*corev1.Pod)
	c := pod.Spec.Containers[0]
	if q := c.Resources.Limits[GPUResource]; q.Value() != 2 {
		t.Errorf("nvidia.com/gpu = %s, want 2", q.String())
	}
	if q := c.Resources.Limits[corev1.ResourceMemory]; q.String() != "32Gi" {
		t.Errorf("memory = %s, want 32Gi", q.String())
	}
	var shm *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == "dshm" {
			shm = &pod.Spec.Volumes[i]
		}
	}
	if shm == nil || shm.EmptyDir == nil || shm.EmptyDir.Medium != corev1.StorageMediumMemory || shm.EmptyDir.SizeLimit.String() != "2Gi" {
		t.Errorf("/dev/shm volume = %+v, want a 2Gi memory emptyDir", shm)
	}
	if c.WorkingDir != "/workspace/models" || strings.Join(c.Args, " ") != "ollama serve" || c.Image != "ghcr.io/sbxrun/model-dev:latest" {
		t.Errorf("container = %+v", c)
	}
	for _, vm := range c.VolumeMounts {
		if strings.Contains(vm.MountPath, profiles.HomeMarker) {
			t.Errorf("mount path %q keeps the home placeholder", vm.MountPath)
		}
	}
}

func TestGenerateRefusals(t *testing.T) {
	cases := []struct {
		name   string
		flags  *profiles.Profile
		lookup runtime.ImageLookup
		o      Options
		want   []string
	}{
		{"uuid with the device plugin", &profiles.Profile{GPUs: ptrTo("device=GPU-0f1e2d3c")}, sandboxImage, Options{}, []string{"--gpu-api dra"}},
		{"root image", nil, rootImage, Options{}, []string{"-u UID", "--pod-security baseline"}},
		{"bad kind", nil, sandboxImage, Options{Kind: "cronjob"}, []string{"pod, job or deployment"}},
		{"bad volumes", nil, sandboxImage, Options{Volumes: "nfs"}, []string{"pvc, hostpath or emptydir"}},
		{"service without ports", nil, sandboxImage, Options{Service: true}, []string{"-p PORT"}},
		{"bad name", nil, sandboxImage, Options{Name: "My_App"}, []string{"--name"}},
		{"pin without digest", nil, rootImage, Options{Pin: true, PodSecurity: LevelBaseline}, []string{"sbxrun pull"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := resolve(t, "base", tc.flags, nil, nil, tc.lookup)
			_, err := Generate(r, tc.o)
			if !errors.Is(err, ErrBadOptions) {
				t.Fatalf("err = %v, want ErrBadOptions", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestGenerateWarnings(t *testing.T) {
	r := resolve(t, "base", &profiles.Profile{PidsLimit: ptrTo(int64(100)), MemorySwap: ptrTo("2g"), Memory: ptrTo("1g"),
		CapAdd: []string{"SYS_PTRACE"}, StopSignal: ptrTo("SIGINT")}, nil, nil, sandboxImage)
	m, err := Generate(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(m.Warnings, "\n")
	for _, key := range []string{"pids_limit", "memory_swap", "cap_add SYS_PTRACE", "stop_signal SIGINT"} {
		if !strings.Contains(all, key) {
			t.Errorf("no warning for %s in:\n%s", key, all)
		}
	}
}

// TestGenerateComposeParts: what `kube generate --compose` adds: a named
// volume's directory becomes its shared claim whatever the volume rule,
// expose: ports join the published ones (each once) in the container and
// the Service, and DropSeen writes a shared claim once.
func TestGenerateComposeParts(t *testing.T) {
	vol := t.TempDir()
	flags := &profiles.Profile{Mounts: []profiles.MountSpec{{Type: "bind", Source: vol, Target: "/var/lib/db", Create: true}}}
	gen := func(name string) *Manifest {
		r := resolve(t, "base", flags, []string{"8000:8000"}, nil, sandboxImage)
		m, err := Generate(r, Options{Name: name, Kind: KindDeployment, Service: true, Volumes: VolumesEmptyDir,
			Claims: map[string]string{vol: "proj-data"}, Expose: []string{"8000", "5432", "9000-9001/udp"}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := gen("db")
	var claims []string
	var svc *corev1.Service
	for _, o := range m.Objects {
		switch o := o.(type) {
		case *corev1.PersistentVolumeClaim:
			claims = append(claims, o.Name)
		case *corev1.Service:
			svc = o
		}
	}
	if !slices.Contains(claims, "proj-data") {
		t.Errorf("claims %q, want proj-data for the named volume", claims)
	}
	spec := m.Workload.(*appsv1.Deployment).Spec.Template.Spec
	var used bool
	for _, v := range spec.Volumes {
		used = used || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "proj-data")
	}
	if !used {
		t.Errorf("no volume of the Pod uses claim proj-data: %+v", spec.Volumes)
	}
	var ports []string
	for _, p := range spec.Containers[0].Ports {
		ports = append(ports, fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol))
	}
	if got := strings.Join(ports, ","); got != "8000/TCP,5432/TCP,9000/UDP,9001/UDP" {
		t.Errorf("container ports %s, want 8000/TCP,5432/TCP,9000/UDP,9001/UDP", got)
	}
	if svc == nil || len(svc.Spec.Ports) != 4 {
		t.Errorf("Service %+v, want the 4 ports", svc)
	}

	seen, shared := map[string]bool{}, map[string]bool{"PersistentVolumeClaim/proj-data": true}
	m.DropSeen(seen, shared)
	other := gen("db") // the same names: only the shared claim goes
	n := len(other.Objects)
	other.DropSeen(seen, shared)
	if len(other.Objects) != n-1 {
		t.Errorf("DropSeen kept %d of %d objects, want the shared claim dropped", len(other.Objects), n)
	}
	for _, o := range other.Objects {
		if c, ok := o.(*corev1.PersistentVolumeClaim); ok && c.Name == "proj-data" {
			t.Errorf("the shared claim is written twice")
		}
	}

	r := resolve(t, "base", nil, nil, nil, sandboxImage)
	for _, bad := range []string{"http", "0", "70000", "9001-9000", "80/sctp"} {
		if _, err := Generate(r, Options{Expose: []string{bad}}); !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), bad) {
			t.Errorf("expose %q: err = %v, want ErrBadOptions naming it", bad, err)
		}
	}
}
