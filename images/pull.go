package images

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	dref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels on the lease that holds a pull's downloads until the image exists.
const (
	// LabelPull names the image a lease belongs to.
	LabelPull = "sbxrun.pull"
	// LabelPullPID is the pid of the sbxrun that pulls.
	LabelPullPID = "sbxrun.pull.pid"
)

// pullLeaseExpiry keeps an interrupted pull's partial layers for the next
// pull to resume.
const pullLeaseExpiry = 24 * time.Hour

// defaultParallel is how many layers are downloaded at once.
const defaultParallel = 4

// PullOptions configure Pull. The zero value pulls for the host platform
// with the default hosts directories and Docker credentials, silently.
type PullOptions struct {
	// Registry says how to reach the registry.
	Registry RegistryOptions
	// Platform is os/arch[/variant]; "" is the host's.
	Platform string
	// Snapshotter to unpack into; "" is containerd's default.
	Snapshotter string
	// Progress receives per-layer progress: bars when it is a terminal,
	// one line per layer state change otherwise; nil prints nothing.
	Progress io.Writer
	// Parallel is the number of layers downloaded at once (default 4).
	Parallel int
}

// ErrCorrupt is matched (errors.Is) by the error of a pull that received
// a blob whose content does not match its digest.
var ErrCorrupt = errors.New("blob does not match its digest")

// ErrInterrupted is matched by the error of a pull that was cancelled.
var ErrInterrupted = errors.New("pull interrupted")

// corruptError names the blob that failed verification.
type corruptError struct {
	desc ocispec.Descriptor
	got  digest.Digest
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("%s %s is corrupt: its content hashes to %s", kind(e.desc), e.desc.Digest, e.got)
}

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

// Pull fetches ref from its registry and unpacks it. Layers are downloaded
// in parallel straight into containerd's content store and unpacked as they
// arrive; a pull that is interrupted leaves its partial layers for the next
// pull to resume, and a blob that does not match its digest is discarded.
func Pull(ctx context.Context, c *client.Client, ref string, o PullOptions) (client.Image, error) {
	name, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	matcher := platforms.Default()
	platform := platforms.DefaultSpec()
	if o.Platform != "" {
		p, err := platforms.Parse(o.Platform)
		if err != nil {
			return nil, fmt.Errorf("invalid --platform %q: use os/arch[/variant], e.g. linux/amd64 or linux/arm64", o.Platform)
		}
		platform = platforms.Normalize(p)
		matcher = platforms.Only(platform)
	}
	if o.Parallel <= 0 {
		o.Parallel = defaultParallel
	}
	p := &puller{c: c, name: name, corrupt: map[digest.Digest]ocispec.Descriptor{}, refs: map[string]ocispec.Descriptor{}}
	p.prog = newProgress(o.Progress, name, platforms.Format(platform))
	p.obs = &observer{retry: p.prog.retry}
	inner, err := o.Registry.resolver(ctx, p.obs)
	if err != nil {
		p.prog.finish()
		return nil, err
	}

	ctx, release, err := p.lease(ctx)
	if err != nil {
		p.prog.finish()
		return nil, err
	}
	opts := []client.RemoteOpt{
		client.WithPullUnpack,
		client.WithResolver(trackingResolver{Resolver: inner, p: p}),
		client.WithPlatformMatcher(matcher),
		client.WithMaxConcurrentDownloads(o.Parallel),
		client.WithImageHandlerWrapper(p.wrapHandler),
		client.WithUnpackOpts([]client.UnpackOpt{client.WithUnpackApplyOpts(p.applyOpt)}),
	}
	if o.Snapshotter != "" {
		opts = append(opts, client.WithPullSnapshotter(o.Snapshotter))
	}
	start := time.Now()
	img, err := c.Pull(ctx, name, opts...)
	if err != nil {
		err = p.explain(ctx, err)
		// Keep the lease (and with it the partial downloads) for a resume,
		// unless nothing worth keeping was fetched.
		p.mu.Lock()
		fetched := len(p.refs) > 0
		p.mu.Unlock()
		release(errors.Is(err, ErrCorrupt) || !fetched)
		p.prog.finish()
		return nil, err
	}
	release(true)
	p.clearStale(ctx)
	p.prog.pulled(img.Target().Digest, time.Since(start))
	p.prog.finish()
	return img, nil
}

// puller is the state of one Pull.
type puller struct {
	c    *client.Client
	name string
	prog *progress
	obs  *observer

	mu      sync.Mutex
	corrupt map[digest.Digest]ocispec.Descriptor
	// refs are the ingest refs of the blobs this pull fetched.
	refs map[string]ocispec.Descriptor
}

// lease holds what the pull downloads until the image record exists.
// release(true) deletes it; release(false) keeps it, with its partial
// downloads, for the next pull to resume (it expires in a day, and
// `sbxrun prune` or the next successful pull removes it).
func (p *puller) lease(ctx context.Context) (context.Context, func(drop bool), error) {
	ls := p.c.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(pullLeaseExpiry),
		leases.WithLabels(map[string]string{LabelPull: p.name, LabelPullPID: strconv.Itoa(os.Getpid())}))
	if err != nil {
		return ctx, nil, fmt.Errorf("creating a lease for pulling %q: %w", p.name, err)
	}
	return leases.WithLease(ctx, l.ID), func(drop bool) {
		if drop {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = ls.Delete(cctx, l)
		}
	}, nil
}

// clearStale deletes the leases of earlier pulls of the same image whose
// sbxrun is gone: the image now holds what they kept.
func (p *puller) clearStale(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ls := p.c.LeasesService()
	all, err := ls.List(ctx)
	if err != nil {
		return
	}
	for _, l := range all {
		if l.Labels[LabelPull] == p.name && !pidAlive(l.Labels[LabelPullPID]) {
			// Synchronously, so that the garbage collector also removes
			// what an interrupted unpack left before this pull returns.
			_ = ls.Delete(ctx, l, leases.SynchronousDelete)
		}
	}
}

// pidAlive reports whether the process with the decimal pid s runs.
func pidAlive(s string) bool {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// wrapHandler registers the layers of each manifest with the progress
// display as soon as the manifest is read, in image order.
func (p *puller) wrapHandler(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil || !images.IsManifestType(desc.MediaType) {
			return children, err
		}
		cs := p.c.ContentStore()
		for _, ch := range children {
			if !images.IsLayerType(ch.MediaType) {
				continue
			}
			_, ierr := cs.Info(ctx, ch.Digest)
			p.prog.layer(ch, ierr == nil)
		}
		return children, nil
	})
}

// applyOpt tells the progress display which layer is being unpacked.
func (p *puller) applyOpt(_ context.Context, desc ocispec.Descriptor, _ *diff.ApplyConfig) error {
	p.prog.extracting(desc)
	return nil
}

// track wraps a blob's body: it counts bytes for the progress display,
// resumes the download after a broken connection and checks the digest.
func (p *puller) track(ctx context.Context, desc ocispec.Descriptor, rc io.ReadCloser) io.ReadCloser {
	p.mu.Lock()
	p.refs[remotes.MakeRefKey(ctx, desc)] = desc
	p.mu.Unlock()
	b := &blobReader{ctx: ctx, rc: rc, desc: desc, p: p, last: time.Now()}
	if desc.Digest.Validate() == nil {
		b.h = desc.Digest.Algorithm().Hash()
	}
	p.prog.downloading(desc, 0)
	return b
}

func (p *puller) markCorrupt(desc ocispec.Descriptor) {
	p.mu.Lock()
	p.corrupt[desc.Digest] = desc
	p.mu.Unlock()
}

// blobReader is one blob's body as the content store reads it.
type blobReader struct {
	ctx  context.Context
	rc   io.ReadCloser
	desc ocispec.Descriptor
	p    *puller
	off  int64
	// h hashes the body from offset 0; nil once the download resumed
	// mid-blob (the content store still verifies the whole blob).
	h     hash.Hash
	fails int
	last  time.Time
}

func (b *blobReader) Read(buf []byte) (int, error) {
	for {
		n, err := b.rc.Read(buf)
		if n > 0 {
			if b.h != nil {
				b.h.Write(buf[:n])
			}
			b.off += int64(n)
			b.fails = 0
			now := time.Now()
			b.p.prog.add(b.desc, n, now.Sub(b.last))
			b.last = now
		}
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF):
			if b.h != nil && b.off == b.desc.Size {
				if got := digest.NewDigest(b.desc.Digest.Algorithm(), b.h); got != b.desc.Digest {
					b.p.markCorrupt(b.desc)
					b.p.prog.failed(b.desc, "corrupt")
					return n, &corruptError{desc: b.desc, got: got}
				}
			}
			b.p.prog.downloaded(b.desc)
			return n, err
		}
		if !b.resumable(err) {
			return n, err
		}
		b.fails++
		b.p.prog.retry("", b.fails+1, fmt.Sprintf("%s %s: %v", kind(b.desc), shortDigest(b.desc.Digest), err))
		if serr := sleepCtx(b.ctx, backoff(b.fails-1)); serr != nil {
			return n, serr
		}
		if serr := b.reopen(); serr != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resumable reports whether a failed body read is worth resuming.
func (b *blobReader) resumable(err error) bool {
	if b.fails >= requestAttempts || b.ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return false
	}
	if _, ok := b.rc.(io.Seeker); !ok {
		return false
	}
	var us remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &us) {
		return retryableStatus(us.StatusCode)
	}
	return !errdefs.IsNotFound(err) && !errors.Is(err, ErrCorrupt)
}

// reopen makes the next Read start a new request at the current offset:
// containerd's reader reconnects only when the offset changes.
func (b *blobReader) reopen() error {
	s := b.rc.(io.Seeker)
	other := int64(0)
	if b.off == 0 {
		other = 1
	}
	if _, err := s.Seek(other, io.SeekStart); err != nil {
		return err
	}
	_, err := s.Seek(b.off, io.SeekStart)
	return err
}

// Seek is how the content store resumes a partial download.
func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	s, ok := b.rc.(io.Seeker)
	if !ok {
		return 0, fmt.Errorf("seeking %s: %w", b.desc.Digest, errdefs.ErrNotImplemented)
	}
	n, err := s.Seek(offset, whence)
	if err != nil {
		return n, err
	}
	if n != b.off {
		b.off = n
		b.h = nil
		if n == 0 && b.desc.Digest.Validate() == nil {
			b.h = b.desc.Digest.Algorithm().Hash()
		}
		b.p.prog.downloading(b.desc, n)
	}
	return n, nil
}

func (b *blobReader) Close() error { return b.rc.Close() }

// explain turns a failed pull into one line that says what happened and
// what to do; it also discards ingests that failed verification.
func (p *puller) explain(ctx context.Context, err error) error {
	host := registryHost(p.name)
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: pulling %q stopped; run the same command again to resume, downloaded data is kept", ErrInterrupted, p.name)
	}
	if cerr := p.discardCorrupt(ctx, err); cerr != nil {
		return fmt.Errorf("pulling %q from %s: %w; the blob was discarded and no image was created: pull again, and if it persists the registry or a proxy in between is serving broken data", p.name, host, cerr)
	}
	var us remoteerrors.ErrUnexpectedStatus
	status := 0
	if errors.As(err, &us) {
		status = us.StatusCode
	}
	if status == 0 && errors.Is(err, docker.ErrInvalidAuthorization) {
		status = 401
	}
	if status == 0 {
		status = p.obs.lastStatus(endpointHost(err))
	}
	msg := err.Error()
	switch {
	case errdefs.IsNotFound(err) && strings.Contains(msg, "failed to resolve reference"):
		return fmt.Errorf("image %q not found: %s has no such repository or tag; check the name and tag (`sbxrun images` lists local images)", p.name, host)
	case status == 401:
		return fmt.Errorf("registry %s refused access to %q (401 Unauthorized): log in with `sbxrun login %s` (or check the credentials in ~/.docker/config.json)", host, p.name, host)
	case status == 403:
		return fmt.Errorf("registry %s denied access to %q (403 Forbidden): the account has no pull permission for it; log in as one that has with `sbxrun login %s`", host, p.name, host)
	case certError(err) && otherEndpoint(host, err) != "":
		// A mirror or server of hosts.toml, which --insecure-registry
		// HOST does not cover.
		ep := otherEndpoint(host, err)
		return fmt.Errorf("cannot verify the TLS certificate of %s, an endpoint hosts.toml gives registry %s (%v): add its CA as `ca = \"/path/ca.crt\"` to that endpoint in the hosts.toml, or pass --insecure-registry %s", ep, host, rootCause(err), ep)
	case certError(err):
		return fmt.Errorf("cannot verify the TLS certificate of registry %s (%v): add its CA as `ca = \"/path/ca.crt\"` to %s/hosts.toml, or pass --insecure-registry %s", host, rootCause(err), hostsDirHint(host), host)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client") && otherEndpoint(host, err) != "":
		ep := otherEndpoint(host, err)
		return fmt.Errorf("%s, an endpoint hosts.toml gives registry %s, speaks plain HTTP: write it as http://%s in the hosts.toml, or pass --insecure-registry %s", ep, host, ep, ep)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("registry %s speaks plain HTTP: allow it with --insecure-registry %s or `server = \"http://%s\"` in %s/hosts.toml", host, host, host, hostsDirHint(host))
	case unreachable(err):
		return fmt.Errorf("registry %s is unreachable (%v): check the address and that the registry is up; on an offline host use `sbxrun load -i FILE`", host, rootCause(err))
	case retryableStatus(status) || strings.Contains(msg, "500 Internal") || strings.Contains(msg, "503 Service") || strings.Contains(msg, "502 Bad") || strings.Contains(msg, "504 Gateway"):
		return fmt.Errorf("registry %s keeps failing (%v) after %d attempts: try again later; downloaded data is kept for the next pull", host, rootCause(err), requestAttempts)
	}
	return fmt.Errorf("pulling %q: %w", p.name, err)
}

// discardCorrupt aborts the ingests of blobs that failed verification, in
// this process or at commit in containerd, and returns the error to report.
func (p *puller) discardCorrupt(ctx context.Context, err error) error {
	var ce *corruptError
	commitMismatch := strings.Contains(err.Error(), "unexpected commit digest")
	if !errors.As(err, &ce) && !commitMismatch {
		return nil
	}
	if ce != nil {
		err = ce
	} else {
		err = fmt.Errorf("%w: %v", ErrCorrupt, rootCause(err))
	}
	if p.c == nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cs := p.c.ContentStore()
	p.mu.Lock()
	defer p.mu.Unlock()
	for ref, desc := range p.refs {
		if _, bad := p.corrupt[desc.Digest]; bad {
			_ = cs.Abort(ctx, ref)
			continue
		}
		if commitMismatch {
			if st, serr := cs.Status(ctx, ref); serr == nil && st.Total > 0 && st.Offset == st.Total {
				_ = cs.Abort(ctx, ref)
			}
		}
	}
	return err
}

// certError reports whether err is a failed TLS certificate verification.
func certError(err error) bool {
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	msg := err.Error()
	return errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) ||
		strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify")
}

// unreachable reports whether err means the registry could not be reached.
func unreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &de) || errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, errStalled)
}

// rootCause is the innermost message of err, without containerd's layers of
// context, for a one-line report.
func rootCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	return err.Error()
}

// endpointHost is the host of the URL in err, if any.
func endpointHost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return u.Host
		}
	}
	var us remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &us) {
		if u, perr := url.Parse(us.RequestURL); perr == nil {
			return u.Host
		}
	}
	return ""
}

// otherEndpoint is the host err names when it is not registry host itself
// (nor Docker Hub's registry-1.docker.io for docker.io): a mirror or the
// server of its hosts.toml. "" otherwise.
func otherEndpoint(host string, err error) string {
	ep := endpointHost(err)
	if ep == "" || ep == host || authKey(ep) == authKey(host) {
		return ""
	}
	if name, port, serr := net.SplitHostPort(ep); serr == nil && port == "443" && name == host {
		return ""
	}
	return ep
}

// registryHost is the registry part of a normalized reference.
func registryHost(name string) string {
	if n, err := dref.ParseNormalizedNamed(name); err == nil {
		return dref.Domain(n)
	}
	h, _, _ := strings.Cut(name, "/")
	return h
}

// hostsDirHint is where a hosts.toml for host goes.
func hostsDirHint(host string) string {
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i] + "_" + host[i+1:] + "_"
	}
	return "/etc/containerd/certs.d/" + host
}

// kind names what a descriptor is, for messages.
func kind(desc ocispec.Descriptor) string {
	switch {
	case images.IsLayerType(desc.MediaType):
		return "layer"
	case images.IsConfigType(desc.MediaType):
		return "config"
	case images.IsManifestType(desc.MediaType), images.IsIndexType(desc.MediaType):
		return "manifest"
	}
	return "blob"
}

// shortDigest is the first 12 hex digits of d.
func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
