package images

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
)

// TestInsecureRegistryHosts checks that --insecure-registry HOST loosens TLS
// for the endpoints at HOST only: a mirror from hosts.toml keeps its own
// skip_verify and ca, and gets no plain-HTTP fallback, while localhost keeps
// its built-in leniency. Each endpoint is both inspected and dialled: the
// servers are httptest's, whose certificate no system CA trusts.
func TestInsecureRegistryHosts(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	upTLS, mirTLS := quietServer(t, ok, true), quietServer(t, ok, true)
	mirHTTP, plain := quietServer(t, ok, false), quietServer(t, ok, false)

	certs := t.TempDir()
	testCA := filepath.Join(certs, "httptest.crt")
	writePEM(t, testCA, mirTLS.Certificate().Raw)
	otherCA := filepath.Join(certs, "other.crt")
	writePEM(t, otherCA, selfSigned(t))
	repl := strings.NewReplacer(
		"{UP}", strings.TrimPrefix(upTLS.URL, "https://"),
		"{MIR}", strings.TrimPrefix(mirTLS.URL, "https://"),
		"{MIRHTTP}", strings.TrimPrefix(mirHTTP.URL, "http://"),
		"{PLAIN}", strings.TrimPrefix(plain.URL, "http://"),
		"{TESTCA}", testCA, "{OTHERCA}", otherCA,
	)

	const (
		reached = ""  // the endpoint answered
		skip    = "-" // not dialled (it does not exist)
	)
	tests := []struct {
		name     string
		pull     string   // the registry pulled from
		toml     string   // its hosts.toml, "" for none
		insecure []string // --insecure-registry
		// wantMirror and wantUp: reached, skip or part of the error.
		wantMirror, wantUp string
		// mirrorSkip and upSkip: InsecureSkipVerify of each endpoint's TLS
		// configuration (checked where containerd's HTTP fallback does
		// not hide it).
		mirrorSkip, upSkip bool
	}{
		{
			name: "flag-on-upstream-mirror-verifies", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
			insecure:   []string{"registry.example.com"},
			wantMirror: "x509:", wantUp: reached, mirrorSkip: false, upSkip: true,
		},
		{
			name: "mirror-skip-verify-upstream-verifies", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n  skip_verify = true\n",
			wantMirror: reached, wantUp: "x509:", mirrorSkip: true, upSkip: false,
		},
		{
			name: "both-loosened", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n  skip_verify = true\n",
			insecure:   []string{"registry.example.com"},
			wantMirror: reached, wantUp: reached, mirrorSkip: true, upSkip: true,
		},
		{
			name: "neither-loosened", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n",
			wantMirror: "x509:", wantUp: "x509:",
		},
		{
			name: "flag-on-upstream-mirror-ca-of-another-ca", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n  ca = \"{OTHERCA}\"\n",
			insecure:   []string{"registry.example.com"},
			wantMirror: "x509:", wantUp: reached, mirrorSkip: false, upSkip: true,
		},
		{
			name: "flag-on-upstream-mirror-ca-of-its-ca", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n  ca = \"{TESTCA}\"\n",
			insecure:   []string{"registry.example.com"},
			wantMirror: reached, wantUp: reached, mirrorSkip: false, upSkip: true,
		},
		{
			name: "flag-on-mirror-host-itself", pull: "registry.example.com",
			toml:       "server = \"https://{UP}\"\n[host.\"https://{MIR}\"]\n",
			insecure:   []string{"{MIR}"},
			wantMirror: reached, wantUp: "x509:", mirrorSkip: true, upSkip: false,
		},
		{
			// The upstream gets HTTPS-then-HTTP; the mirror must not.
			name: "flag-on-upstream-mirror-speaks-plain-http", pull: "registry.example.com",
			toml:       "[host.\"https://{MIRHTTP}\"]\n",
			insecure:   []string{"registry.example.com"},
			wantMirror: "HTTP response to HTTPS client", wantUp: skip,
		},
		{name: "localhost-tls-needs-no-flag", pull: "{UP}", wantUp: reached},
		{name: "localhost-plain-http-needs-no-flag", pull: "{PLAIN}", wantUp: reached},
		{name: "localhost-with-hosts-toml-verifies", pull: "{UP}", toml: "server = \"https://{UP}\"\n", wantUp: "x509:", upSkip: false},
		{name: "other-registry-without-flag-verifies", pull: "registry.example.com", wantUp: skip, upSkip: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pull := repl.Replace(tt.pull)
			o := RegistryOptions{HostsDirs: []string{t.TempDir()}}
			for _, h := range tt.insecure {
				o.Insecure = append(o.Insecure, repl.Replace(h))
			}
			if tt.toml != "" {
				dir := filepath.Join(o.HostsDirs[0], pull)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(repl.Replace(tt.toml)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			hosts, err := o.registryHosts(ctx, nil, &observer{})(pull)
			if err != nil {
				t.Fatalf("registryHosts(%q): %v", pull, err)
			}
			wantLen := 1
			if tt.toml != "" && strings.Contains(tt.toml, "[host.") {
				wantLen = 2
			}
			if len(hosts) != wantLen {
				t.Fatalf("registryHosts(%q) gave %d endpoints, want %d: %+v", pull, len(hosts), wantLen, hosts)
			}
			up := hosts[len(hosts)-1]
			if tt.toml == "" && up.Host != pull {
				t.Errorf("upstream endpoint %q, want %q", up.Host, pull)
			}
			check := func(what string, rh docker.RegistryHost, want string, wantSkip bool) {
				t.Helper()
				if cfg, ok := tlsOf(rh); ok && cfg.InsecureSkipVerify != wantSkip {
					t.Errorf("%s %s://%s: InsecureSkipVerify = %v, want %v", what, rh.Scheme, rh.Host, cfg.InsecureSkipVerify, wantSkip)
				}
				if want == skip {
					return
				}
				err := probe(ctx, rh)
				switch {
				case want == reached && err != nil:
					t.Errorf("%s %s://%s: %v, want it reached", what, rh.Scheme, rh.Host, err)
				case want != reached && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s %s://%s: %v, want an error with %q", what, rh.Scheme, rh.Host, err, want)
				}
			}
			if wantLen == 2 {
				check("mirror", hosts[0], tt.wantMirror, tt.mirrorSkip)
			}
			check("upstream", up, tt.wantUp, tt.upSkip)
		})
	}
}

// quietServer is an httptest server (HTTPS with httptest's certificate when
// tls) that does not log the handshakes the test means to fail.
func quietServer(t *testing.T, h http.Handler, tls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// tlsOf is the TLS configuration of an endpoint's client when its transport
// is sbxrun's retry transport over an *http.Transport; ok is false behind
// containerd's HTTP fallback, which does not expose what it wraps.
func tlsOf(rh docker.RegistryHost) (cfg *tls.Config, ok bool) {
	rt, isRetry := rh.Client.Transport.(*retryTransport)
	if !isRetry {
		return nil, false
	}
	tr, isHTTP := rt.next.(*http.Transport)
	if !isHTTP || tr.TLSClientConfig == nil {
		return &tls.Config{}, isHTTP
	}
	return tr.TLSClientConfig, true
}

// probe asks an endpoint's /v2/ through its configured client.
func probe(ctx context.Context, rh docker.RegistryHost) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rh.Scheme+"://"+rh.Host+rh.Path+"/", nil)
	if err != nil {
		return err
	}
	resp, err := rh.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// selfSigned is the DER of a fresh CA certificate that signed nothing the
// test servers present.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sbxrun other test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// refusingTransport refuses every connection, counting the attempts.
type refusingTransport struct{ calls int }

func (r *refusingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.calls++
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// TestPlainFallbackRefusedAtOnce: below containerd's HTTP fallback (a
// loopback registry, or one named by --insecure-registry), an HTTPS request
// refused on the default port goes up at once, so the fallback to plain
// HTTP on port 80 does not wait out the backoff of a registry that is down;
// a refusal on a named port, which the fallback does not retry, and any
// refusal of a registry without the fallback, are still retried.
func TestPlainFallbackRefusedAtOnce(t *testing.T) {
	tests := []struct {
		url      string
		fallback bool
		want     int
	}{
		{"https://127.0.0.2/v2/", true, 1},
		{"https://127.0.0.2:5000/v2/", true, requestAttempts},
		{"http://127.0.0.2/v2/", true, requestAttempts},
		{"https://127.0.0.2/v2/", false, requestAttempts},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-fallback-%v", tt.url, tt.fallback), func(t *testing.T) {
			t.Parallel()
			next := &refusingTransport{}
			rt := newTransport(next, &observer{}).(*retryTransport)
			rt.plainFallback = tt.fallback
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rt.RoundTrip(req); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("%v, want the refusal", err)
			}
			if next.calls != tt.want {
				t.Errorf("%d attempts, want %d", next.calls, tt.want)
			}
		})
	}
}
