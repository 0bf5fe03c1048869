package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoginPlainHTTP logs in to plain-HTTP registries with htpasswd auth,
// as README's Images section promises: on loopback with no flag (with a
// port, and on the default port 80, where containerd alone tries HTTPS
// only), and at a host that is not loopback only with --insecure-registry.
// Each login is checked against config.json; refusals write nothing.
func TestLoginPlainHTTP(t *testing.T) {
	t.Parallel()
	login := func(t *testing.T, password string, args ...string) (cfg, stdout, stderr string, code int) {
		t.Helper()
		cfg = t.TempDir()
		o := opts{env: []string{"DOCKER_CONFIG=" + cfg}, stdin: strings.NewReader(password + "\n")}
		stdout, stderr, code = runWith(t, o, append([]string{"login", "--hosts-dir", t.TempDir()}, args...)...)
		return cfg, stdout, stderr, code
	}
	stored := func(t *testing.T, cfg, key, user, password string) {
		t.Helper()
		if a := authsOf(t, cfg); a[key] != basicAuth(user, password) || len(a) != 1 {
			t.Errorf("config.json auths after login: %v; want only %q with the credentials", a, key)
		}
	}
	nothingWritten := func(t *testing.T, cfg string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(cfg, "config.json")); err == nil {
			t.Error("a refused login wrote config.json")
		}
	}

	t.Run("loopback-port", func(t *testing.T) {
		t.Parallel()
		reg := startRegistry(t, registryOpts{auth: true})
		_, port, _ := net.SplitHostPort(reg.host)
		for _, tt := range []struct {
			name, host string
			flags      []string
		}{
			{"localhost-no-flag", "localhost:" + port, nil},
			{"ip-no-flag", reg.host, nil},
			{"ip-with-flag", reg.host, []string{"--insecure-registry", reg.host}},
			{"localhost-with-flag", "localhost:" + port, []string{"--insecure-registry", "localhost:" + port}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cfg, stdout, stderr, code := login(t, reg.password, append(append([]string{"-u", reg.user, "--password-stdin"}, tt.flags...), tt.host)...)
				expect(t, "login", code, 0, stdout, stderr)
				wantOutput(t, "stdout", stdout, "Login Succeeded (credentials for "+tt.host)
				stored(t, cfg, tt.host, reg.user, reg.password)
			})
		}
		t.Run("wrong-password", func(t *testing.T) {
			cfg, stdout, stderr, code := login(t, "nope", "-u", reg.user, "--password-stdin", "localhost:"+port)
			expect(t, "login", code, 125, stdout, stderr)
			wantOutput(t, "stderr", stderr, "rejected user", "check the user name and password")
			nothingWritten(t, cfg)
		})
	})

	// Port 80 of a loopback address of its own (all of 127.0.0.0/8 is
	// loopback), so no other listener is in the way: the name has no port,
	// and Docker's rule is HTTPS (443) without verification, then HTTP (80).
	t.Run("loopback-default-port", func(t *testing.T) {
		t.Parallel()
		reg := startRegistry(t, registryOpts{auth: true, ip: "127.0.0.2", port: 80})
		const host = "127.0.0.2"
		for _, flags := range [][]string{nil, {"--insecure-registry", host}} {
			begin := time.Now()
			cfg, stdout, stderr, code := login(t, reg.password, append(append([]string{"-u", reg.user, "--password-stdin"}, flags...), host)...)
			took := time.Since(begin)
			expect(t, "login "+strings.Join(flags, " "), code, 0, stdout, stderr)
			stored(t, cfg, host, reg.user, reg.password)
			// The refused HTTPS attempt falls back at once; with the backoff
			// of a down registry it took over a second.
			if took > time.Second {
				t.Errorf("login %s took %s; want the refused HTTPS attempt to fall back to HTTP at once", strings.Join(flags, " "), took)
			}
		}
		img := buildImage(t, 64<<10)
		dg := reg.push(t, img.layout, "sbxtest/plain", "v1")
		ref := host + "/sbxtest/plain:v1"
		cfg := dockerConfig(t, map[string]any{"auths": map[string]any{host: map[string]string{"auth": basicAuth(reg.user, reg.password)}}})
		stdout, stderr, code := runWith(t, opts{env: []string{"DOCKER_CONFIG=" + cfg}}, "pull", "--hosts-dir", t.TempDir(), ref)
		expect(t, "pull", code, 0, stdout, stderr)
		wantOutput(t, "stderr", stderr, "pulled "+ref+" "+dg.String())
		stdout, stderr, code = run(t, "rmi", ref)
		expect(t, "rmi", code, 0, stdout, stderr)
	})

	// A registry at an address that is not loopback speaks plain HTTP only
	// with --insecure-registry naming it.
	t.Run("not-loopback", func(t *testing.T) {
		t.Parallel()
		ip := hostAddress(t)
		reg := startRegistry(t, registryOpts{auth: true, ip: ip})
		cfg, stdout, stderr, code := login(t, reg.password, "-u", reg.user, "--password-stdin", reg.host)
		expect(t, "login without --insecure-registry", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "speaks plain HTTP", "--insecure-registry "+reg.host)
		if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
			t.Errorf("login wrote %d lines to stderr, want one", lines)
		}
		nothingWritten(t, cfg)

		cfg, stdout, stderr, code = login(t, reg.password, "-u", reg.user, "--password-stdin", "--insecure-registry", reg.host, reg.host)
		expect(t, "login --insecure-registry", code, 0, stdout, stderr)
		stored(t, cfg, reg.host, reg.user, reg.password)
	})
}

// hostAddress is an IPv4 address of this machine that is not loopback.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatalf("this machine has no IPv4 address besides loopback (%v): the test needs one to reach a registry that is not on loopback", addrs)
	return ""
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
