package images

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestRetryTransport(t *testing.T) {
	tests := []struct {
		name       string
		fails      int
		failStatus int
		wantStatus int
		wantCalls  int32
	}{
		{"recovers-from-500", 2, http.StatusInternalServerError, http.StatusOK, 3},
		{"recovers-from-503", 1, http.StatusServiceUnavailable, http.StatusOK, 2},
		{"gives-up", 100, http.StatusBadGateway, http.StatusBadGateway, requestAttempts},
		{"no-retry-on-404", 100, http.StatusNotFound, http.StatusNotFound, 1},
		{"no-retry-on-401", 100, http.StatusUnauthorized, http.StatusUnauthorized, 1},
		{"no-retry-on-403", 100, http.StatusForbidden, http.StatusForbidden, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(calls.Add(1)) <= tt.fails {
					w.WriteHeader(tt.failStatus)
					return
				}
				fmt.Fprint(w, "ok")
			}))
			defer srv.Close()
			var retries atomic.Int32
			obs := &observer{retry: func(string, int, string) { retries.Add(1) }}
			c := &http.Client{Transport: newTransport(http.DefaultTransport, obs)}
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || calls.Load() != tt.wantCalls || retries.Load() != tt.wantCalls-1 {
				t.Errorf("status %d after %d calls and %d retry notices; want %d after %d", resp.StatusCode, calls.Load(), retries.Load(), tt.wantStatus, tt.wantCalls)
			}
			if code := tt.failStatus; code == 401 || code == 403 || code == 404 {
				host := strings.TrimPrefix(srv.URL, "http://")
				if got := obs.lastStatus(host); got != code {
					t.Errorf("observer saw %d for %s, want %d", got, host, code)
				}
			}
		})
	}
}

func TestRetryTransportDownIsQuick(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := &http.Client{Transport: newTransport(http.DefaultTransport, &observer{})}
	begin := time.Now()
	_, err = c.Get("http://" + addr + "/v2/")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want connection refused", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("giving up on a refused connection took %s", took)
	}
}

func TestStallBody(t *testing.T) {
	old := stallTimeout
	stallTimeout = 100 * time.Millisecond
	defer func() { stallTimeout = old }()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &http.Client{Transport: newTransport(http.DefaultTransport, &observer{})}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, errStalled) {
		t.Fatalf("reading a stalled body: %v, want errStalled", err)
	}
}

func TestHostDir(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{
		filepath.Join(a, "registry.example.com"),
		filepath.Join(b, "registry.example.com"),
		filepath.Join(b, "localhost_5000_"),
		filepath.Join(b, "_default"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	o := RegistryOptions{HostsDirs: []string{a, b}}
	tests := []struct{ host, want string }{
		{"registry.example.com", filepath.Join(a, "registry.example.com")},
		{"localhost:5000", filepath.Join(b, "localhost_5000_")},
		{"other.example.com", filepath.Join(b, "_default")},
	}
	for _, tt := range tests {
		got, err := o.hostDir(tt.host)
		if err != nil || got != tt.want {
			t.Errorf("hostDir(%q) = %q, %v; want %q", tt.host, got, err, tt.want)
		}
	}
	if got, err := (&RegistryOptions{HostsDirs: []string{a}}).hostDir("other.example.com"); got != "" && !strings.HasPrefix(got, "/etc/") || err != nil {
		t.Errorf("hostDir without a match = %q, %v; want none", got, err)
	}
}

func TestInsecure(t *testing.T) {
	o := RegistryOptions{Insecure: []string{"reg.example.com:5000", "http://other.example.com/", "bare.example.com"}}
	tests := []struct {
		host string
		want bool
	}{
		{"reg.example.com:5000", true},
		{"reg.example.com", false},
		{"other.example.com", true},
		{"bare.example.com:443", true},
		{"bare.example.com:5000", false},
		{"docker.io", false},
	}
	for _, tt := range tests {
		if got := o.insecure(tt.host); got != tt.want {
			t.Errorf("insecure(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestNormalizeRegistry(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{in: "localhost:5000", want: "localhost:5000"},
		{in: "https://registry.example.com/", want: "registry.example.com"},
		{in: "https://index.docker.io/v1/", want: "docker.io"},
		{in: "docker.io", want: "docker.io"},
		{in: "", want: "docker.io"},
		{in: "index.docker.io", want: "docker.io"},
		{in: "registry-1.docker.io", want: "docker.io"},
		{in: "https://", wantErr: "invalid registry"},
		{in: "registry.example.com/repo", wantErr: "invalid registry"},
	}
	for _, tt := range tests {
		got, err := NormalizeRegistry(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NormalizeRegistry(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeRegistry(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if authKey("registry-1.docker.io") != dockerHubKey || authKey("docker.io") != dockerHubKey || authKey("r.example.com") != "r.example.com" {
		t.Error("authKey does not map Docker Hub to its config.json key")
	}
}

func writeConfig(t *testing.T, cfg any) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCredentials(t *testing.T) {
	dir := writeConfig(t, map[string]any{"auths": map[string]any{
		"r.example.com":               map[string]string{"auth": "dXNlcjpwYXNz"}, // user:pass
		"https://legacy.example.com/": map[string]string{"auth": "bGVnYWN5OnB3"}, // legacy:pw
		dockerHubKey:                  map[string]string{"identitytoken": "tok"},
	}})
	o := RegistryOptions{DockerConfig: dir}
	creds, err := o.credentials()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, user, secret string }{
		{"r.example.com", "user", "pass"},
		{"legacy.example.com", "legacy", "pw"},
		{"registry-1.docker.io", "", "tok"},
		{"unknown.example.com", "", ""},
	}
	for _, tt := range tests {
		u, s, err := creds(tt.host)
		if err != nil || u != tt.user || s != tt.secret {
			t.Errorf("credentials(%q) = %q, %q, %v; want %q, %q", tt.host, u, s, err, tt.user, tt.secret)
		}
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "config.json"), []byte("{not json"), 0o600)
	if _, err := (&RegistryOptions{DockerConfig: bad}).credentials(); err == nil || !strings.Contains(err.Error(), "Docker config") {
		t.Errorf("a broken config.json gave %v, want an error naming it", err)
	}
}

func TestLoginLogout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	ctx := context.Background()
	_, err := Login(ctx, LoginOptions{Registry: host, Username: "user", Password: "wrong", RegistryOptions: RegistryOptions{DockerConfig: dir}})
	if !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("login with a wrong password: %v, want ErrLoginFailed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		t.Fatal("a failed login wrote config.json")
	}
	file, err := Login(ctx, LoginOptions{Registry: host, Username: "user", Password: "secret", RegistryOptions: RegistryOptions{DockerConfig: dir}})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), host) || !strings.Contains(string(b), "dXNlcjpzZWNyZXQ=") {
		t.Fatalf("config.json after login: %s", b)
	}
	had, err := Logout(host, RegistryOptions{DockerConfig: dir})
	if err != nil || !had {
		t.Fatalf("logout = %v, %v", had, err)
	}
	if b, _ := os.ReadFile(file); strings.Contains(string(b), host) {
		t.Fatalf("config.json after logout: %s", b)
	}
	if had, err := Logout(host, RegistryOptions{DockerConfig: dir}); err != nil || had {
		t.Fatalf("second logout = %v, %v; want nothing to remove", had, err)
	}
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "r.example.com/x:1", "linux/amd64")
	a := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("a"), Size: 2048}
	b := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("b"), Size: 10}
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 5}
	p.layer(a, false)
	p.layer(b, true)
	p.downloading(cfg, 0) // not a layer: not shown
	p.downloading(a, 0)
	p.add(a, 1024, time.Millisecond)
	p.add(a, 1024, time.Millisecond) // no line per chunk
	p.downloaded(a)
	p.extracting(a)
	p.retry("r.example.com", 2, "500 Internal Server Error")
	p.pulled(digest.FromString("m"), time.Second)
	p.finish()
	sa, sb := a.Digest.Encoded()[:12], b.Digest.Encoded()[:12]
	want := []string{
		"pulling r.example.com/x:1 (linux/amd64)",
		"layer " + sa + " 2KiB: waiting",
		"layer " + sb + " 10B: already exists",
		"layer " + sa + ": downloading",
		"layer " + sa + ": downloaded 2KiB in",
		"layer " + sa + ": extracting",
		"retrying r.example.com (attempt 2 of 4): 500 Internal Server Error",
		"pulled r.example.com/x:1 " + digest.FromString("m").String() + ": 2 layers, 2KiB downloaded in 1s",
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	silent := newProgress(nil, "x", "linux/amd64")
	silent.layer(a, false)
	silent.downloading(a, 0)
	silent.pulled(a.Digest, 0)
	silent.finish()
}

func TestBlobReader(t *testing.T) {
	data := []byte("layer content")
	good := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	bad := good
	bad.Digest = digest.FromString("something else")
	p := &puller{corrupt: map[digest.Digest]ocispec.Descriptor{}, refs: map[string]ocispec.Descriptor{}, prog: newProgress(nil, "", "")}
	ctx := context.Background()

	rc := p.track(ctx, good, io.NopCloser(bytes.NewReader(data)))
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading a good blob: %q, %v", got, err)
	}
	rc = p.track(ctx, bad, io.NopCloser(bytes.NewReader(data)))
	_, err := io.ReadAll(rc)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad.Digest.String()) {
		t.Fatalf("reading a corrupt blob: %v, want ErrCorrupt naming it", err)
	}
	if _, ok := p.corrupt[bad.Digest]; !ok {
		t.Error("the corrupt blob was not recorded for discarding")
	}
	// A resumed download cannot be hashed here; containerd verifies it.
	rs := p.track(ctx, bad, readSeekCloser{bytes.NewReader(data)}).(io.ReadSeeker)
	if _, err := rs.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rs); err != nil || string(got) != string(data[4:]) {
		t.Fatalf("reading a resumed blob: %q, %v", got, err)
	}
}

type readSeekCloser struct{ *bytes.Reader }

func (readSeekCloser) Close() error { return nil }

// flaky fails its first read with a connection reset, as a cut connection
// does, and serves from the offset it is sought to afterwards.
type flaky struct {
	data  []byte
	off   int64
	fails int
	seeks int
}

func (f *flaky) Read(p []byte) (int, error) {
	if f.fails > 0 && f.off > 0 {
		f.fails--
		return 0, syscall.ECONNRESET
	}
	if f.off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 3)], f.data[f.off:])
	f.off += int64(n)
	return n, nil
}

func (f *flaky) Seek(off int64, _ int) (int64, error) { f.seeks++; f.off = off; return off, nil }
func (f *flaky) Close() error                         { return nil }

func TestBlobReaderResumesAfterReset(t *testing.T) {
	data := []byte("0123456789abcdef")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	p := &puller{corrupt: map[digest.Digest]ocispec.Descriptor{}, refs: map[string]ocispec.Descriptor{}, prog: newProgress(nil, "", "")}
	f := &flaky{data: data, fails: 2}
	got, err := io.ReadAll(p.track(context.Background(), desc, f))
	if err != nil || string(got) != string(data) {
		t.Fatalf("read %q, %v; want the whole blob after resets", got, err)
	}
	if f.seeks < 2 {
		t.Errorf("the reader was sought %d times; want a reconnect per reset", f.seeks)
	}
}

func TestExplain(t *testing.T) {
	p := &puller{name: "r.example.com/team/app:1", obs: &observer{}, corrupt: map[digest.Digest]ocispec.Descriptor{}, refs: map[string]ocispec.Descriptor{}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want []string
	}{
		{"not-found", context.Background(), fmt.Errorf("failed to resolve reference %q: %w", p.name, errdefs.ErrNotFound), []string{"not found", "check the name and tag"}},
		{"401", context.Background(), fmt.Errorf("failed to resolve: %w", remoteerrors.ErrUnexpectedStatus{StatusCode: 401, Status: "401 Unauthorized"}), []string{"401 Unauthorized", "sbxrun login r.example.com"}},
		{"403", context.Background(), fmt.Errorf("failed to resolve: %w", remoteerrors.ErrUnexpectedStatus{StatusCode: 403, Status: "403 Forbidden"}), []string{"403 Forbidden", "pull permission"}},
		{"tls", context.Background(), fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), []string{"TLS certificate", "/etc/containerd/certs.d/r.example.com/hosts.toml", "--insecure-registry r.example.com"}},
		{"tls-at-registry", context.Background(), fmt.Errorf("resolve: %w", &url.Error{Op: "Get", URL: "https://r.example.com/v2/", Err: x509.UnknownAuthorityError{}}), []string{"--insecure-registry r.example.com"}},
		{"tls-at-mirror", context.Background(), fmt.Errorf("resolve: %w", &url.Error{Op: "Get", URL: "https://mirror.example.com:5000/v2/team/app/manifests/1", Err: x509.UnknownAuthorityError{}}), []string{"TLS certificate of mirror.example.com:5000", "registry r.example.com", "ca = ", "--insecure-registry mirror.example.com:5000"}},
		{"http-at-mirror", context.Background(), fmt.Errorf("resolve: %w", &url.Error{Op: "Get", URL: "https://mirror.example.com:5000/v2/", Err: errors.New("http: server gave HTTP response to HTTPS client")}), []string{"mirror.example.com:5000", "plain HTTP", "http://mirror.example.com:5000", "--insecure-registry mirror.example.com:5000"}},
		{"refused", context.Background(), fmt.Errorf("dial: %w", syscall.ECONNREFUSED), []string{"unreachable", "sbxrun load -i FILE"}},
		{"interrupted", cancelled, context.Canceled, []string{"interrupted", "resume"}},
		{"corrupt", context.Background(), fmt.Errorf("copy: %w", &corruptError{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("x")}, got: digest.FromString("y")}), []string{"is corrupt", "no image was created"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.explain(tt.ctx, tt.err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("explain(%v) = %q, lacks %q", tt.err, err, w)
				}
			}
		})
	}
}

func TestRefName(t *testing.T) {
	tests := map[string]string{
		"latest":                     "",
		"v1":                         "",
		"ghcr.io/sbxrun/base:latest": "ghcr.io/sbxrun/base:latest",
		"alpine:3":                   "docker.io/library/alpine:3",
		"Not Valid/x":                "",
	}
	for in, want := range tests {
		if got := refName(in); got != want {
			t.Errorf("refName(%q) = %q, want %q", in, got, want)
		}
	}
}
