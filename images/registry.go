package images

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/containerd/v2/core/transfer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RegistryOptions say how sbxrun reaches registries: where hosts.toml files
// live, which registries may be reached without TLS verification, and where
// the Docker config holding credentials is. The zero value uses the
// defaults.
type RegistryOptions struct {
	// HostsDirs are searched, in order and before DefaultHostsDirs, for
	// HOST[_PORT_]/hosts.toml in containerd's certs.d layout (mirrors, CA
	// certificates, client certificates).
	HostsDirs []string
	// Insecure lists registries (host or host:port) reached over HTTPS
	// without certificate verification, falling back to plain HTTP.
	// An entry covers the endpoints at that host only: the mirrors a
	// hosts.toml gives it keep their own TLS settings. localhost and
	// loopback addresses need no entry.
	Insecure []string
	// DockerConfig is the directory of config.json; "" is $DOCKER_CONFIG,
	// else ~/.docker.
	DockerConfig string
}

// Retry policy for registry requests: 5xx answers and resets are retried
// with exponential backoff, timeouts once; a registry that refuses
// connections is given up on within a few seconds, one that accepts and
// never answers within about a minute (two handshake or header timeouts).
const (
	requestAttempts = 4
	backoffBase     = 250 * time.Millisecond
	backoffMax      = 2 * time.Second
	dialTimeout     = 10 * time.Second
	headerTimeout   = 20 * time.Second
	tlsTimeout      = 10 * time.Second
)

// stallTimeout ends a response body that delivered nothing for this long;
// the fetcher then resumes it with a range request. A variable for tests.
var stallTimeout = 30 * time.Second

// DefaultHostsDirs are searched after RegistryOptions.HostsDirs:
// ~/.config/containerd/certs.d ($XDG_CONFIG_HOME), /etc/containerd/certs.d
// and /etc/docker/certs.d.
func DefaultHostsDirs() []string {
	var dirs []string
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfg = filepath.Join(home, ".config")
		}
	}
	if cfg != "" {
		dirs = append(dirs, filepath.Join(cfg, "containerd", "certs.d"))
	}
	return append(dirs, "/etc/containerd/certs.d", "/etc/docker/certs.d")
}

func (o *RegistryOptions) hostsDirs() []string {
	return append(append([]string{}, o.HostsDirs...), DefaultHostsDirs()...)
}

// hostDir finds the hosts directory of host: its own directory in the first
// root that has one, else the first _default directory.
func (o *RegistryOptions) hostDir(host string) (string, error) {
	names := []string{host}
	if i := strings.LastIndex(host, ":"); i > 0 {
		names = []string{host[:i] + "_" + host[i+1:] + "_", host}
	}
	roots := o.hostsDirs()
	for _, pass := range [][]string{names, {"_default"}} {
		for _, root := range roots {
			for _, n := range pass {
				p := filepath.Join(root, n)
				fi, err := os.Stat(p)
				if err == nil && fi.IsDir() {
					return p, nil
				}
				if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
					return "", fmt.Errorf("reading hosts directory %q: %w", p, err)
				}
			}
		}
	}
	return "", nil
}

func (o *RegistryOptions) insecure(host string) bool {
	for _, h := range o.Insecure {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
		if h == host {
			return true
		}
		// A bare host names the registry on its default port only, as
		// Docker's --insecure-registry does.
		if name, port, err := net.SplitHostPort(host); err == nil && h == name && port == "443" {
			return true
		}
	}
	return false
}

// registryHosts configures the endpoints of a registry from hosts.toml, the
// insecure list and credentials; every HTTP client retries and times out as
// described above and reports to obs.
//
// --insecure-registry HOST (Docker's meaning: HTTPS without verification
// first, plain HTTP when the registry does not speak TLS) applies to the
// endpoints at HOST: the registry itself (hosts.toml's server, else HOST)
// when HOST is the one pulled from, and a mirror only when the mirror's own
// host is listed. A loopback registry (localhost, 127.0.0.0/8, ::1) without
// a hosts.toml is treated as listed, on any port. Every other mirror keeps exactly its hosts.toml TLS
// settings (skip_verify, ca, client). containerd's DefaultTLS and
// DefaultScheme would apply to every endpoint of the hosts.toml, so the
// endpoints are configured twice, without and with them, and each is taken
// from the configuration it is due.
func (o *RegistryOptions) registryHosts(ctx context.Context, creds func(string) (string, string, error), obs *observer) docker.RegistryHosts {
	return func(host string) ([]docker.RegistryHost, error) {
		configured := false // a hosts.toml directory speaks for host
		ho := config.HostOptions{
			HostDir: func(h string) (string, error) {
				dir, err := o.hostDir(h)
				configured = configured || dir != ""
				return dir, err
			},
			Credentials: creds,
			UpdateClient: func(c *http.Client) error {
				c.Transport = newTransport(c.Transport, obs)
				return nil
			},
		}
		hosts, err := config.ConfigureHosts(ctx, ho)(host)
		if err != nil {
			return nil, fmt.Errorf("configuring registry %q from its hosts.toml: %w", host, err)
		}
		insecure := make([]bool, len(hosts))
		anyInsecure := false
		for i, h := range hosts {
			// The last endpoint is the registry itself; the others are mirrors.
			// A loopback registry is insecure without a flag, as Docker's
			// built-in 127.0.0.0/8 entry makes it: containerd alone tries
			// only HTTPS when no port or 443 is named, so `login localhost`
			// never reached a plain-HTTP registry on port 80. A registry
			// with a hosts.toml keeps the TLS settings written there.
			last := i == len(hosts)-1
			insecure[i] = o.insecure(h.Host) || (last && (o.insecure(host) || !configured && docker.IsLocalhost(host)))
			anyInsecure = anyInsecure || insecure[i]
		}
		if !anyInsecure {
			return hosts, nil
		}
		ho.DefaultTLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by --insecure-registry
		ho.DefaultScheme = "http"
		ho.UpdateClient = func(c *http.Client) error {
			rt := newTransport(c.Transport, obs).(*retryTransport)
			rt.plainFallback = true
			c.Transport = rt
			return nil
		}
		loose, err := config.ConfigureHosts(ctx, ho)(host)
		if err != nil {
			return nil, fmt.Errorf("configuring registry %q from its hosts.toml: %w", host, err)
		}
		if len(loose) != len(hosts) {
			return nil, fmt.Errorf("configuring registry %q: its hosts.toml changed while it was read; try again", host)
		}
		for i := range hosts {
			if insecure[i] && loose[i].Host == hosts[i].Host {
				hosts[i] = loose[i]
			}
		}
		return hosts, nil
	}
}

// resolver is a containerd docker resolver for these options.
func (o *RegistryOptions) resolver(ctx context.Context, obs *observer) (remotes.Resolver, error) {
	creds, err := o.credentials()
	if err != nil {
		return nil, err
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: o.registryHosts(ctx, creds, obs)}), nil
}

// observer records what the HTTP layer saw, for error messages and tests of
// behaviour: the last refusal status per host and retry notices.
type observer struct {
	mu     sync.Mutex
	status map[string]int
	// retry, when set, is told about each retried request.
	retry func(host string, attempt int, why string)
}

func (ob *observer) sawStatus(host string, code int) {
	if ob == nil {
		return
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.status == nil {
		ob.status = map[string]int{}
	}
	ob.status[host] = code
}

// lastStatus is the last 401, 403 or 404 host answered, or 0.
func (ob *observer) lastStatus(host string) int {
	if ob == nil {
		return 0
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.status[host]
}

func (ob *observer) retried(host string, attempt int, why string) {
	if ob != nil && ob.retry != nil {
		ob.retry(host, attempt, why)
	}
}

// retryTransport retries idempotent registry requests on 5xx, 429, resets
// and timeouts with exponential backoff and jitter, bounds dialing and
// waiting for headers, and ends bodies that stall.
type retryTransport struct {
	next http.RoundTripper
	obs  *observer
	// plainFallback is set below containerd's HTTP fallback, which retries
	// an HTTPS request refused on the default port as plain HTTP (port 80):
	// such a refusal goes up at once instead of after the backoff.
	plainFallback bool
}

func newTransport(next http.RoundTripper, obs *observer) http.RoundTripper {
	if _, ok := next.(*retryTransport); ok {
		return next
	}
	if t, ok := next.(*http.Transport); ok {
		t = t.Clone()
		t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = headerTimeout
		t.TLSHandshakeTimeout = tlsTimeout
		t.MaxIdleConnsPerHost = 16
		next = t
	}
	return &retryTransport{next: next, obs: obs}
}

// retryableStatus reports whether a registry answer is worth another try.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryableError reports whether a transport error may go away on retry.
func retryableError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, errStalled) || (errors.As(err, &ne) && ne.Timeout())
}

func backoff(attempt int) time.Duration {
	d := backoffBase << attempt
	if d > backoffMax {
		d = backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	canRetry := req.Body == nil || req.GetBody != nil
	timeouts := 0
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.Body = body
		}
		resp, err, retry := t.try(r, canRetry && attempt+1 < requestAttempts)
		var ne net.Error
		if retry && errors.As(err, &ne) && ne.Timeout() {
			// A registry that accepts and never answers is given one more
			// chance, not four: each try costs a whole timeout.
			timeouts++
			retry = timeouts < 2
		}
		if !retry {
			return resp, err
		}
		wait := backoff(attempt)
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			why = resp.Status
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 && s <= 10 {
				wait = time.Duration(s) * time.Second
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t.obs.retried(req.URL.Host, attempt+2, why)
		if err := sleepCtx(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

// try sends one attempt; retry says whether its outcome should be retried
// (only when mayRetry).
func (t *retryTransport) try(req *http.Request, mayRetry bool) (_ *http.Response, _ error, retry bool) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		if t.plainFallback && req.URL.Scheme == "https" && req.URL.Port() == "" && errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err, false
		}
		return nil, err, mayRetry && retryableError(err)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		t.obs.sawStatus(req.URL.Host, resp.StatusCode)
	}
	resp.Body = newStallBody(resp.Body, cancel)
	return resp, nil, mayRetry && retryableStatus(resp.StatusCode)
}

// errStalled ends a response body that delivered nothing for stallTimeout.
var errStalled = errors.New("registry stopped sending data")

// stallBody cancels its request when no byte arrives for stallTimeout.
type stallBody struct {
	io.ReadCloser
	timer  *time.Timer
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	fired  bool
}

func newStallBody(rc io.ReadCloser, cancel context.CancelCauseFunc) io.ReadCloser {
	b := &stallBody{ReadCloser: rc, cancel: cancel}
	b.timer = time.AfterFunc(stallTimeout, func() {
		b.mu.Lock()
		b.fired = true
		b.mu.Unlock()
		cancel(errStalled)
	})
	return b
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(stallTimeout)
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		fired := b.fired
		b.mu.Unlock()
		if fired {
			err = errStalled
		}
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// trackingResolver wraps the fetcher of a resolver with byte counting,
// resumption after broken connections and digest verification.
type trackingResolver struct {
	remotes.Resolver
	p *puller
}

// SetOptions passes containerd's download settings to the wrapped resolver.
func (r trackingResolver) SetOptions(opts ...transfer.ImageResolverOption) {
	if ro, ok := r.Resolver.(remotes.ResolverWithOptions); ok {
		ro.SetOptions(opts...)
	}
}

func (r trackingResolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	f, err := r.Resolver.Fetcher(ctx, ref)
	if err != nil {
		return nil, err
	}
	return trackingFetcher{f: f, p: r.p}, nil
}

type trackingFetcher struct {
	f remotes.Fetcher
	p *puller
}

func (f trackingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := f.f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return f.p.track(ctx, desc, rc), nil
}
