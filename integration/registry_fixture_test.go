package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// registry is a CNCF distribution registry (Debian's docker-registry) on
// loopback, started by a test and stopped when it ends.
type registry struct {
	// host is 127.0.0.1:PORT.
	host string
	// tls: the registry serves HTTPS with a certificate of the test CA.
	tls bool
	// caFile is the test CA's certificate (tls only).
	caFile string
	// user and password are accepted by its htpasswd auth (auth only).
	user, password string
	dir            string
}

// registryOpts choose what a test registry requires.
type registryOpts struct {
	tls  bool
	auth bool
	// ip is the address it listens on; "" is 127.0.0.1.
	ip string
	// port is its port; 0 is a free one.
	port int
}

// requireTool fails t when bin is missing, naming the package that has it.
func requireTool(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found in PATH: install it with: apt-get install -y %s (hack/deps.sh does)", bin, pkg)
	}
	return p
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

// freePortOn returns a port of ip nothing listens on right now.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry starts a registry with its own storage and config under a
// temporary directory and waits until it answers.
func startRegistry(t *testing.T, o registryOpts) *registry {
	t.Helper()
	requireHarness(t)
	bin := requireTool(t, "docker-registry", "docker-registry")
	r := &registry{dir: t.TempDir(), tls: o.tls}
	var extra strings.Builder
	if o.tls {
		cert, key, ca := testCertificates(t, r.dir)
		r.caFile = ca
		fmt.Fprintf(&extra, "  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	auth := ""
	if o.auth {
		r.user, r.password = "sbxtest", "pw-"+strconv.FormatUint(mrand.Uint64(), 36)
		hash, err := bcrypt.GenerateFromPassword([]byte(r.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: sbxrun-test\n    path: %s\n", htpasswd)
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		ip, port := o.ip, o.port
		if ip == "" {
			ip = "127.0.0.1"
		}
		if port == 0 {
			port = freePortOn(t, ip)
		}
		r.host = net.JoinHostPort(ip, strconv.Itoa(port))
		cfg := filepath.Join(r.dir, "config.yml")
		body := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
%shttp:
  addr: %s
%s`, filepath.Join(r.dir, "data"), auth, r.host, extra.String())
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(r.dir, "registry.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfg)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("starting docker-registry: %v", err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		if lastErr = r.waitReady(exited); lastErr == nil {
			return r
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	b, _ := os.ReadFile(filepath.Join(r.dir, "registry.log"))
	t.Fatalf("docker-registry did not start: %v\n%s", lastErr, tail(string(b), 20))
	return nil
}

// waitReady polls /v2/ for up to 10 s.
func (r *registry) waitReady(exited <-chan struct{}) error {
	c := r.httpClient()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(r.url("/v2/"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-exited:
			return fmt.Errorf("docker-registry exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (r *registry) url(path string) string {
	scheme := "http"
	if r.tls {
		scheme = "https"
	}
	return scheme + "://" + r.host + path
}

// httpClient trusts the test CA.
func (r *registry) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.tls {
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(r.caFile)
		pool.AppendCertsFromPEM(b)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// push copies an OCI layout (or archive) to repo:tag with skopeo and
// returns the manifest digest the registry serves.
func (r *registry) push(t *testing.T, src, repo, tag string) digest.Digest {
	t.Helper()
	bin := requireTool(t, "skopeo", "skopeo")
	args := []string{"copy", "--quiet", "--dest-tls-verify=false"}
	if r.user != "" {
		args = append(args, "--dest-creds", r.user+":"+r.password)
	}
	args = append(args, src, "docker://"+r.host+"/"+repo+":"+tag)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	req, _ := http.NewRequest(http.MethodHead, r.url("/v2/"+repo+"/manifests/"+tag), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", application/vnd.docker.distribution.manifest.v2+json, "+ocispec.MediaTypeImageIndex)
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	resp, err := r.httpClient().Do(req)
	if err != nil {
		t.Fatalf("HEAD manifest: %v", err)
	}
	resp.Body.Close()
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		t.Fatalf("registry gave no manifest digest for %s:%s (%s): %v", repo, tag, resp.Status, err)
	}
	return d
}

// testCertificates writes a CA and a server certificate for 127.0.0.1 and
// localhost signed by it; it returns the server cert, key and CA paths.
func testCertificates(t *testing.T, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sbxrun test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("server.crt", "CERTIFICATE", der), write("server.key", "EC PRIVATE KEY", keyDER), write("ca.crt", "CERTIFICATE", caDER)
}

// testImage is an OCI layout with random layers, unique to one test so
// that no other namespace of the shared content store holds its blobs.
type testImage struct {
	// layout is the "oci:DIR:TAG" source for skopeo.
	layout string
	// layers are the layer descriptors, in order.
	layers []ocispec.Descriptor
}

// bytes is the total size of the layers.
func (m testImage) bytes() int64 {
	var n int64
	for _, l := range m.layers {
		n += l.Size
	}
	return n
}

// buildImage writes an image whose gzip layers hold random files of the
// given sizes (skopeo pushes gzip layers as they are).
func buildImage(t *testing.T, sizes ...int) testImage {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBlob := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	seed := mrand.New(mrand.NewPCG(mrand.Uint64(), uint64(time.Now().UnixNano())))
	var img testImage
	var diffIDs []digest.Digest
	for i, size := range sizes {
		data := make([]byte, size)
		for j := 0; j+8 <= len(data); j += 8 {
			v := seed.Uint64()
			for k := 0; k < 8; k++ {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		name := fmt.Sprintf("data/layer%d.bin", i)
		_ = tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)})
		_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size), ModTime: time.Unix(1700000000, 0)})
		_, _ = tw.Write(data)
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		diffIDs = append(diffIDs, digest.FromBytes(buf.Bytes()))
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		_, _ = zw.Write(buf.Bytes())
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		d := writeBlob(gz.Bytes())
		img.layers = append(img.layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(gz.Len())})
	}
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/true"}},
	})
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: writeBlob(cfg), Size: int64(len(cfg))}
	man, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: img.layers})
	manDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: writeBlob(man), Size: int64(len(man)),
		Annotations: map[string]string{ocispec.AnnotationRefName: "v1"}}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{manDesc}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	img.layout = "oci:" + dir + ":v1"
	return img
}

// dockerConfig writes a Docker config.json into a fresh directory and
// returns the directory (for DOCKER_CONFIG).
func dockerConfig(t *testing.T, cfg map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// basicAuth is config.json's "auth" value.
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// credentialHelper installs docker-credential-NAME, a small helper speaking
// the docker-credential-helpers protocol (get, store, erase, list) backed by
// a JSON file, and returns the directory to put first on PATH and the file.
func credentialHelper(t *testing.T, name string, creds map[string][2]string) (binDir, store string) {
	t.Helper()
	binDir = t.TempDir()
	store = filepath.Join(binDir, "store.json")
	m := map[string]map[string]string{}
	for host, c := range creds {
		m[host] = map[string]string{"ServerURL": host, "Username": c[0], "Secret": c[1]}
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(store, b, 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte(strings.Replace(credHelperSource, "STORE", strconv.Quote(store), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool(), "build", "-o", filepath.Join(binDir, "docker-credential-"+name), src)
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the credential helper: %v\n%s", err, b)
	}
	return binDir, store
}

// credHelperSource is a docker-credential-helpers protocol server (get,
// store, erase, list) backed by the JSON file STORE: the action is the
// argument, the input is on stdin.
const credHelperSource = `package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type cred struct {
	ServerURL, Username, Secret string
}

func main() {
	store := STORE
	in, _ := io.ReadAll(os.Stdin)
	m := map[string]cred{}
	if b, err := os.ReadFile(store); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	save := func() {
		b, _ := json.Marshal(m)
		_ = os.WriteFile(store, b, 0o600)
	}
	switch os.Args[1] {
	case "get":
		c, ok := m[strings.TrimSpace(string(in))]
		if !ok {
			fmt.Println("credentials not found in native keychain")
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(c)
	case "store":
		var c cred
		if err := json.Unmarshal(in, &c); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		m[c.ServerURL] = c
		save()
	case "erase":
		delete(m, strings.TrimSpace(string(in)))
		save()
	case "list":
		l := map[string]string{}
		for k, c := range m {
			l[k] = c.Username
		}
		_ = json.NewEncoder(os.Stdout).Encode(l)
	default:
		fmt.Fprintln(os.Stderr, "unknown action")
		os.Exit(1)
	}
}
`

// fault is what the proxy does to one blob or manifest.
type fault struct {
	// status answers this HTTP status to the next n requests.
	status, statusN int
	// cutAfter ends the connection after this many body bytes, cutN times
	// (the first with a TCP reset, the others with a plain close).
	cutAfter int64
	cutN     int
	// flip corrupts the byte at this offset of every full response.
	flip int64
	// rate limits the bytes per second served (0: unlimited).
	rate int64
}

// faultProxy is a plain-HTTP proxy on loopback in front of a registry that
// injects faults into chosen paths and counts what it serves.
type faultProxy struct {
	host     string
	upstream *registry
	client   *http.Client

	mu sync.Mutex
	// faults by path suffix ("blobs/sha256:..." or "manifests/v1").
	faults map[string]*fault
	// gets counts full and ranged GETs per blob digest; served the bytes.
	gets   map[digest.Digest]int
	ranges map[digest.Digest][]int64
	served map[digest.Digest]int64
}

// startProxy starts a fault proxy in front of up.
func startProxy(t *testing.T, up *registry) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{host: l.Addr().String(), upstream: up, client: up.httpClient(),
		faults: map[string]*fault{}, gets: map[digest.Digest]int{}, ranges: map[digest.Digest][]int64{}, served: map[digest.Digest]int64{}}
	p.client.Timeout = 0
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		srv.Close()
	})
	return p
}

// set installs a fault for paths ending in suffix.
func (p *faultProxy) set(suffix string, f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[suffix] = &f
}

// clear removes every fault.
func (p *faultProxy) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = map[string]*fault{}
}

// stats returns the GETs, ranged start offsets and bytes served for d.
func (p *faultProxy) stats(d digest.Digest) (gets int, ranges []int64, served int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[d], append([]int64(nil), p.ranges[d]...), p.served[d]
}

// resetStats forgets the counts.
func (p *faultProxy) resetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets, p.ranges, p.served = map[digest.Digest]int{}, map[digest.Digest][]int64{}, map[digest.Digest]int64{}
}

func (p *faultProxy) faultFor(path string) *fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, f := range p.faults {
		if strings.HasSuffix(path, s) {
			return f
		}
	}
	return nil
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.faultFor(r.URL.Path)
	var blob digest.Digest
	if i := strings.LastIndex(r.URL.Path, "/blobs/"); i >= 0 {
		blob = digest.Digest(r.URL.Path[i+len("/blobs/"):])
	}
	var start int64
	if rg := r.Header.Get("Range"); rg != "" {
		fmt.Sscanf(rg, "bytes=%d-", &start)
	}
	if blob != "" && r.Method == http.MethodGet {
		p.mu.Lock()
		p.gets[blob]++
		if start > 0 {
			p.ranges[blob] = append(p.ranges[blob], start)
		}
		p.mu.Unlock()
	}
	if f != nil {
		p.mu.Lock()
		status := 0
		if f.statusN > 0 {
			f.statusN--
			status = f.status
		}
		p.mu.Unlock()
		if status != 0 {
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream.url(r.URL.RequestURI()), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 32<<10)
	off := start
	var sent int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if f != nil {
				p.mu.Lock()
				flip, cutAfter, cutN, rate := f.flip, f.cutAfter, f.cutN, f.rate
				p.mu.Unlock()
				if flip > 0 && flip >= off && flip < off+int64(n) {
					chunk[flip-off] ^= 0xff
				}
				if cutN > 0 && sent+int64(n) > cutAfter {
					chunk = chunk[:max(cutAfter-sent, 0)]
					_, _ = w.Write(chunk)
					p.count(blob, int64(len(chunk)))
					p.cut(w, f)
					return
				}
				if rate > 0 {
					time.Sleep(time.Duration(int64(n) * int64(time.Second) / rate))
				}
			}
			if _, werr := w.Write(chunk); werr != nil {
				return
			}
			p.count(blob, int64(n))
			off += int64(n)
			sent += int64(n)
		}
		if rerr != nil {
			return
		}
	}
}

func (p *faultProxy) count(blob digest.Digest, n int64) {
	if blob == "" {
		return
	}
	p.mu.Lock()
	p.served[blob] += n
	p.mu.Unlock()
}

// cut ends the client's connection mid-body: a TCP reset the first time,
// a plain close after that.
func (p *faultProxy) cut(w http.ResponseWriter, f *fault) {
	p.mu.Lock()
	reset := f.cutN%2 == 0
	f.cutN--
	p.mu.Unlock()
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
	conn.Close()
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
