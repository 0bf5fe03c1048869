package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// composeProject is a project directory with a compose.yaml, run as
// project name under t's namespace.
type composeProject struct {
	t    *testing.T
	dir  string
	name string
	env  []string
}

func newComposeProject(t *testing.T, name, yaml string) *composeProject {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return &composeProject{t: t, dir: dir, name: name}
}

// run runs `sbxrun compose -p NAME args...` in the project directory.
func (p *composeProject) run(args ...string) (stdout, stderr string, code int) {
	p.t.Helper()
	return runWith(p.t, opts{dir: p.dir, env: p.env, timeout: 2 * time.Minute}, append([]string{"compose", "-p", p.name}, args...)...)
}

// mustRun is run, failing t on a non-zero exit.
func (p *composeProject) mustRun(args ...string) (stdout, stderr string) {
	p.t.Helper()
	stdout, stderr, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("sbxrun compose %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

// composePs is one row of `compose ps --format json`.
type composePs struct {
	Name, Service, State, Health, Publishers string
	ExitCode                                 *int
}

func (p *composeProject) ps() []composePs {
	p.t.Helper()
	stdout, _ := p.mustRun("ps", "--format", "json")
	var rows []composePs
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		p.t.Fatalf("compose ps --format json: %v\n%s", err, stdout)
	}
	return rows
}

// networkConf is the conflist path of network name.
func networkConf(name string) string {
	return filepath.Join(os.Getenv("SBXRUN_CNI_CONF_DIR"), name+".conflist")
}

// volumeDir is the host directory of named volume name.
func volumeDir(name string) string {
	return filepath.Join(os.Getenv("SBXRUN_STATE_DIR")+"-volumes", name)
}

// stateFiles lists the files under the sbxrun state directory that belong
// to namespace ns or to compose project name (not the shared lock files).
func stateFiles(t *testing.T, ns, project string) []string {
	t.Helper()
	var out []string
	root := os.Getenv("SBXRUN_STATE_DIR")
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.HasSuffix(p, ".lock") || fi.Name() == "lock" {
			return nil
		}
		if strings.Contains(p, "/"+ns+"/") || strings.Contains(p, project) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestComposeProject brings up a project of the shape users have (a dev
// service with the project at /workspace, a cache volume, a server with a
// healthcheck and a published port, a test service), checks what it gives
// and that down leaves the host as it was.
func TestComposeProject(t *testing.T) {
	ns := useNamespace(t, false)
	port := freeHostPort(t)
	p := newComposeProject(t, "cproj", fmt.Sprintf(`
services:
  server:
    image: %[1]s
    pull_policy: never
    command: ["sh", "-c", %[2]q]
    ports: ["%[3]d:8000"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8000/"]
      interval: 1s
      timeout: 3s
      retries: 30
  dev:
    image: %[1]s
    pull_policy: never
    command: ["sh", "-c", "echo dev-started $$GREETING; exec sleep 600"]
    working_dir: /workspace
    environment:
      GREETING: ${GREETING:-hi-from-env}
    volumes:
      - .:/workspace
      - cache:/cache
    depends_on:
      server: {condition: service_healthy}
  test:
    image: %[1]s
    pull_policy: never
    command: ["sleep", "600"]
    ulimits: {nofile: 1024}
volumes:
  cache: {}
`, baseRef, httpdScript("server"), port))
	if err := os.WriteFile(filepath.Join(p.dir, "marker.txt"), []byte("project file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshotNet(t)
	filesBefore := stateFiles(t, ns, p.name)

	t.Run("config", func(t *testing.T) {
		stdout, stderr := p.mustRun("config")
		for _, want := range []string{"name: cproj", "server:", "GREETING: hi-from-env", "cproj_default", "published: \"" + fmt.Sprint(port) + "\""} {
			if !strings.Contains(stdout, want) {
				t.Errorf("config output lacks %q:\n%s", want, stdout)
			}
		}
		if !strings.Contains(stderr, `service "test": ulimits is not supported by sbxrun: ignored`) {
			t.Errorf("config did not warn about ulimits: %q", stderr)
		}
		stdout, _ = p.mustRun("config", "--services")
		if got := strings.Fields(stdout); !reflect.DeepEqual(got, []string{"server", "dev", "test"}) {
			t.Errorf("config --services = %q, want dependencies first: server dev test", got)
		}
	})

	var mid netState
	t.Run("up", func(t *testing.T) {
		start := time.Now()
		_, stderr := p.mustRun("up", "-d", "--wait")
		t.Logf("up -d --wait took %v", time.Since(start).Round(time.Millisecond))
		if !strings.Contains(stderr, "dev waits for server to be healthy") {
			t.Errorf("up did not wait for server's health before dev: %q", stderr)
		}
		if !strings.Contains(stderr, `service "test": ulimits is not supported`) {
			t.Errorf("up did not warn about ulimits: %q", stderr)
		}
		mid = snapshotNet(t)
		if _, err := os.Stat(networkConf("cproj_default")); err != nil {
			t.Errorf("the project network was not created: %v", err)
		}
		rows := p.ps()
		if len(rows) != 3 {
			t.Fatalf("compose ps: %d rows, want 3: %+v", len(rows), rows)
		}
		for _, r := range rows {
			if r.State != "running" {
				t.Errorf("%s is %s, want running", r.Name, r.State)
			}
			if r.Service == "server" && (r.Health != "healthy" || !strings.Contains(r.Publishers, fmt.Sprintf("127.0.0.1:%d->8000/tcp", port))) {
				t.Errorf("server row %+v: want healthy, publishing 127.0.0.1:%d->8000/tcp", r, port)
			}
		}
	})

	t.Run("names resolve", func(t *testing.T) {
		stdout, _ := p.mustRun("exec", "-T", "dev", "--", "sh", "-c", "wget -q -O- http://server:8000/ && wget -q -O- http://cproj-server-1:8000/")
		if stdout != "hello-server\nhello-server\n" {
			t.Errorf("dev reached server by service and container name: %q, want hello-server twice", stdout)
		}
	})

	t.Run("published port", func(t *testing.T) {
		body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/", port), 10*time.Second)
		if err != nil || body != "hello-server\n" {
			t.Errorf("published port %d: %q, %v", port, body, err)
		}
	})

	t.Run("mounts and env", func(t *testing.T) {
		stdout, _ := p.mustRun("exec", "-T", "dev", "--", "sh", "-c", "cat marker.txt; echo cached > /cache/f; pwd")
		if stdout != "project file\n/workspace\n" {
			t.Errorf("dev sees %q, want the project at /workspace as its workdir", stdout)
		}
		if b, err := os.ReadFile(filepath.Join(volumeDir("cproj_cache"), "f")); err != nil || string(b) != "cached\n" {
			t.Errorf("the named volume's host directory holds %q, %v", b, err)
		}
	})

	t.Run("logs", func(t *testing.T) {
		stdout, _ := p.mustRun("logs", "dev")
		if stdout != "dev-started hi-from-env\n" {
			t.Errorf("logs dev = %q", stdout)
		}
		stdout, _ = p.mustRun("logs")
		if !strings.Contains(stdout, "cproj-dev-1") || !strings.Contains(stdout, "| dev-started hi-from-env") {
			t.Errorf("logs of every service are not prefixed with the sandbox: %q", stdout)
		}
	})

	t.Run("up again keeps what runs", func(t *testing.T) {
		_, stderr := p.mustRun("up", "-d")
		if strings.Count(stderr, " running\n") != 3 || strings.Contains(stderr, "started") {
			t.Errorf("a second up re-created running services: %q", stderr)
		}
	})

	t.Run("run --rm", func(t *testing.T) {
		stdout, _ := p.mustRun("run", "--rm", "-T", "test", "--", "sh", "-c", "wget -q -O- http://server:8000/")
		if stdout != "hello-server\n" {
			t.Errorf("compose run test: %q", stdout)
		}
		if rows := p.ps(); len(rows) != 3 {
			t.Errorf("run --rm left a sandbox: %+v", rows)
		}
	})

	t.Run("stop start restart", func(t *testing.T) {
		p.mustRun("stop", "test")
		for _, r := range p.ps() {
			if r.Service == "test" && r.State == "running" {
				t.Errorf("test still running after stop: %+v", r)
			}
		}
		p.mustRun("start", "test")
		p.mustRun("restart", "test")
		for _, r := range p.ps() {
			if r.State != "running" {
				t.Errorf("%s is %s after start and restart", r.Name, r.State)
			}
		}
	})

	t.Run("down", func(t *testing.T) {
		_, stderr := p.mustRun("down")
		for _, want := range []string{"cproj-server-1 removed", "cproj-dev-1 removed", "cproj-test-1 removed", "network cproj_default removed"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("down did not say %q: %q", want, stderr)
			}
		}
		if _, err := os.Stat(networkConf("cproj_default")); err == nil {
			t.Errorf("down left the project network")
		}
		if _, err := os.Stat(filepath.Join(volumeDir("cproj_cache"), "f")); err != nil {
			t.Errorf("down without -v removed the volume: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(p.dir, "marker.txt")); err != nil || string(b) != "project file\n" {
			t.Errorf("down touched the bind source: %q %v", b, err)
		}
		p.mustRun("down", "-v")
		if _, err := os.Stat(volumeDir("cproj_cache")); err == nil {
			t.Errorf("down -v left the volume")
		}
		assertNamespaceClean(t, ns)
		after := snapshotNet(t)
		b := before
		b.bridges = append(append([]string{}, before.bridges...), mid.bridges...)
		b.subnets = append(append(b.subnets[:0:0], before.subnets...), mid.subnets...)
		assertNetSameAs(t, "compose up and down", b, after)
		for _, br := range mid.bridges {
			for _, l := range after.links {
				if strings.HasPrefix(l, br) {
					t.Errorf("bridge %s of the project left", br)
				}
			}
		}
		if got := stateFiles(t, ns, p.name); !reflect.DeepEqual(got, filesBefore) {
			t.Errorf("state files changed: before %q, after %q", filesBefore, got)
		}
	})
}

// TestComposeHealth: depends_on service_healthy waits for a healthcheck
// that turns healthy after a few seconds; a healthcheck that never passes
// fails up --wait naming the service.
func TestComposeHealth(t *testing.T) {
	ns := useNamespace(t, false)
	p := newComposeProject(t, "chealth", fmt.Sprintf(`
services:
  slow:
    image: %[1]s
    pull_policy: never
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 600"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 1s
      retries: 10
  after:
    image: %[1]s
    pull_policy: never
    command: ["sleep", "600"]
    depends_on:
      slow: {condition: service_healthy}
  once:
    image: %[1]s
    pull_policy: never
    command: ["sh", "-c", "echo done"]
  needs-once:
    image: %[1]s
    pull_policy: never
    command: ["sleep", "600"]
    depends_on:
      once: {condition: service_completed_successfully}
`, baseRef))
	defer p.run("down")
	start := time.Now()
	_, stderr := p.mustRun("up", "-d", "--wait")
	took := time.Since(start)
	t.Logf("up --wait with a 3 s healthcheck took %v", took.Round(time.Millisecond))
	if took < 3*time.Second {
		t.Errorf("up --wait returned after %v, before the healthcheck could pass", took)
	}
	if i, j := strings.Index(stderr, "chealth-slow-1 started"), strings.Index(stderr, "chealth-after-1 started"); i < 0 || j < i {
		t.Errorf("after started before slow: %q", stderr)
	}
	states := map[string]string{}
	for _, r := range p.ps() {
		states[r.Service] = r.State + "/" + r.Health
	}
	if states["slow"] != "running/healthy" || states["after"] != "running/" || states["needs-once"] != "running/" || states["once"] != "stopped/" {
		t.Errorf("states after up --wait: %v", states)
	}
	p.mustRun("down")

	bad := newComposeProject(t, "cunhealthy", fmt.Sprintf(`
services:
  never:
    image: %[1]s
    pull_policy: never
    command: ["sleep", "600"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 500ms
      retries: 2
`, baseRef))
	stdout, stderr, code := bad.run("up", "-d", "--wait")
	if code == 0 || !strings.Contains(stderr, `service "never" is not healthy`) {
		t.Errorf("up --wait with a failing healthcheck: exit %d, stderr %q, want non-zero naming the service", code, stderr)
	}
	_ = stdout
	bad.mustRun("down")
	assertNamespaceClean(t, ns)
}

// TestComposeRefusals: what an untrusted project may not ask for, a
// daemon socket and a build-only service are refused with exit 125, file,
// service and key named, and nothing created; trusting the project allows
// what trust allows.
func TestComposeRefusals(t *testing.T) {
	ns := useNamespace(t, false)
	trust := filepath.Join(t.TempDir(), "trust.json")
	cases := []struct {
		name, service, want string
	}{
		{"privileged", "privileged: true", `service "bad": privileged: true is not allowed from an untrusted project file`},
		{"docker.sock", "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]", `service "bad": volumes: bind mount of "/var/run/docker.sock" gives the sandbox control of the host`},
		{"build only", "build: .", `service "bad" has build and no image: sbxrun runs prebuilt images only: build and push it, then add image: NAME`},
		{"outside bind", "volumes: [\"/etc:/host-etc:ro\"]", `service "bad": volumes: bind mount of "/etc" (outside the project directory`},
		{"home file", "volumes: [\"~/.gitconfig:/root/.gitconfig:ro\"]", "as your own files (~/.gitconfig, ~/.ssh) are: review the file, then run `sbxrun trust"},
		{"cap_add", "cap_add: [NET_ADMIN]", `service "bad": cap_add: NET_ADMIN is not allowed`},
		{"host network", "network_mode: host", `service "bad": network_mode: host is not allowed`},
		{"unknown key", "colour: blue", `service "bad": unknown key "colour"`},
	}
	before := snapshotNet(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			image := "    image: " + baseRef + "\n"
			if c.name == "build only" {
				image = ""
			}
			p := newComposeProject(t, fmt.Sprintf("crefuse%d", i), "services:\n  ok:\n    image: "+baseRef+"\n    command: [sleep, \"600\"]\n  bad:\n"+image+"    "+c.service+"\n")
			p.env = []string{"SBXRUN_TRUST_FILE=" + trust}
			for _, verb := range [][]string{{"config"}, {"up", "-d"}} {
				stdout, stderr, code := p.run(verb...)
				expect(t, "compose "+verb[0], code, 125, stdout, stderr)
				file := filepath.Join(p.dir, "compose.yaml") + ":"
				if !strings.Contains(stderr, file) || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
					t.Errorf("compose %s: stderr %q, want one line naming %s and %q", verb[0], stderr, file, c.want)
				}
			}
			if _, err := os.Stat(networkConf(p.name + "_default")); err == nil {
				t.Errorf("a refused up created the project network")
			}
			if rows := ps(t); len(rows) > 0 {
				t.Errorf("a refused up created sandboxes: %+v", rows)
			}
		})
	}
	assertNetSame(t, "refused projects", before)

	t.Run("trusted", func(t *testing.T) {
		p := newComposeProject(t, "ctrusted", "services:\n  ok:\n    image: "+baseRef+"\n    cap_add: [NET_ADMIN]\n    network_mode: none\n")
		p.env = []string{"SBXRUN_TRUST_FILE=" + trust}
		if _, _, code := p.run("config"); code != 125 {
			t.Fatalf("untrusted cap_add: exit %d, want 125", code)
		}
		if stdout, stderr, code := runWith(t, opts{dir: p.dir, env: p.env}, "trust", p.dir); code != 0 || !strings.Contains(stdout, "trusted "+filepath.Join(p.dir, "compose.yaml")) {
			t.Fatalf("sbxrun trust: exit %d %q %q", code, stdout, stderr)
		}
		p.mustRun("config")
		if err := os.WriteFile(filepath.Join(p.dir, "compose.yaml"), []byte("services:\n  ok:\n    image: "+baseRef+"\n    cap_add: [SYS_ADMIN]\n    network_mode: none\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := p.run("config"); code != 125 || !strings.Contains(stderr, "cap_add: SYS_ADMIN") {
			t.Errorf("a changed trusted file is still trusted: exit %d %q", code, stderr)
		}
	})
	assertNamespaceClean(t, ns)
}

// TestComposeSpecIdentity: for each mapped key, the spec of a compose
// service equals the spec of the equivalent `sbxrun run` flags, key by key.
func TestComposeSpecIdentity(t *testing.T) {
	useNamespace(t, false)
	v := newFakeNvidia(t)
	p := newComposeProject(t, "cspec", fmt.Sprintf(`
services:
  svc:
    image: %[1]s
    pull_policy: never
    entrypoint: ["/bin/sh"]
    command: ["-c", "echo hi"]
    working_dir: /srv
    user: "1000:1000"
    hostname: box
    environment: {A: "1", B: two}
    volumes:
      - ./data:/data:ro
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1048576}
    tmpfs: ["/run/x:size=65536"]
    shm_size: 64m
    read_only: true
    cap_drop: [NET_RAW]
    security_opt: ["no-new-privileges:true"]
    labels: {org.example.a: b}
    stop_signal: SIGINT
    stop_grace_period: 7s
    network_mode: none
    deploy:
      resources:
        limits: {memory: 64m, cpus: "0.5", pids: 77}
  gpu:
    image: %[1]s
    pull_policy: never
    network_mode: none
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, count: all, capabilities: [gpu]}]
  gpukey:
    image: %[1]s
    pull_policy: never
    network_mode: none
    gpus: all
  dns:
    image: %[1]s
    pull_policy: never
    extra_hosts: ["db.internal=10.1.2.3", "gw.internal=host-gateway"]
    dns: [192.0.2.53]
    dns_search: example.test
    dns_opt: ["ndots:2"]
  dnsnone:
    image: %[1]s
    pull_policy: never
    network_mode: none
    dns: 192.0.2.53
`, baseRef))
	if err := os.Mkdir(filepath.Join(p.dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.env = v.env()
	specOf := func(args ...string) map[string]json.RawMessage {
		t.Helper()
		stdout, stderr, code := runWith(t, opts{dir: p.dir, env: p.env}, args...)
		if code != 0 {
			t.Fatalf("sbxrun %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(stdout), &m); err != nil {
			t.Fatalf("sbxrun %s: %v", strings.Join(args, " "), err)
		}
		return m
	}
	compare := func(t *testing.T, service string, flags ...string) map[string]json.RawMessage {
		c := specOf("compose", "-p", p.name, "spec", service)
		r := specOf(append([]string{"spec", "--name", "cspec-" + service + "-1", "--pull", "never"}, flags...)...)
		keys := map[string]bool{}
		for k := range c {
			keys[k] = true
		}
		for k := range r {
			keys[k] = true
		}
		for k := range keys {
			if string(c[k]) != string(r[k]) {
				t.Errorf("spec key %q differs:\ncompose: %s\nrun:     %s", k, c[k], r[k])
			}
		}
		return c
	}
	t.Run("keys", func(t *testing.T) {
		c := compare(t, "svc", "--entrypoint", "/bin/sh", "-w", "/srv", "-u", "1000:1000", "--hostname", "box", "-e", "A=1", "-e", "B=two",
			"-v", filepath.Join(p.dir, "data")+":/data:ro", "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1048576", "--mount", "type=tmpfs,target=/run/x,tmpfs-size=65536",
			"--shm-size", "64m", "--read-only", "--cap-drop", "NET_RAW", "--security-opt", "no-new-privileges:true", "-l", "org.example.a=b",
			"--stop-signal", "SIGINT", "--stop-timeout", "7", "--net", "none", "-m", "64m", "--cpus", "0.5", "--pids-limit", "77",
			baseRef, "--", "-c", "echo hi")
		if !strings.Contains(string(c["process"]), `"A=1"`) || !strings.Contains(string(c["linux"]), `"limit": 67108864`) {
			t.Errorf("the compose spec lacks the service's env or memory limit:\n%s\n%s", c["process"], c["linux"])
		}
	})
	t.Run("gpu reservation", func(t *testing.T) {
		if _, err := os.Stat("/proc/driver/nvidia/version"); err != nil {
			// Without a loaded driver `--gpus all` refuses an nvidia.com
			// spec before any spec exists: the same request must be
			// refused the same way, naming the same CDI device.
			for _, service := range []string{"gpu", "gpukey"} {
				_, cerr, ccode := runWith(t, opts{dir: p.dir, env: p.env}, "compose", "-p", p.name, "spec", service)
				_, rerr, rcode := runWith(t, opts{dir: p.dir, env: p.env}, "spec", "--name", "cspec-"+service+"-1", "--pull", "never", "--gpus", "all", "--net", "none", baseRef)
				if ccode != 125 || rcode != 125 || cerr != rerr || !strings.Contains(cerr, `"nvidia.com/gpu=all"`) {
					t.Errorf("service %s without a driver: compose exit %d %q, run --gpus all exit %d %q; want both 125 with the same line naming nvidia.com/gpu=all",
						service, ccode, cerr, rcode, rerr)
				}
			}
			return
		}
		c := compare(t, "gpu", "--gpus", "all", "--net", "none", baseRef)
		if !strings.Contains(string(c["linux"]), "/dev/sbxrun-fake-gpu0") {
			t.Errorf("the reservation did not become the CDI device: %s", c["linux"])
		}
		compare(t, "gpukey", "--gpus", "all", "--net", "none", baseRef)
	})
	t.Run("hosts and dns", func(t *testing.T) {
		// The project's network exists once up made it; here by hand.
		stdout, stderr, code := run(t, "network", "create", "cspec_default")
		expect(t, "network create cspec_default", code, 0, stdout, stderr)
		defer run(t, "network", "rm", "cspec_default")
		compare(t, "dns", "--net", "cspec_default", "--add-host", "db.internal:10.1.2.3", "--add-host", "gw.internal:host-gateway",
			"--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:2", baseRef)
		// Where sbxrun writes no files of the sandbox's own, the same
		// line refuses both.
		_, cerr, ccode := runWith(t, opts{dir: p.dir, env: p.env}, "compose", "-p", p.name, "spec", "dnsnone")
		_, rerr, rcode := runWith(t, opts{dir: p.dir, env: p.env}, "spec", "--name", "cspec-dnsnone-1", "--pull", "never", "--net", "none", "--dns", "192.0.2.53", baseRef)
		if ccode != 125 || rcode != 125 || cerr != rerr || !strings.Contains(cerr, "--dns needs a /etc/resolv.conf of the sandbox's own") {
			t.Errorf("dns with network_mode none: compose exit %d %q, run exit %d %q; want both 125 with the same line", ccode, cerr, rcode, rerr)
		}
	})
}

// fakeNvidia is a CDI spec for nvidia.com/gpu whose one device is the
// host's /dev/null under another name: what `--gpus all` resolves to on a
// host without GPUs.
type fakeNvidia struct{ specDir string }

func newFakeNvidia(t *testing.T) fakeNvidia {
	t.Helper()
	dir := t.TempDir()
	spec := `{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[` +
		`{"name":"0","containerEdits":{"deviceNodes":[{"path":"/dev/sbxrun-fake-gpu0","hostPath":"/dev/null"}]}},` +
		`{"name":"all","containerEdits":{"deviceNodes":[{"path":"/dev/sbxrun-fake-gpu0","hostPath":"/dev/null"}]}}],` +
		`"containerEdits":{"env":["NVIDIA_FAKE=1"]}}`
	if err := os.WriteFile(filepath.Join(dir, "nvidia.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return fakeNvidia{specDir: dir}
}

func (v fakeNvidia) env() []string { return []string{"SBXRUN_CDI_SPEC_DIRS=" + v.specDir} }

// TestComposeKilledUp: an up killed with SIGKILL while it starts the
// services, then up again, converges: one sandbox per service, and down
// leaves nothing.
func TestComposeKilledUp(t *testing.T) {
	ns := useNamespace(t, false)
	yaml := "services:\n"
	for i := 0; i < 4; i++ {
		yaml += fmt.Sprintf("  s%d:\n    image: %s\n    pull_policy: never\n    command: [sleep, \"600\"]\n    volumes: [\"vol:/v\"]\n", i, baseRef)
		if i > 0 {
			yaml += fmt.Sprintf("    depends_on: [s%d]\n", i-1)
		}
	}
	yaml += "volumes:\n  vol: {}\n"
	p := newComposeProject(t, "ckill", yaml)
	before := snapshotNet(t)
	up := start(t, opts{dir: p.dir}, "compose", "-p", p.name, "up", "-d")
	waitOutput(t, up, up.stderr, "ckill-s1-1 started", time.Minute)
	_ = up.cmd.Process.Signal(syscall.SIGKILL)
	<-up.done
	_, stderr := p.mustRun("up", "-d")
	t.Logf("second up: %s", stderr)
	rows := p.ps()
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Service]++
		if r.State != "running" {
			t.Errorf("%s is %s after the second up", r.Name, r.State)
		}
	}
	for i := 0; i < 4; i++ {
		if seen[fmt.Sprintf("s%d", i)] != 1 {
			t.Errorf("service s%d has %d sandboxes after the second up, want 1: %+v", i, seen[fmt.Sprintf("s%d", i)], rows)
		}
	}
	mid := snapshotNet(t)
	p.mustRun("down", "-v")
	assertNamespaceClean(t, ns)
	b := before
	b.bridges = append(append([]string{}, before.bridges...), mid.bridges...)
	b.subnets = append(append(b.subnets[:0:0], before.subnets...), mid.subnets...)
	assertNetSameAs(t, "killed up, up, down", b, snapshotNet(t))
	if _, err := os.Stat(volumeDir("ckill_vol")); err == nil {
		t.Errorf("down -v left the volume")
	}
}

// TestComposeHostsDNS: extra_hosts (list and map forms), dns, dns_search
// and dns_opt reach the services' /etc/hosts and /etc/resolv.conf as
// --add-host and --dns* do; down leaves nothing.
func TestComposeHostsDNS(t *testing.T) {
	ns := useNamespace(t, false)
	p := newComposeProject(t, "cdns", fmt.Sprintf(`
services:
  list:
    image: %[1]s
    pull_policy: never
    command: ["sleep", "600"]
    extra_hosts: ["db.internal:10.1.2.3", "gw.internal:host-gateway"]
    dns: 192.0.2.53
    dns_search: example.test
    dns_opt: ["ndots:2"]
  map:
    image: %[1]s
    pull_policy: never
    command: ["sleep", "600"]
    extra_hosts:
      db.internal: 10.1.2.3
      gw.internal: host-gateway
    dns: [192.0.2.53]
    dns_search: [example.test]
    dns_opt: ["ndots:2"]
`, baseRef))
	defer p.run("down")
	_, stderr := p.mustRun("up", "-d")
	for _, key := range []string{"extra_hosts", "dns"} {
		if strings.Contains(stderr, key+" is not supported") {
			t.Errorf("up warns about %s: %s", key, stderr)
		}
	}
	for _, service := range []string{"list", "map"} {
		stdout, stderr := p.mustRun(append([]string{"exec", service, "--"}, catNameFiles...)...)
		_ = stderr
		checkNameFiles(t, "service "+service, stdout)
	}
	p.mustRun("down")
	assertNamespaceClean(t, ns)
}

// TestComposeRestartPolicy: a foreground `compose up` restarts a service
// that exits by its policy (on-failure:2: twice after failures; on-failure:
// not after a success), ends once nothing runs and nothing restarts, and
// down leaves nothing.
func TestComposeRestartPolicy(t *testing.T) {
	// Not parallel: the leak check compares the host's network state.
	ns := useNamespace(t, false)
	p := newComposeProject(t, "crestart", fmt.Sprintf(`
services:
  flaky:
    image: %[1]s
    pull_policy: never
    command: ["sh", "-c", "echo attempt; exit 3"]
    restart: on-failure:2
  fine:
    image: %[1]s
    pull_policy: never
    command: ["sh", "-c", "echo done"]
    restart: on-failure
`, baseRef))
	before := snapshotNet(t)
	stdout, stderr, code := p.run("up")
	if code != 0 {
		t.Fatalf("compose up: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	restarts := strings.Count(stderr, "crestart-flaky-1 exited with status 3: restarting (restart: on-failure:2)")
	if restarts != 2 {
		t.Errorf("flaky was restarted %d times, want 2 (on-failure:2)\nstderr: %s", restarts, stderr)
	}
	if strings.Contains(stderr, "crestart-fine-1 exited") {
		t.Errorf("fine exited 0 and was restarted under on-failure\nstderr: %s", stderr)
	}
	if !strings.Contains(stdout, "attempt") || !strings.Contains(stdout, "done") {
		t.Errorf("up did not print the services' output\nstdout: %s", stdout)
	}
	for _, r := range p.ps() {
		want := map[string]int{"flaky": 3, "fine": 0}[r.Service]
		if r.State != "stopped" || r.ExitCode == nil || *r.ExitCode != want {
			t.Errorf("%s after up: %s, exit %v; want stopped with %d", r.Name, r.State, r.ExitCode, want)
		}
	}
	p.mustRun("down")
	assertNamespaceClean(t, ns)
	assertNetSameAs(t, "restart policy up, down", before, snapshotNet(t))
}
