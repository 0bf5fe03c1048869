package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/sbxrun/sbxrun/compose"
	"github.com/sbxrun/sbxrun/runtime/profiles"
)

// project writes compose.yaml (and the extra files) into a fresh
// directory and loads it with an empty trust store of its own.
func project(t *testing.T, yaml string, extra map[string]string) (*compose.Project, error) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"compose.yaml": yaml}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Load(context.Background(), compose.Options{WorkingDir: dir, Files: []string{filepath.Join(dir, "compose.yaml")}, Project: "p",
		TrustFile: filepath.Join(t.TempDir(), "trust.json")})
}

func mustPlan(t *testing.T, yaml string, extra map[string]string) *compose.Plan {
	t.Helper()
	p, err := project(t, yaml, extra)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := p.Check(profiles.HostEnv{Home: "/nonexistent-home", Cwd: p.WorkingDir}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	plan, err := p.Plan(compose.PlanOptions{VolumesDir: "/vols"})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return plan
}

func TestInterpolationAndMapping(t *testing.T) {
	t.Setenv("SBX_TEST_UNSET", "")
	plan := mustPlan(t, `
services:
  db:
    image: busybox
  dev:
    image: ${IMG:-busybox:1}
    command: ["sh", "-c", "echo $$X"]
    environment: {GREETING: "${GREETING:-hi}", FROM_ENV: "${FROM_DOTENV}"}
    working_dir: /workspace
    volumes: [".:/workspace", "cache:/cache"]
    ports: ["127.0.0.1:8080:80", "9000"]
    depends_on: {db: {condition: service_started}}
    deploy:
      resources:
        limits: {memory: 64m, cpus: "0.5", pids: 77}
volumes:
  cache: {}
`, map[string]string{".env": "FROM_DOTENV=dotenv-value\n"})
	if len(plan.Services) != 2 || plan.Services[0].Name != "db" || plan.Services[1].Name != "dev" {
		t.Fatalf("services not in dependency order: %+v", plan.Services)
	}
	dev := plan.Services[1]
	if dev.Container != "p-dev-1" || *dev.Flags.Image != "busybox:1" {
		t.Errorf("container %q image %q", dev.Container, *dev.Flags.Image)
	}
	if dev.Flags.Env["GREETING"] != "hi" || dev.Flags.Env["FROM_ENV"] != "dotenv-value" {
		t.Errorf("env %v: want GREETING=hi (default) and FROM_ENV from .env", dev.Flags.Env)
	}
	if strings.Join(dev.Args, " ") != "sh -c echo $X" {
		t.Errorf("args %q", dev.Args)
	}
	if strings.Join(dev.Publish, ",") != "127.0.0.1:8080:80,9000" {
		t.Errorf("publish %q", dev.Publish)
	}
	if dev.Flags.Memory == nil || *dev.Flags.Memory != "67108864" {
		t.Errorf("memory %v", dev.Flags.Memory)
	}
	if dev.Flags.PidsLimit == nil || *dev.Flags.PidsLimit != 77 {
		t.Errorf("pids %v", dev.Flags.PidsLimit)
	}
	if dev.Flags.Labels[compose.LabelProject] != "p" || dev.Flags.Labels[compose.LabelService] != "dev" {
		t.Errorf("labels %v", dev.Flags.Labels)
	}
	if len(plan.Volumes) != 1 || plan.Volumes[0].Name != "p_cache" || plan.Volumes[0].Dir != "/vols/p_cache" {
		t.Errorf("volumes %+v", plan.Volumes)
	}
	if len(plan.Networks) != 1 || plan.Networks[0].Name != "p_default" {
		t.Errorf("networks %+v", plan.Networks)
	}
	if !strings.Contains(strings.Join(dev.Aliases, ","), "dev") {
		t.Errorf("aliases %v lack the service name", dev.Aliases)
	}
}

func TestGPURequests(t *testing.T) {
	for _, c := range []struct{ devices, want string }{
		{`[{driver: nvidia, count: all, capabilities: [gpu]}]`, "all"},
		{`[{driver: nvidia, count: 2, capabilities: [gpu]}]`, "2"},
		{`[{driver: nvidia, device_ids: ["0", "3"], capabilities: [gpu]}]`, "device=0,3"},
		{`[{capabilities: [gpu]}]`, "all"},
	} {
		plan := mustPlan(t, "services:\n  m:\n    image: busybox\n    deploy:\n      resources:\n        reservations:\n          devices: "+c.devices+"\n", nil)
		g := plan.Services[0].Flags.GPUs
		if g == nil || *g != c.want {
			t.Errorf("%s: gpus %v, want %q", c.devices, g, c.want)
		}
	}
	plan := mustPlan(t, "services:\n  m:\n    image: busybox\n    gpus: all\n", nil)
	if g := plan.Services[0].Flags.GPUs; g == nil || *g != "all" {
		t.Errorf("gpus: all became %v", g)
	}
	p, err := project(t, "services:\n  m:\n    image: busybox\n    deploy:\n      resources:\n        reservations:\n          devices: [{driver: amd, count: 1, capabilities: [gpu]}]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(compose.PlanOptions{VolumesDir: "/vols"}); err == nil || !strings.Contains(err.Error(), `driver "amd"`) {
		t.Errorf("an amd reservation: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name, service string
		want          []string
	}{
		{"privileged", "    privileged: true\n", []string{"compose.yaml:4", `service "s"`, "privileged", "sbxrun trust"}},
		{"docker.sock", "    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n", []string{"compose.yaml:4", `service "s"`, "volumes", "docker.sock"}},
		{"cap_add", "    cap_add: [SYS_ADMIN]\n", []string{"compose.yaml:4", `service "s"`, "cap_add", "sbxrun trust"}},
		{"outside bind", "    volumes: [\"/etc:/host-etc\"]\n", []string{"compose.yaml:4", `service "s"`, "/etc"}},
		{"host network", "    network_mode: host\n", []string{"compose.yaml:4", `service "s"`, "network_mode"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := project(t, "services:\n  s:\n    image: busybox\n"+c.service, nil)
			if err == nil {
				err = p.Check(profiles.HostEnv{Home: "/nonexistent-home", Cwd: p.WorkingDir})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("not bad input: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("more than one line: %q", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("bad expose", func(t *testing.T) {
		p, err := project(t, "services:\n  s:\n    image: busybox\n    expose: [\"8000\", \"abc\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Plan(compose.PlanOptions{VolumesDir: "/vols"})
		if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "compose.yaml:4") || !strings.Contains(err.Error(), `"abc" is not a port`) {
			t.Errorf("expose abc: %v, want one line of bad input naming compose.yaml:4 and the value", err)
		}
	})
	t.Run("build only", func(t *testing.T) {
		p, err := project(t, "services:\n  b:\n    build: .\n", nil)
		if err == nil {
			err = p.Check(profiles.HostEnv{Cwd: p.WorkingDir})
		}
		if err == nil || !strings.Contains(err.Error(), `service "b" has build and no image`) || !strings.Contains(err.Error(), "build and push it") ||
			!errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("build-only: %v", err)
		}
	})
}

func TestTrustedFileAllowsPrivileged(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(t.TempDir(), "trust.json")
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte("services:\n  s:\n    image: busybox\n    privileged: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func() *compose.Project {
		p, err := Load(context.Background(), compose.Options{WorkingDir: dir, Project: "p", TrustFile: store})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := load(); p.Trusted || p.Check(profiles.HostEnv{Cwd: dir}) == nil {
		t.Fatal("untrusted file accepted")
	}
	if _, err := profiles.Trust(profiles.TrustOptions{Dir: dir, File: store}); err != nil {
		t.Fatal(err)
	}
	if p := load(); !p.Trusted || p.Check(profiles.HostEnv{Cwd: dir}) != nil {
		t.Fatalf("trusted file refused: trusted=%v", p.Trusted)
	}
	// A change after `sbxrun trust` is untrusted again.
	if err := os.WriteFile(file, []byte("services:\n  s:\n    image: busybox\n    privileged: true\n    cap_add: [ALL]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := load(); p.Trusted {
		t.Fatal("a changed file is still trusted")
	}
}

func TestUnsupportedKeysWarn(t *testing.T) {
	plan := mustPlan(t, "services:\n  s:\n    image: busybox\n    ulimits: {nofile: 1024}\n    sysctls: {net.core.somaxconn: 1024}\n", nil)
	w := strings.Join(plan.Warnings, "\n")
	for _, k := range []string{`service "s": ulimits`, `service "s": sysctls`} {
		if !strings.Contains(w, k) {
			t.Errorf("warnings %q lack %q", w, k)
		}
	}
}

func TestDependsOnCycle(t *testing.T) {
	p, err := project(t, "services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [a]\n", nil)
	if err == nil {
		_, err = p.Plan(compose.PlanOptions{VolumesDir: "/vols"})
	}
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle: %v", err)
	}
}

// TestHostsDNSMapping: extra_hosts in both forms, dns, dns_search and
// dns_opt become the --add-host and --dns* flags, with no warning.
func TestHostsDNSMapping(t *testing.T) {
	plan := mustPlan(t, `
services:
  list:
    image: busybox
    extra_hosts: ["db.internal:10.1.2.3", "gw=host-gateway", "v6=::1"]
    dns: 192.0.2.53
    dns_search: example.test
    dns_opt: ["ndots:2", "rotate"]
  map:
    image: busybox
    extra_hosts: {db.internal: 10.1.2.3, gw: host-gateway, v6: "::1"}
    dns: [192.0.2.53, 192.0.2.54]
    dns_search: [example.test, b.test]
  none:
    image: busybox
`, nil)
	for _, w := range plan.Warnings {
		t.Errorf("warning: %s", w)
	}
	want := map[string][4]string{
		"list": {"db.internal:10.1.2.3,gw:host-gateway,v6:::1", "192.0.2.53", "example.test", "ndots:2,rotate"},
		"map":  {"db.internal:10.1.2.3,gw:host-gateway,v6:::1", "192.0.2.53,192.0.2.54", "example.test,b.test", ""},
		"none": {},
	}
	for name, w := range want {
		f := plan.Service(name).Flags
		got := [4]string{strings.Join(f.AddHosts, ","), strings.Join(f.DNS, ","), strings.Join(f.DNSSearch, ","), strings.Join(f.DNSOptions, ",")}
		if got != w {
			t.Errorf("service %s: add_hosts, dns, dns_search, dns_options = %q, want %q", name, got, w)
		}
		if name == "none" && (f.AddHosts != nil || f.DNS != nil || f.DNSSearch != nil || f.DNSOptions != nil) {
			t.Errorf("service none sets empty lists (they change the config hash): %+v", f)
		}
	}
}

func TestHostsDNSRefusals(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{`extra_hosts: ["db:1.2.3"]`, `compose.yaml:5: service "a": extra_hosts: "db:1.2.3": "1.2.3" is not an IP address: use HOST:IP`},
		{`dns: [dns.example]`, `compose.yaml:5: service "a": dns: "dns.example" is not an IP address`},
		{`dns_search: ["a b"]`, `compose.yaml:5: service "a": dns_search: "a b" is not one domain`},
		{`dns_opt: ["a b"]`, `compose.yaml:5: service "a": dns_opt: "a b" is not one option`},
	} {
		p, err := project(t, "services:\n  a:\n    image: busybox\n\n    "+tt.yaml+"\n", nil)
		if err == nil {
			_, err = p.Plan(compose.PlanOptions{VolumesDir: "/vols"})
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want an invalid-argument error with %q", tt.yaml, err, tt.want)
		}
	}
}

// TestResponseRoundTrip: what the loader program writes decodes into the
// same plan (every field sbxrun maps, GPUs, health, limits, dependencies),
// the model as compose config prints it, and errors keep their text and
// their kind (bad input: 125).
func TestResponseRoundTrip(t *testing.T) {
	dir := t.TempDir()
	yaml := `
services:
  db:
    image: busybox
    healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 1s, retries: 3, start_period: 5s}
    expose: ["5432"]
  dev:
    image: busybox
    command: ["sh", "-c", "echo hi"]
    environment: {A: "1"}
    volumes: [".:/workspace", "cache:/cache"]
    ports: ["127.0.0.1:8080:80"]
    depends_on: {db: {condition: service_healthy}}
    mem_limit: 1g
    cpus: 1.5
    oom_score_adj: 100
    restart: on-failure:2
    extra_hosts: ["a.internal:10.0.0.1"]
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, count: all, capabilities: [gpu]}]
volumes:
  cache: {}
`
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	req := compose.Request{Options: compose.Options{WorkingDir: dir, Project: "p", TrustFile: filepath.Join(t.TempDir(), "trust.json")},
		Home: "/nonexistent-home", Plan: compose.PlanOptions{VolumesDir: "/vols"}, Config: true}
	l, err := LoadPlan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(compose.ResponseFor(l, nil))
	if err != nil {
		t.Fatal(err)
	}
	var back compose.Response
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Loaded == nil || !reflect.DeepEqual(back.Loaded.Plan, l.Plan) {
		t.Errorf("the plan changed through JSON:\nwant %+v\ngot  %+v", l.Plan, back.Loaded)
	}
	if len(l.ConfigYAML) == 0 || !bytes.Equal(back.Loaded.ConfigYAML, l.ConfigYAML) || !bytes.Equal(back.Loaded.ConfigJSON, l.ConfigJSON) {
		t.Errorf("the model changed through JSON")
	}
	dev := l.Plan.Service("dev")
	if dev == nil || dev.Health != nil || dev.Flags.GPUs == nil || dev.OOMScoreAdj == nil || dev.Restart != "on-failure:2" || len(dev.DependsOn) != 1 {
		t.Errorf("dev planned as %+v: the fixture does not exercise what it should", dev)
	}
	if db := l.Plan.Service("db"); db == nil || db.Health == nil || db.Health.Interval == 0 || len(db.Expose) != 1 {
		t.Errorf("db planned as %+v: the fixture does not exercise what it should", db)
	}

	_, err = LoadPlan(context.Background(), compose.Request{Options: compose.Options{WorkingDir: t.TempDir()}})
	resp := compose.ResponseFor(nil, err)
	if err == nil || !resp.Input || strings.Contains(resp.Error, "\n") || !strings.Contains(resp.Error, "no compose file") {
		t.Errorf("a directory without a compose file: %+v, want one line of bad input", resp)
	}
}
