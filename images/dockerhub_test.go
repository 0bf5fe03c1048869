package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerHubDefault checks that login and logout without a registry act
// on Docker Hub under the key docker login uses, and that a pull from
// docker.io finds what they stored: containerd's authorizer asks for the
// credentials of registry-1.docker.io. Docker Hub itself is never dialled:
// login is pointed at a local registry by docker.io's hosts.toml, and the
// pull side is driven through the authorizer with a recorded challenge.
func TestDockerHubDefault(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "hubuser" || p != "hubsecret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	t.Cleanup(srv.Close)
	hostsDir := t.TempDir()
	writeHostsToml(t, hostsDir, DockerHub, fmt.Sprintf("server = %q\n", srv.URL))
	// Another registry's login must survive the Docker Hub logout.
	cfgDir := writeConfig(t, map[string]any{"auths": map[string]any{"r.example.com": map[string]string{"auth": "dXNlcjpwYXNz"}}})
	ctx := context.Background()

	file, err := Login(ctx, LoginOptions{Username: "hubuser", Password: "hubsecret", RegistryOptions: RegistryOptions{HostsDirs: []string{hostsDir}, DockerConfig: cfgDir}})
	if err != nil {
		t.Fatalf("login without a registry: %v", err)
	}
	auths := readAuths(t, file)
	want := base64.StdEncoding.EncodeToString([]byte("hubuser:hubsecret"))
	if got := auths["https://index.docker.io/v1/"]["auth"]; got != want {
		t.Fatalf("config.json auths after login without a registry: %v; want %q under https://index.docker.io/v1/ as docker login writes it", auths, want)
	}
	if _, ok := auths["docker.io"]; ok {
		t.Errorf("login wrote a docker.io key docker does not read: %v", auths)
	}

	// The pull side: no hosts.toml, so docker.io is registry-1.docker.io.
	pull := RegistryOptions{HostsDirs: []string{t.TempDir()}, DockerConfig: cfgDir}
	creds, err := pull.credentials()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"registry-1.docker.io", "docker.io", "index.docker.io"} {
		if u, p, err := creds(h); err != nil || u != "hubuser" || p != "hubsecret" {
			t.Errorf("credentials(%q) = %q, %q, %v; want the Docker Hub login", h, u, p, err)
		}
	}
	hosts, err := pull.registryHosts(ctx, creds, &observer{})(DockerHub)
	if err != nil {
		t.Fatal(err)
	}
	rh := hosts[len(hosts)-1]
	if rh.Host != "registry-1.docker.io" {
		t.Fatalf("docker.io's endpoint is %q, want registry-1.docker.io", rh.Host)
	}
	manifest := "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
	challenge := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{"Www-Authenticate": {`Basic realm="registry"`}}}
	challenge.Request, _ = http.NewRequest(http.MethodGet, manifest, nil)
	if err := rh.Authorizer.AddResponses(ctx, []*http.Response{challenge}); err != nil {
		t.Fatalf("answering Docker Hub's challenge: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, manifest, nil)
	if err := rh.Authorizer.Authorize(ctx, req); err != nil {
		t.Fatal(err)
	}
	if u, p, ok := req.BasicAuth(); !ok || u != "hubuser" || p != "hubsecret" {
		t.Errorf("a pull of docker.io/library/busybox sends Authorization %q; want the Docker Hub login", req.Header.Get("Authorization"))
	}

	had, err := Logout("", RegistryOptions{DockerConfig: cfgDir})
	if err != nil || !had {
		t.Fatalf("logout without a registry = %v, %v; want the Docker Hub entry removed", had, err)
	}
	auths = readAuths(t, file)
	if _, ok := auths["https://index.docker.io/v1/"]; ok {
		t.Errorf("config.json still has Docker Hub after logout: %v", auths)
	}
	if _, ok := auths["r.example.com"]; !ok {
		t.Errorf("logout from Docker Hub removed another registry's login: %v", auths)
	}
	if had, err := Logout("", RegistryOptions{DockerConfig: cfgDir}); err != nil || had {
		t.Errorf("second logout = %v, %v; want nothing to remove", had, err)
	}
}

// TestLoginUnreachable checks that a login that cannot reach its registry
// fails soon with one line naming the registry and the fix, and stores
// nothing.
func TestLoginUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A listener nobody accepts from: connections complete, nothing answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })

	tests := []struct {
		name, registry, server string
		timeout                time.Duration
		want                   []string
	}{
		{"docker-hub-refused", "", "https://" + closed, 30 * time.Second,
			[]string{"Docker Hub (docker.io", "unreachable", "connection refused", "sbxrun login -u USER --password-stdin REGISTRY"}},
		{"docker-hub-silent", "", "https://" + silent.Addr().String(), 500 * time.Millisecond,
			[]string{"Docker Hub (docker.io", "no answer in time", "sbxrun login -u USER --password-stdin REGISTRY"}},
		{"registry-refused", closed, "", 30 * time.Second,
			[]string{"registry " + closed + " is unreachable", "connection refused", "that the registry is up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := LoginOptions{Registry: tt.registry, Username: "u", Password: "p", RegistryOptions: RegistryOptions{HostsDirs: []string{t.TempDir()}, DockerConfig: t.TempDir()}}
			if tt.server != "" {
				writeHostsToml(t, o.HostsDirs[0], DockerHub, fmt.Sprintf("server = %q\n", tt.server))
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			_, err := Login(ctx, o)
			if took := time.Since(start); took > tt.timeout+5*time.Second {
				t.Errorf("login took %s", took)
			}
			if !errors.Is(err, ErrLoginFailed) {
				t.Fatalf("login: %v, want ErrLoginFailed", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("login error %q does not say %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, "pull") {
				t.Errorf("login error is not one line about the login: %q", msg)
			}
			if _, err := os.Stat(filepath.Join(o.DockerConfig, "config.json")); err == nil {
				t.Error("a failed login wrote config.json")
			}
		})
	}
}

// writeHostsToml writes ROOT/HOST/hosts.toml.
func writeHostsToml(t *testing.T, root, host, body string) {
	t.Helper()
	dir := filepath.Join(root, host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAuths is the auths object of a config.json.
func readAuths(t *testing.T, file string) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]map[string]string `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, b)
	}
	return cfg.Auths
}
