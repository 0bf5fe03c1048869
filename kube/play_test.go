package kube

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeManifest(t *testing.T, data string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, filepath.Join(dir, "trust.json")
}

func TestLoadPlan(t *testing.T) {
	file, trust := writeManifest(t, `apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {HF_TOKEN: hf_x}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      securityContext: {runAsUser: 1000, runAsGroup: 1000}
      initContainers:
      - {name: migrate, image: example.com/api:1, command: [migrate], args: [--up]}
      containers:
      - name: app
        image: example.com/api:1
        args: [serve]
        workingDir: /srv
        env:
        - {name: MODE, value: prod}
        - name: HF_TOKEN
          valueFrom: {secretKeyRef: {name: creds, key: HF_TOKEN}}
        resources: {limits: {memory: 512Mi, cpu: 500m}}
        securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: shm, mountPath: /dev/shm}, {name: scratch, mountPath: /scratch}]
      - {name: sidecar, image: example.com/proxy:1}
      volumes:
      - {name: shm, emptyDir: {medium: Memory, sizeLimit: 1Gi}}
      - {name: scratch, emptyDir: {}}
`)
	p, err := Load(file, trust)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pods) != 1 || p.Pods[0].Kind != "Deployment" || len(p.Pods[0].Init) != 1 || len(p.Pods[0].Containers) != 2 {
		t.Fatalf("plan %+v", p.Pods)
	}
	init, app, side := p.Pods[0].Init[0], p.Pods[0].Containers[0], p.Pods[0].Containers[1]
	if !init.Remove || init.Name != "api-migrate" || strings.Join(init.Flags.Entrypoint, " ") != "migrate" || strings.Join(init.Args, " ") != "--up" {
		t.Errorf("init %+v %+v", init, init.Flags)
	}
	f := app.Flags
	if app.Target != "example.com/api:1" || strings.Join(app.Args, " ") != "serve" || *f.Workdir != "/srv" || *f.User != "1000:1000" ||
		f.Env["MODE"] != "prod" || f.Env["HF_TOKEN"] != "hf_x" || *f.Memory != "536870912" || *f.CPUs != 0.5 || !*f.ReadOnly ||
		!slices.Equal(f.CapDrop, []string{"ALL"}) || *f.ShmSize != "1073741824" || len(f.Mounts) != 1 || f.Mounts[0].Type != "tmpfs" ||
		f.Labels[LabelFile] != file || f.Labels[LabelPod] != "api" || f.Network != nil {
		t.Errorf("app %+v, flags %+v", app, f)
	}
	if side.Flags.Network == nil || *side.Flags.Network != "container:api-app" {
		t.Errorf("the sidecar does not join the first container's network: %v", side.Flags.Network)
	}
	all := strings.Join(p.Warnings, "\n")
	for _, w := range []string{"replicas 3", "Secret creds: not run", "restartPolicy Always"} {
		if !strings.Contains(all, w) {
			t.Errorf("no warning %q in:\n%s", w, all)
		}
	}
}

func TestLoadRefusals(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"not yaml of a known shape", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, bogus: 1}]}\n", "bogus"},
		{"nothing to play", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "no Pod, Deployment or Job"},
		{"missing secret", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}\n", "secret s key k"},
		{"job of two", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: a, image: i}, {name: b, image: i}]}}}\n", "one container"},
		{"hostPID", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {hostPID: true, containers: [{name: c, image: i}]}\n", "hostPID is not allowed from an untrusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, trust := writeManifest(t, tc.data)
			_, err := Load(file, trust)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line naming %q", err, tc.want)
			}
		})
	}
}
