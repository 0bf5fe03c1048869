package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInsecureRegistryMirror pulls through a TLS mirror whose certificate
// no system CA trusts: --insecure-registry for the registry pulled from
// must not loosen the mirror, which keeps its own hosts.toml TLS settings.
func TestInsecureRegistryMirror(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{tls: true})
	img := buildImage(t, 256<<10)
	dg := reg.push(t, img.layout, "sbxtest/mirrored", "v1")
	const upstream = "registry.sbxrun.invalid"
	ref := upstream + "/sbxtest/mirrored:v1"
	tests := []struct {
		name   string
		mirror string // settings of the mirror's [host] table
		flags  []string
		code   int
		want   []string
	}{
		{"flag-on-upstream-mirror-verifies", "", []string{"--insecure-registry", upstream}, 125, []string{"TLS certificate of " + reg.host, "--insecure-registry " + reg.host}},
		{"mirror-skip-verify", "  skip_verify = true\n", nil, 0, []string{"pulled " + ref + " " + dg.String()}},
		{"flag-on-upstream-mirror-ca", fmt.Sprintf("  ca = %q\n", reg.caFile), []string{"--insecure-registry", upstream}, 0, []string{"pulled " + ref}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			toml := fmt.Sprintf("server = \"https://%s\"\n\n[host.\"https://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n%s", upstream, reg.host, tt.mirror)
			writeHosts(t, dir, upstream, toml)
			args := append(append([]string{"pull", "--hosts-dir", dir}, tt.flags...), ref)
			begin := time.Now()
			stdout, stderr, code := run(t, args...)
			expect(t, strings.Join(args, " "), code, tt.code, stdout, stderr)
			wantOutput(t, "stderr", stderr, tt.want...)
			if took := time.Since(begin); tt.code != 0 && took > 30*time.Second {
				t.Errorf("the refused pull took %s", took)
			}
		})
	}
}

// TestLoginDockerHubDefault runs login and logout without a registry: they
// act on Docker Hub and store under the key docker login uses. Docker Hub
// is not reachable here, so docker.io's hosts.toml sends the login to a
// loopback registry (or to a closed port, for the unreachable case).
func TestLoginDockerHubDefault(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{tls: true, auth: true})
	hub := t.TempDir()
	writeHosts(t, hub, "docker.io", fmt.Sprintf("server = %q\nca = %q\n", "https://"+reg.host, reg.caFile))
	const hubKey = "https://index.docker.io/v1/"

	t.Run("login-logout", func(t *testing.T) {
		cfg := dockerConfig(t, map[string]any{"auths": map[string]any{reg.host: map[string]string{"auth": basicAuth("other", "pw")}}})
		o := opts{env: []string{"DOCKER_CONFIG=" + cfg}, stdin: strings.NewReader(reg.password + "\n")}
		stdout, stderr, code := runWith(t, o, "login", "-u", reg.user, "--password-stdin", "--hosts-dir", hub)
		expect(t, "login", code, 0, stdout, stderr)
		wantOutput(t, "stdout", stdout, "Login Succeeded (credentials for docker.io")
		if a := authsOf(t, cfg); a[hubKey] != basicAuth(reg.user, reg.password) || a["docker.io"] != "" {
			t.Fatalf("config.json auths after login: %v; want the credentials under %q, as docker login writes them", a, hubKey)
		}
		o.stdin = nil
		stdout, stderr, code = runWith(t, o, "logout")
		expect(t, "logout", code, 0, stdout, stderr)
		wantOutput(t, "stdout", stdout, "Removed login credentials for docker.io")
		if a := authsOf(t, cfg); a[hubKey] != "" || a[reg.host] == "" {
			t.Errorf("config.json auths after logout: %v; want Docker Hub gone and %s kept", a, reg.host)
		}
		stdout, stderr, code = runWith(t, o, "logout")
		expect(t, "second logout", code, 0, stdout, stderr)
		wantOutput(t, "stdout", stdout, "Not logged in to docker.io")
	})
	t.Run("unreachable", func(t *testing.T) {
		down := t.TempDir()
		writeHosts(t, down, "docker.io", fmt.Sprintf("server = \"https://127.0.0.1:%d\"\n", freePort(t)))
		cfg := t.TempDir()
		o := opts{env: []string{"DOCKER_CONFIG=" + cfg}, stdin: strings.NewReader("pw\n")}
		begin := time.Now()
		stdout, stderr, code := runWith(t, o, "login", "-u", "someone", "--password-stdin", "--hosts-dir", down)
		expect(t, "login", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "Docker Hub (docker.io", "unreachable", "sbxrun login -u USER --password-stdin REGISTRY")
		if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
			t.Errorf("login wrote %d lines to stderr, want one", lines)
		}
		if took := time.Since(begin); took > 15*time.Second {
			t.Errorf("the failed login took %s", took)
		}
		if _, err := os.Stat(filepath.Join(cfg, "config.json")); err == nil {
			t.Error("a failed login wrote config.json")
		}
	})
	t.Run("two-registries", func(t *testing.T) {
		for _, cmd := range []string{"login", "logout"} {
			stdout, stderr, code := runWith(t, opts{env: []string{"DOCKER_CONFIG=" + t.TempDir()}}, cmd, "a.example.com", "b.example.com")
			expect(t, cmd+" with two registries", code, 125, stdout, stderr)
			wantOutput(t, "stderr", stderr, "takes one registry")
		}
	})
}

// writeHosts writes ROOT/HOST/hosts.toml (HOST in certs.d spelling).
func writeHosts(t *testing.T, root, host, body string) {
	t.Helper()
	d := filepath.Join(root, strings.Replace(host, ":", "_", 1))
	if strings.Contains(host, ":") {
		d += "_"
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// authsOf maps each auths key of DIR/config.json to its "auth" value.
func authsOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, b)
	}
	out := map[string]string{}
	for k, v := range cfg.Auths {
		out[k] = v.Auth
	}
	return out
}
