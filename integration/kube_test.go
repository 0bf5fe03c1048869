package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sbxrun/sbxrun/kube"
)

// TestKubeGenerate applies everything `sbxrun kube generate` writes to a
// real kube-apiserver (v1.37.2, with etcd, no nodes) with a server-side dry
// run and strict field validation, into namespaces whose Pod Security
// admission enforces (and warns at) the level each manifest claims.
func TestKubeGenerate(t *testing.T) {
	useNamespace(t, false)
	api := startAPIServer(t)
	for _, level := range []string{"restricted", "baseline", "privileged"} {
		api.createNamespace(t, "psa-"+level, level)
	}

	user := []string{"-u", "1000:1000"}
	cases := []struct {
		name  string
		args  []string
		level string
		kinds string
	}{
		{"base-workspace-pinned", append(append([]string{"--name", "base", "--pin"}, user...), "base", "--", "make", "test"), "restricted", "PersistentVolumeClaim,Pod"},
		{"model-dev-device-plugin", append(append([]string{"--name", "ollama"}, user...), "-e", "HOME=/home/dev", "model-dev", "--gpus", "2", "--memory", "32g", "--", "ollama", "serve"), "restricted",
			"PersistentVolumeClaim,PersistentVolumeClaim,PersistentVolumeClaim,PersistentVolumeClaim,Pod"},
		{"model-dev-dra", append(append([]string{"--name", "ollama-dra", "--gpu-api", "dra"}, user...), "-e", "HOME=/home/dev", "model-dev", "--gpus", "2", "--memory", "32g", "--", "ollama", "serve"), "restricted",
			"ResourceClaimTemplate,PersistentVolumeClaim,PersistentVolumeClaim,PersistentVolumeClaim,PersistentVolumeClaim,Pod"},
		{"job-secrets", append(append([]string{"--kind", "job", "--name", "train", "--volumes", "emptydir"}, user...), "--memory", "512m", "--cpus", "1.5",
			"-e", "HF_TOKEN=hf_abcdefghijklmnopqrstu", "-e", "DB_PASSWORD=hunter2", "-e", "MODE=batch", "base", "--", "python3", "train.py"), "restricted", "Secret,Job"},
		{"deployment-service", append(append([]string{"--kind", "deployment", "--service", "--name", "web"}, user...), "-p", "8000:8000", "-p", "9000/udp",
			"--shm-size", "256m", "--read-only", "base", "--", "python3", "-m", "http.server"), "restricted", "PersistentVolumeClaim,Deployment,Service"},
		// The base test image runs as root: baseline admits that, and keeps
		// the sandbox's capabilities.
		{"baseline-root", []string{"--pod-security", "baseline", "--name", "rooted", "base", "--", "sh"}, "baseline", "PersistentVolumeClaim,Pod"},
		// A capability beyond baseline's, asked for explicitly, is kept:
		// the Pod needs the privileged level, and the output says so.
		{"baseline-cap-add", []string{"--pod-security", "baseline", "--name", "traced", "base", "--cap-add", "SYS_PTRACE", "--", "sh"}, "privileged", "PersistentVolumeClaim,Pod"},
		// A hostPath of the node is the privileged level, as the output says.
		{"hostpath", append(append([]string{"--volumes", "hostpath", "--name", "hp"}, user...), "base", "--", "ls"), "privileged", "Pod"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := "psa-" + tc.level
			args := append([]string{"kube", "generate", "--namespace", ns}, tc.args...)
			stdout, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("sbxrun %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
			}
			if want := "Pod Security level: " + tc.level + " "; !strings.Contains(stdout, want) {
				t.Errorf("manifest does not say %q:\n%s", want, stdout)
			}
			if strings.Contains(tc.name, "pinned") && !strings.Contains(stdout, "image: "+baseRef+"@sha256:") {
				t.Errorf("--pin did not write the image by its digest:\n%s", stdout)
			}
			if tc.level == "privileged" && !strings.Contains(stderr, "needs a namespace at the privileged Pod Security level") {
				t.Errorf("no line says the Pod needs the privileged level:\n%s", stderr)
			}
			if !strings.Contains(stderr, "sbxrun: volume /workspace") {
				t.Errorf("no line says what the workspace became:\n%s", stderr)
			}
			objs, err := kube.Decode([]byte(stdout))
			if err != nil {
				t.Fatalf("decoding strictly: %v\n%s", err, stdout)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
			}
			if got := strings.Join(kinds, ","); got != tc.kinds {
				t.Errorf("objects %s, want %s", got, tc.kinds)
			}
			for _, doc := range documents(stdout) {
				api.dryRun(t, ns, doc, true)
			}
			if strings.Contains(stdout, "HF_TOKEN: hf_") && strings.Contains(stdout, "value: hf_") {
				t.Errorf("a credential is inline in the container's env:\n%s", stdout)
			}
		})
	}

	t.Run("restricted namespace refuses baseline", func(t *testing.T) {
		// The check above means something only if the server enforces:
		// the baseline Pod (root, SYS_PTRACE) must be refused at restricted.
		stdout, stderr, code := run(t, "kube", "generate", "--namespace", "psa-restricted", "--pod-security", "baseline", "--name", "rooted", "base", "--cap-add", "SYS_PTRACE", "--", "sh")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var refused bool
		for _, doc := range documents(stdout) {
			if strings.Contains(doc, "kind: Pod") {
				status, body := api.post(t, "psa-restricted", doc)
				refused = status == http.StatusForbidden && strings.Contains(body, "PodSecurity")
				if !refused {
					t.Errorf("a root Pod with SYS_PTRACE got %d from a restricted namespace, want 403 naming PodSecurity: %s", status, body)
				}
			}
		}
	})

	t.Run("compose", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(fmt.Sprintf(`
services:
  web:
    image: %[1]s
    pull_policy: never
    user: "1000:1000"
    command: ["python3", "-m", "http.server", "8000"]
    ports: ["8000:8000"]
    volumes: ["data:/data"]
    depends_on: [db]
    environment:
      DB_PASSWORD: hunter2
  db:
    image: %[1]s
    pull_policy: never
    user: "1000:1000"
    command: ["sleep", "600"]
    expose: ["5432"]
    volumes: ["data:/var/lib/db"]
volumes:
  data: {}
`, baseRef)), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := runWith(t, opts{dir: dir}, "kube", "generate", "--compose", "--project-name", "kc", "--namespace", "psa-restricted")
		if code != 0 {
			t.Fatalf("kube generate --compose: exit %d\n%s", code, stderr)
		}
		objs, err := kube.Decode([]byte(stdout))
		if err != nil {
			t.Fatalf("decoding strictly: %v\n%s", err, stdout)
		}
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
		}
		// db first (web depends on it); the shared claim once, with db.
		if got, want := strings.Join(kinds, ","), "PersistentVolumeClaim,Deployment,Service,Secret,Deployment,Service"; got != want {
			t.Errorf("objects %s, want %s\n%s", got, want, stdout)
		}
		if n := strings.Count(stdout, "claimName: kc-data"); n != 2 {
			t.Errorf("%d Pods use claim kc-data, want both services'\n%s", n, stdout)
		}
		for _, want := range []string{"name: db\n", "port: 5432", "name: web\n", "port: 8000", "name: web-env"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("manifest lacks %q\n%s", want, stdout)
			}
		}
		if strings.Contains(stdout, "com.docker.compose") || strings.Contains(stdout, "value: hunter2") {
			t.Errorf("manifest carries the host project's labels or an inline credential:\n%s", stdout)
		}
		if !strings.Contains(stderr, `service "web": depends_on`) {
			t.Errorf("no line says depends_on is not written:\n%s", stderr)
		}
		for _, doc := range documents(stdout) {
			api.dryRun(t, "psa-restricted", doc, true)
		}

		out := t.TempDir()
		_, stderr, code = runWith(t, opts{dir: dir}, "kube", "generate", "--compose", "--project-name", "kc", "-o", out, "web")
		if code != 0 {
			t.Fatalf("kube generate --compose -o DIR web: exit %d\n%s", code, stderr)
		}
		for _, f := range []string{"db.yaml", "web.yaml"} { // web, and the db it depends on
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("-o DIR: %v", err)
			}
		}
		if fi, err := os.Stat(filepath.Join(out, "web.yaml")); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("web.yaml holds a Secret and is %v, want 0600", fi.Mode().Perm())
		}

		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"run option", []string{"--memory", "1g"}, "--memory"},
			{"unknown service", []string{"cache"}, `no service "cache"`},
			{"command", []string{"web", "--", "sh"}, "command:"},
			{"-p, --publish here", []string{"-p", "x"}, "--project-name"},
			{"unknown kind", []string{"--kind", "cronjob"}, "pod, job or deployment"},
		} {
			stdout, stderr, code := runWith(t, opts{dir: dir}, append([]string{"kube", "generate", "--compose", "--project-name", "kc"}, tc.args...)...)
			if code != 125 || stdout != "" || len(strings.Split(strings.TrimSpace(stderr), "\n")) != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want 125, nothing written and one line naming %q", tc.name, code, stdout, stderr, tc.want)
			}
		}

		// Two services with one Kubernetes name would overwrite each other.
		clash := t.TempDir()
		if err := os.WriteFile(filepath.Join(clash, "compose.yaml"), []byte(fmt.Sprintf("services:\n  web_app: {image: %[1]s, user: \"1000\"}\n  web-app: {image: %[1]s, user: \"1000\"}\n", baseRef)), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code = runWith(t, opts{dir: clash}, "kube", "generate", "--compose")
		if code != 125 || stdout != "" || !strings.Contains(stderr, `both become "web-app"`) {
			t.Errorf("services web_app and web-app: exit %d, stdout %q, stderr %q; want 125 naming the clash", code, stdout, stderr)
		}
		digit := t.TempDir()
		if err := os.WriteFile(filepath.Join(digit, "compose.yaml"), []byte(fmt.Sprintf("services:\n  2fa: {image: %s, user: \"1000\", ports: [\"80\"]}\n", baseRef)), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code = runWith(t, opts{dir: digit}, "kube", "generate", "--compose")
		if code != 125 || stdout != "" || !strings.Contains(stderr, "must start with a letter") {
			t.Errorf("service 2fa with ports: exit %d, stdout %q, stderr %q; want 125 saying Service names start with a letter", code, stdout, stderr)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"root image", []string{"base", "--", "sh"}, []string{"runs as root", "-u UID", "--pod-security baseline"}},
		{"uuid with the device plugin", []string{"-u", "1000", "base", "--gpus", "device=GPU-0f1e2d3c", "--", "sh"}, []string{"--gpu-api dra"}},
		{"unknown kind", []string{"--kind", "cronjob", "-u", "1000", "base"}, []string{"--kind", "pod, job or deployment"}},
		{"service without ports", []string{"--service", "-u", "1000", "base"}, []string{"-p PORT"}},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, append([]string{"kube", "generate"}, tc.args...)...)
			if code != 125 || stdout != "" {
				t.Fatalf("exit %d, stdout %q; want 125 and nothing written\n%s", code, stdout, stderr)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 {
				t.Errorf("want one line on stderr, got:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not name %q", stderr, w)
				}
			}
		})
	}
}

// documents splits a multi-document manifest.
func documents(manifest string) []string {
	var out []string
	for _, d := range strings.Split(manifest, "\n---\n") {
		if strings.Contains(d, "kind:") {
			out = append(out, d)
		}
	}
	return out
}

// apiServer is a kube-apiserver started by ../shared/tools/kube/apiserver.sh.
type apiServer struct {
	server, token string
	http          *http.Client
}

// startAPIServer starts the API server for t and stops it when t ends. It
// fails t, naming why, when the server cannot run here.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	script := os.Getenv("SBXRUN_KUBE_APISERVER")
	if script == "" {
		root, _ := filepath.Abs("..")
		script = filepath.Join(root, "..", "shared", "tools", "kube", "apiserver.sh")
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("the Kubernetes API server script is missing: %v: check out the shared tools beside the repository (../shared/tools/kube) or set SBXRUN_KUBE_APISERVER to apiserver.sh", err)
	}
	for _, tool := range []string{"curl", "openssl", "xz", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apiserver.sh needs it: run hack/deps.sh (make deps)", tool)
		}
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("apiserver.sh stop: %v\n%s", err, out)
		}
	})
	out, err := exec.CommandContext(ctx, script, "start", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("apiserver.sh start %s: %v\n%s", dir, err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatalf("apiserver.sh wrote no kubeconfig: %v\n%s", err, out)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil || len(cfg.Clusters) == 0 || len(cfg.Users) == 0 {
		t.Fatalf("reading the kubeconfig: %v\n%s", err, data)
	}
	return &apiServer{
		server: cfg.Clusters[0].Cluster.Server, token: cfg.Users[0].User.Token,
		// The server's certificate is self-signed on loopback (the
		// kubeconfig says insecure-skip-tls-verify).
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
}

func (a *apiServer) do(t *testing.T, method, path, contentType string, body []byte) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, a.server+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// createNamespace creates ns with Pod Security admission enforcing and
// warning at level.
func (a *apiServer) createNamespace(t *testing.T, ns, level string) {
	t.Helper()
	labels := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		labels["pod-security.kubernetes.io/"+mode] = level
		labels["pod-security.kubernetes.io/"+mode+"-version"] = "latest"
	}
	body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns, "labels": labels}})
	if status, resp, _ := a.do(t, http.MethodPost, "/api/v1/namespaces", "application/json", body); status != http.StatusCreated {
		t.Fatalf("creating namespace %s: %d %s", ns, status, resp)
	}
}

// resourcePaths are the collection paths of the kinds sbxrun writes.
var resourcePaths = map[string]string{
	"v1/Pod":                   "/api/v1/namespaces/%s/pods",
	"v1/Secret":                "/api/v1/namespaces/%s/secrets",
	"v1/PersistentVolumeClaim": "/api/v1/namespaces/%s/persistentvolumeclaims",
	"v1/Service":               "/api/v1/namespaces/%s/services",
	"batch/v1/Job":             "/apis/batch/v1/namespaces/%s/jobs",
	"apps/v1/Deployment":       "/apis/apps/v1/namespaces/%s/deployments",
	"resource.k8s.io/v1/ResourceClaimTemplate": "/apis/resource.k8s.io/v1/namespaces/%s/resourceclaimtemplates",
}

// post creates doc (YAML, as written) in ns with a server-side dry run and
// strict field validation.
func (a *apiServer) post(t *testing.T, ns, doc string) (int, string) {
	t.Helper()
	status, body, _ := a.postHeaders(t, ns, doc)
	return status, body
}

func (a *apiServer) postHeaders(t *testing.T, ns, doc string) (int, string, http.Header) {
	t.Helper()
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		t.Fatalf("reading the kind: %v\n%s", err, doc)
	}
	p, ok := resourcePaths[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		t.Fatalf("no path for %s %s", tm.APIVersion, tm.Kind)
	}
	return a.do(t, http.MethodPost, fmt.Sprintf(p, ns)+"?dryRun=All&fieldValidation=Strict", "application/yaml", []byte(doc))
}

// dryRun posts doc and wants it accepted without a warning (a Pod
// Security warning is how the server judges a Deployment's or Job's Pod
// template).
func (a *apiServer) dryRun(t *testing.T, ns, doc string, noWarnings bool) {
	t.Helper()
	status, body, h := a.postHeaders(t, ns, doc)
	if status != http.StatusCreated {
		t.Errorf("dry run into %s: %d %s\n%s", ns, status, body, doc)
		return
	}
	if w := h.Values("Warning"); noWarnings && len(w) > 0 {
		t.Errorf("dry run into %s warned: %q\n%s", ns, w, doc)
	}
}

// playPod is a Pod of two containers sharing a network namespace (a
// server and a client that reaches it on localhost), after an init
// container that must have run first.
const playPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  initContainers:
  - name: prep
    image: ghcr.io/sbxrun/base:latest
    imagePullPolicy: Never
    command: [sh, -c, "echo init-ran"]
  containers:
  - name: server
    image: ghcr.io/sbxrun/base:latest
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /tmp/www && echo hello-from-server > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
  - name: client
    image: ghcr.io/sbxrun/base:latest
    imagePullPolicy: Never
    command: [sh, -c, "for i in $(seq 100); do b=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8080 | sed '1,/^\\r*$/d'); [ -n \"$b\" ] && echo \"client got $b\" && exec sleep 600; sleep 0.1; done; echo no answer; exit 1"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 8080}]
`

// playJob is a Job that exits 3.
const playJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: fails
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: ghcr.io/sbxrun/base:latest
        imagePullPolicy: Never
        command: [sh, -c, "echo job-ran; exit 3"]
`

// TestKubePlay runs manifests locally with `sbxrun kube play` and removes
// them with `kube down`, leaving nothing: containers, snapshots, network
// namespaces, interfaces, firewall rules.
func TestKubePlay(t *testing.T) {
	useNamespace(t, false)
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The default network exists before the snapshot (the first bridge
	// run creates it).
	if _, stderr, code := run(t, "run", "--pull", "never", "base", "--", "true"); code != 0 {
		t.Fatalf("warm-up run: exit %d: %s", code, stderr)
	}
	before := snapshotNet(t)

	t.Run("pod", func(t *testing.T) {
		pod := write("pod.yaml", playPod)
		stdout, stderr, code := runWith(t, opts{dir: dir}, "kube", "play", pod)
		if code != 0 {
			t.Fatalf("kube play: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "init-ran") || !strings.Contains(stdout, "web-server\nweb-client") {
			t.Errorf("init container output, then the two sandboxes, expected:\n%s", stdout)
		}
		if !strings.Contains(stderr, "Service web: not run") {
			t.Errorf("no warning for the Service:\n%s", stderr)
		}
		var logs string
		waitFor(30*time.Second, func() bool {
			logs, _, _ = run(t, "logs", "web-client")
			return strings.Contains(logs, "client got hello-from-server") || strings.Contains(logs, "no answer")
		})
		t.Logf("kube play: %s\nclient's log: %s", stdout, logs)
		if !strings.Contains(logs, "client got hello-from-server") {
			t.Errorf("the client did not reach the server on localhost: %q", logs)
		}
		stdout, stderr, code = runWith(t, opts{dir: dir}, "kube", "down", pod)
		if code != 0 || !strings.Contains(stdout, "web-server") || !strings.Contains(stdout, "web-client") {
			t.Errorf("kube down: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if entries := ps(t); len(entries) > 0 {
			t.Errorf("left after kube down: %+v", entries)
		}
	})

	t.Run("job exits 3", func(t *testing.T) {
		job := write("job.yaml", playJob)
		stdout, stderr, code := runWith(t, opts{dir: dir}, "kube", "play", job)
		t.Logf("kube play of the job: exit %d\n%s%s", code, stdout, stderr)
		if code != 3 || !strings.Contains(stdout, "job-ran") || !strings.Contains(stderr, "job fails: failed, exit status 3") {
			t.Errorf("kube play of a Job exiting 3: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if stdout, stderr, code := runWith(t, opts{dir: dir}, "kube", "down", job); code != 0 || strings.TrimSpace(stdout) != "fails-main" {
			t.Errorf("kube down: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})

	for _, tc := range []struct{ name, spec, want string }{
		{"privileged", "containers: [{name: c, image: ghcr.io/sbxrun/base:latest, securityContext: {privileged: true}}]", "privileged"},
		{"capabilities", "containers: [{name: c, image: ghcr.io/sbxrun/base:latest, securityContext: {capabilities: {add: [NET_ADMIN]}}}]", "capabilities.add NET_ADMIN"},
		{"host network", "hostNetwork: true\n  containers: [{name: c, image: ghcr.io/sbxrun/base:latest}]", "hostNetwork"},
		{"hostPath outside", "containers: [{name: c, image: ghcr.io/sbxrun/base:latest, volumeMounts: [{name: etc, mountPath: /h}]}]\n  volumes: [{name: etc, hostPath: {path: /etc}}]", `hostPath "/etc"`},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			file := write(sanitize(tc.name)+".yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  "+tc.spec+"\n")
			stdout, stderr, code := runWith(t, opts{dir: dir}, "kube", "play", file)
			if code != 125 || stdout != "" || len(strings.Split(strings.TrimSpace(stderr), "\n")) != 1 {
				t.Fatalf("exit %d, want 125 with one line\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			for _, w := range []string{tc.want, "untrusted", "sbxrun trust " + file} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not name %q", stderr, w)
				}
			}
			if entries := ps(t); len(entries) > 0 {
				t.Errorf("a refused manifest created %+v", entries)
			}
		})
	}

	t.Run("trusted", func(t *testing.T) {
		// Once trusted, the same file's capability is granted.
		file := write("trusted.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: granted}\nspec:\n  containers: [{name: c, image: ghcr.io/sbxrun/base:latest, imagePullPolicy: Never, command: [sleep, '600'], securityContext: {capabilities: {add: [NET_ADMIN]}}}]\n")
		if _, stderr, code := runWith(t, opts{dir: dir, env: []string{"SBXRUN_TRUST_FILE=" + filepath.Join(dir, "trust.json")}}, "trust", file); code != 0 {
			t.Fatalf("sbxrun trust %s: exit %d: %s", file, code, stderr)
		}
		env := opts{dir: dir, env: []string{"SBXRUN_TRUST_FILE=" + filepath.Join(dir, "trust.json")}}
		if stdout, stderr, code := runWith(t, env, "kube", "play", file); code != 0 {
			t.Fatalf("kube play of a trusted file: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if _, stderr, code := runWith(t, env, "kube", "down", file); code != 0 {
			t.Errorf("kube down: exit %d: %s", code, stderr)
		}
		// Revoked, the file is refused again.
		if stdout, stderr, code := runWith(t, env, "trust", "--revoke", file); code != 0 || !strings.Contains(stdout+stderr, file) {
			t.Errorf("sbxrun trust --revoke %s: exit %d\nstdout: %s\nstderr: %s", file, code, stdout, stderr)
		}
		if _, stderr, code := runWith(t, env, "kube", "play", file); code != 125 || !strings.Contains(stderr, "capabilities.add NET_ADMIN") {
			t.Errorf("kube play after trust --revoke: exit %d: %s", code, stderr)
		}
	})

	assertNetSame(t, "after kube down", before)
}

// TestKubeRoundTrip: `kube generate` then `kube play` of the result gives
// the sandbox `sbxrun run` would, key by key: the OCI spec the played
// sandbox runs with against `sbxrun spec` of the same flags.
func TestKubeRoundTrip(t *testing.T) {
	useNamespace(t, false)
	dir := t.TempDir()
	flags := []string{"-u", "1000:1000", "--memory", "256m", "--cpus", "0.5", "-e", "MODE=roundtrip", "--read-only",
		"--cap-drop", "CHOWN", "--stop-timeout", "20", "base", "--", "sleep", "600"}
	manifest := filepath.Join(dir, "rt.yaml")
	// baseline keeps the sandbox's capabilities; hostpath its workspace.
	gen := append([]string{"kube", "generate", "--pod-security", "baseline", "--volumes", "hostpath", "--name", "rt", "-o", manifest}, flags...)
	if _, stderr, code := runWith(t, opts{dir: dir}, gen...); code != 0 {
		t.Fatalf("kube generate: exit %d: %s", code, stderr)
	}
	want, stderr, code := runWith(t, opts{dir: dir}, append([]string{"spec", "--pull", "never", "--name", "rt-rt"}, flags...)...)
	if code != 0 {
		t.Fatalf("sbxrun spec: exit %d: %s", code, stderr)
	}
	if stdout, stderr, code := runWith(t, opts{dir: dir}, "kube", "play", manifest); code != 0 {
		t.Fatalf("kube play: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	t.Cleanup(func() { runWith(t, opts{dir: dir}, "kube", "down", manifest) })
	out, stderr, code := run(t, "inspect", "rt-rt")
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	var inspected []struct{ Spec json.RawMessage }
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("inspect output: %v\n%s", err, out)
	}
	type spec struct {
		Process struct {
			Args            []string
			Env             []string
			Cwd             string
			User            struct{ UID, GID uint32 }
			NoNewPrivileges bool
			Capabilities    struct{ Bounding, Effective, Permitted []string }
		}
		Root     struct{ Readonly bool }
		Hostname string
		Mounts   []struct{ Destination, Type string }
		Linux    struct {
			Resources struct {
				Memory *struct{ Limit *int64 }
				CPU    *struct {
					Quota  *int64
					Period *uint64
				}
			}
			Seccomp *struct{ DefaultAction string }
		}
	}
	var a, b spec
	if err := json.Unmarshal([]byte(want), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(inspected[0].Spec, &b); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.MarshalIndent(a, "", "  ")
	jb, _ := json.MarshalIndent(b, "", "  ")
	t.Logf("compared:\n%s", ja)
	if len(a.Process.Args) == 0 || a.Linux.Resources.Memory == nil || len(a.Process.Capabilities.Bounding) == 0 {
		t.Fatalf("the spec did not decode: %s", ja)
	}
	if string(ja) != string(jb) {
		t.Errorf("the played sandbox differs from `sbxrun spec` of the same flags\nspec:\n%s\nplayed:\n%s", ja, jb)
	}
}
