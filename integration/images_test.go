package integration

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// imageEntry is one element of "sbxrun images --format json".
type imageEntry struct {
	Ref      string   `json:"ref"`
	Digest   string   `json:"digest"`
	Size     int64    `json:"size"`
	Profiles []string `json:"profiles"`
}

// listImages runs "sbxrun images --format json".
func listImages(t *testing.T, o opts) map[string]imageEntry {
	t.Helper()
	stdout, stderr, code := runWith(t, o, "images", "--format", "json")
	if code != 0 {
		t.Fatalf("sbxrun images --format json: exit %d\nstderr: %s", code, stderr)
	}
	var list []imageEntry
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("sbxrun images --format json printed no JSON array: %v\n%s", err, stdout)
	}
	m := map[string]imageEntry{}
	for _, e := range list {
		m[e.Ref] = e
	}
	return m
}

// wantOutput fails t unless s contains every string of want.
func wantOutput(t *testing.T, what, s string, want ...string) {
	t.Helper()
	t.Logf("%s:\n%s", what, s)
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// assertNoTrace checks that blob d left nothing in t's namespace: no
// content, no partial download.
func assertNoTrace(t *testing.T, d digest.Digest) {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	cs := harness.client.ContentStore()
	if _, err := cs.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("blob %s is in the content store (err %v)", d, err)
	}
	sts, err := cs.ListStatuses(ctx)
	if err != nil {
		t.Fatalf("listing ingests: %v", err)
	}
	for _, st := range sts {
		if strings.Contains(st.Ref, d.String()) {
			t.Errorf("partial download of %s left: %+v", d, st)
		}
	}
}

// pullLeases returns the ids of sbxrun's pull leases in t's namespace.
func pullLeases(t *testing.T) []string {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	ls, err := harness.client.LeasesService().List(ctx)
	if err != nil {
		t.Fatalf("listing leases: %v", err)
	}
	var ids []string
	for _, l := range ls {
		if _, ok := l.Labels["sbxrun.pull"]; ok {
			ids = append(ids, l.ID)
		}
	}
	return ids
}

// TestPull pulls a multi-layer image from a plain-HTTP registry on
// loopback (no flag needed, as with Docker) and checks progress lines,
// references by tag and digest, --quiet and the errors of a missing image,
// a missing tag and a registry that is down.
func TestPull(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{})
	img := buildImage(t, 3<<20, 2<<20, 1<<20)
	dg := reg.push(t, img.layout, "sbxtest/multi", "v1")
	ref := reg.host + "/sbxtest/multi:v1"

	t.Run("progress", func(t *testing.T) {
		stdout, stderr, code := run(t, "pull", ref)
		expect(t, "pull", code, 0, stdout, stderr)
		want := []string{"pulling " + ref + " (linux/" + runtime.GOARCH + ")", "pulled " + ref + " " + dg.String()}
		for _, l := range img.layers {
			short := l.Digest.Encoded()[:12]
			want = append(want, "layer "+short+": downloading", "layer "+short+": downloaded")
		}
		wantOutput(t, "pull's log", stderr, want...)
		if e, ok := listImages(t, opts{})[ref]; !ok || e.Digest != dg.String() || e.Size < img.bytes() {
			t.Errorf("sbxrun images: %q = %+v (present %v); want digest %s and size >= %d", ref, e, ok, dg, img.bytes())
		}
	})
	t.Run("again", func(t *testing.T) {
		stdout, stderr, code := run(t, "pull", ref)
		expect(t, "second pull", code, 0, stdout, stderr)
		if n := strings.Count(stderr, ": already exists"); n != len(img.layers) {
			t.Errorf("second pull: %d layers already exist, want %d:\n%s", n, len(img.layers), stderr)
		}
	})
	t.Run("digest", func(t *testing.T) {
		byDigest := reg.host + "/sbxtest/multi@" + dg.String()
		stdout, stderr, code := run(t, "pull", "-q", byDigest)
		expect(t, "pull by digest", code, 0, stdout, stderr)
		if stdout != byDigest+"\n" || stderr != "" {
			t.Errorf("pull -q: stdout %q, stderr %q; want only the name on stdout", stdout, stderr)
		}
		if _, ok := listImages(t, opts{})[byDigest]; !ok {
			t.Errorf("sbxrun images does not list %s", byDigest)
		}
	})
	t.Run("mirror", func(t *testing.T) {
		// hosts.toml sends a registry that does not exist to the
		// loopback one as its mirror.
		dir := t.TempDir()
		d := filepath.Join(dir, "registry.sbxrun.invalid")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		toml := fmt.Sprintf("server = \"https://registry.sbxrun.invalid\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", reg.host)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		mirrored := "registry.sbxrun.invalid/sbxtest/multi:v1"
		stdout, stderr, code := run(t, "pull", "--hosts-dir", dir, mirrored)
		expect(t, "pull through a mirror", code, 0, stdout, stderr)
		if e := listImages(t, opts{})[mirrored]; e.Digest != dg.String() {
			t.Errorf("sbxrun images: %s = %+v, want digest %s", mirrored, e, dg)
		}
	})
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown-tag", []string{"pull", reg.host + "/sbxtest/multi:nope"}, []string{"not found", "check the name and tag"}},
		{"unknown-repo", []string{"pull", reg.host + "/sbxtest/nothing:v1"}, []string{"not found"}},
		{"pull-never", []string{"run", "--pull", "never", reg.host + "/sbxtest/absent:v1", "--", "true"}, []string{"--pull never", "sbxrun pull " + reg.host + "/sbxtest/absent:v1", "sbxrun load -i FILE"}},
		{"down", []string{"pull", fmt.Sprintf("127.0.0.1:%d/sbxtest/x:1", freePort(t))}, []string{"unreachable", "connection refused"}},
		{"bad-platform", []string{"pull", "--platform", "linux/", ref}, []string{"invalid --platform"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			begin := time.Now()
			stdout, stderr, code := run(t, tt.args...)
			expect(t, strings.Join(tt.args, " "), code, 125, stdout, stderr)
			wantOutput(t, "stderr", stderr, tt.want...)
			if took := time.Since(begin); took > 15*time.Second {
				t.Errorf("%s took %s; an error must come in seconds", tt.name, took)
			}
		})
	}
}

// hostsTOML writes DIR/HOST_PORT_/hosts.toml that sends host to its HTTPS
// server, trusting caFile when it is not empty, and returns DIR.
func hostsTOML(t *testing.T, host, caFile string) string {
	t.Helper()
	dir := t.TempDir()
	d := filepath.Join(dir, strings.Replace(host, ":", "_", 1)+"_")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("server = %q\n", "https://"+host)
	if caFile != "" {
		body += fmt.Sprintf("ca = %q\n", caFile)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPullAuth pulls from a registry with htpasswd auth behind TLS with a
// CA the test generates: credentials from config.json and from a
// credential helper, login and logout, and the errors of no, wrong and
// untrusted credentials and certificates.
func TestPullAuth(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{tls: true, auth: true})
	img := buildImage(t, 1<<20, 512<<10)
	dg := reg.push(t, img.layout, "sbxtest/private", "v1")
	ref := reg.host + "/sbxtest/private:v1"
	trusted := hostsTOML(t, reg.host, reg.caFile)
	untrusted := hostsTOML(t, reg.host, "")
	good := dockerConfig(t, map[string]any{"auths": map[string]any{reg.host: map[string]string{"auth": basicAuth(reg.user, reg.password)}}})
	wrong := dockerConfig(t, map[string]any{"auths": map[string]any{reg.host: map[string]string{"auth": basicAuth(reg.user, "wrong")}}})
	empty := t.TempDir()
	helperDir, helperStore := credentialHelper(t, "sbxtest", map[string][2]string{reg.host: {reg.user, reg.password}})
	withHelper := dockerConfig(t, map[string]any{"credHelpers": map[string]string{reg.host: "sbxtest"}})
	path := "PATH=" + helperDir + ":" + os.Getenv("PATH")

	pulls := []struct {
		name   string
		config string
		hosts  string
		code   int
		want   []string
	}{
		{"no-credentials", empty, trusted, 125, []string{"401 Unauthorized", "sbxrun login " + reg.host}},
		{"wrong-password", wrong, trusted, 125, []string{"401 Unauthorized", "sbxrun login"}},
		{"untrusted-ca", good, untrusted, 125, []string{"TLS certificate", "hosts.toml", "--insecure-registry"}},
		{"config-json", good, trusted, 0, []string{"pulled " + ref + " " + dg.String()}},
		{"credential-helper", withHelper, trusted, 0, []string{"pulled " + ref}},
	}
	for _, tt := range pulls {
		t.Run(tt.name, func(t *testing.T) {
			o := opts{env: []string{"DOCKER_CONFIG=" + tt.config, path}}
			stdout, stderr, code := runWith(t, o, "pull", "--hosts-dir", tt.hosts, ref)
			expect(t, "pull", code, tt.code, stdout, stderr)
			wantOutput(t, "stderr", stderr, tt.want...)
		})
	}

	t.Run("login-logout", func(t *testing.T) {
		cfg := t.TempDir()
		o := opts{env: []string{"DOCKER_CONFIG=" + cfg}, stdin: strings.NewReader(reg.password + "\n")}
		stdout, stderr, code := runWith(t, o, "login", "-u", reg.user, "--password-stdin", "--hosts-dir", trusted, reg.host)
		expect(t, "login", code, 0, stdout, stderr)
		var written struct {
			Auths map[string]struct {
				Auth string `json:"auth"`
			} `json:"auths"`
		}
		b, err := os.ReadFile(filepath.Join(cfg, "config.json"))
		if err != nil || json.Unmarshal(b, &written) != nil || written.Auths[reg.host].Auth != basicAuth(reg.user, reg.password) {
			t.Fatalf("config.json after login: %s (%v); want auths[%q] with the credentials", b, err, reg.host)
		}
		o.stdin = nil
		stdout, stderr, code = runWith(t, o, "pull", "--hosts-dir", trusted, ref)
		expect(t, "pull after login", code, 0, stdout, stderr)
		stdout, stderr, code = runWith(t, o, "logout", reg.host)
		expect(t, "logout", code, 0, stdout, stderr)
		if b, _ := os.ReadFile(filepath.Join(cfg, "config.json")); strings.Contains(string(b), reg.host) {
			t.Errorf("config.json still names %s after logout: %s", reg.host, b)
		}
		stdout, stderr, code = runWith(t, o, "pull", "--hosts-dir", trusted, ref)
		expect(t, "pull after logout", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "401")
	})
	t.Run("login-wrong-password", func(t *testing.T) {
		cfg := t.TempDir()
		o := opts{env: []string{"DOCKER_CONFIG=" + cfg}, stdin: strings.NewReader("nope\n")}
		stdout, stderr, code := runWith(t, o, "login", "-u", reg.user, "--password-stdin", "--hosts-dir", trusted, reg.host)
		expect(t, "login", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "rejected")
		if _, err := os.Stat(filepath.Join(cfg, "config.json")); err == nil {
			t.Errorf("a refused login wrote config.json")
		}
	})
	t.Run("login-without-stdin-flag", func(t *testing.T) {
		stdout, stderr, code := runWith(t, opts{env: []string{"DOCKER_CONFIG=" + t.TempDir()}}, "login", "-u", reg.user, reg.host)
		expect(t, "login", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "--password-stdin")
	})
	t.Run("login-credential-store", func(t *testing.T) {
		binDir, store := credentialHelper(t, "sbxstore", nil)
		cfg := dockerConfig(t, map[string]any{"credsStore": "sbxstore"})
		env := []string{"DOCKER_CONFIG=" + cfg, "PATH=" + binDir + ":" + os.Getenv("PATH")}
		stdout, stderr, code := runWith(t, opts{env: env, stdin: strings.NewReader(reg.password)}, "login", "-u", reg.user, "--password-stdin", "--hosts-dir", trusted, reg.host)
		expect(t, "login", code, 0, stdout, stderr)
		b, _ := os.ReadFile(store)
		if !strings.Contains(string(b), reg.password) {
			t.Errorf("the credential helper did not get the password: %s", b)
		}
		if b, _ := os.ReadFile(filepath.Join(cfg, "config.json")); strings.Contains(string(b), basicAuth(reg.user, reg.password)) {
			t.Errorf("config.json holds the password although credsStore is set: %s", b)
		}
		stdout, stderr, code = runWith(t, opts{env: env}, "pull", "--hosts-dir", trusted, ref)
		expect(t, "pull with credsStore", code, 0, stdout, stderr)
	})
	if b, err := os.ReadFile(helperStore); err != nil || !strings.Contains(string(b), reg.host) {
		t.Errorf("the credential helper's store lost %s: %s (%v)", reg.host, b, err)
	}
}

// TestPullFaults puts a fault-injecting proxy in front of the registry:
// 5xx answers and cut connections are retried to success, a corrupted blob
// is refused and leaves nothing behind, a 403 has its own message.
func TestPullFaults(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{})
	proxy := startProxy(t, reg)
	push := func(t *testing.T, repo string) (testImage, string) {
		img := buildImage(t, 3<<20, 1<<20)
		reg.push(t, img.layout, "sbxtest/"+repo, "v1")
		return img, proxy.host + "/sbxtest/" + repo + ":v1"
	}

	t.Run("server-errors", func(t *testing.T) {
		img, ref := push(t, "errors")
		proxy.set("/sbxtest/errors/manifests/v1", fault{status: 503, statusN: 2})
		proxy.set("/blobs/"+img.layers[0].Digest.String(), fault{status: 500, statusN: 3})
		stdout, stderr, code := run(t, "pull", ref)
		expect(t, "pull through 5xx", code, 0, stdout, stderr)
		wantOutput(t, "stderr", stderr, "retrying", "500 Internal Server Error", "503 Service Unavailable", "pulled "+ref)
	})
	t.Run("cut-connections", func(t *testing.T) {
		img, ref := push(t, "cut")
		big := img.layers[0]
		proxy.set("/blobs/"+big.Digest.String(), fault{cutAfter: 1 << 20, cutN: 2})
		stdout, stderr, code := run(t, "pull", ref)
		expect(t, "pull through cut connections", code, 0, stdout, stderr)
		gets, ranges, served := proxy.stats(big.Digest)
		if gets < 3 || len(ranges) < 2 || served > 2*big.Size {
			t.Errorf("layer %s: %d GETs, range starts %v, %d bytes served for %d; want resumed downloads", big.Digest, gets, ranges, served, big.Size)
		}
	})
	t.Run("corrupt-blob", func(t *testing.T) {
		img, ref := push(t, "corrupt")
		bad := img.layers[1]
		proxy.set("/blobs/"+bad.Digest.String(), fault{flip: 4096})
		stdout, stderr, code := run(t, "pull", ref)
		expect(t, "pull of a corrupt blob", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "layer "+bad.Digest.String()+" is corrupt", "no image was created")
		if _, ok := listImages(t, opts{})[ref]; ok {
			t.Errorf("sbxrun images lists %s after a corrupt pull", ref)
		}
		assertNoTrace(t, bad.Digest)
		proxy.clear()
		stdout, stderr, code = run(t, "pull", ref)
		expect(t, "pull after the corruption is gone", code, 0, stdout, stderr)
	})
	t.Run("forbidden", func(t *testing.T) {
		_, ref := push(t, "forbidden")
		proxy.set("/sbxtest/forbidden/manifests/v1", fault{status: 403, statusN: 1000})
		stdout, stderr, code := run(t, "pull", ref)
		expect(t, "pull of a forbidden image", code, 125, stdout, stderr)
		wantOutput(t, "stderr", stderr, "403 Forbidden", "pull permission")
	})
}

// TestPullInterruptResume stops a pull with SIGINT mid-layer: nothing is
// left half-made, and the next pull resumes the layer instead of starting
// it over.
func TestPullInterruptResume(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{})
	proxy := startProxy(t, reg)
	img := buildImage(t, 24<<20, 256<<10)
	reg.push(t, img.layout, "sbxtest/resume", "v1")
	ref := proxy.host + "/sbxtest/resume:v1"
	big := img.layers[0]
	proxy.set("/blobs/"+big.Digest.String(), fault{rate: 8 << 20})

	p := start(t, opts{}, "pull", ref)
	if !waitFor(30*time.Second, func() bool { _, _, served := proxy.stats(big.Digest); return served > 8<<20 }) {
		t.Fatalf("the layer download never got going; stderr: %s", p.stderr.String())
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	code := p.wait(t, 30*time.Second)
	expect(t, "interrupted pull", code, 130, p.stdout.String(), p.stderr.String())
	wantOutput(t, "stderr", p.stderr.String(), "interrupted", "resume")
	if _, ok := listImages(t, opts{})[ref]; ok {
		t.Fatalf("an interrupted pull left the image %s", ref)
	}

	proxy.clear()
	proxy.resetStats()
	stdout, stderr, code := run(t, "pull", ref)
	expect(t, "resumed pull", code, 0, stdout, stderr)
	_, ranges, served := proxy.stats(big.Digest)
	if len(ranges) == 0 || ranges[0] < 4<<20 || served > big.Size-4<<20 {
		t.Errorf("second pull of layer %s (%d bytes): range starts %v, %d bytes served; want a resume past 4 MiB", big.Digest, big.Size, ranges, served)
	}
	wantOutput(t, "stderr", stderr, "resuming at")
	if ids := pullLeases(t); len(ids) > 0 {
		t.Errorf("pull leases left after the resumed pull: %v", ids)
	}
	ctx, cancel := nsCtx(t)
	defer cancel()
	if keys := activeSnapshots(t, ctx, ""); len(keys) > 0 {
		t.Errorf("active snapshots left: %q", keys)
	}
}

// TestPullConcurrent runs two pulls of one image at once: both succeed and
// every blob is fetched once.
func TestPullConcurrent(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, registryOpts{})
	proxy := startProxy(t, reg)
	img := buildImage(t, 6<<20, 4<<20)
	reg.push(t, img.layout, "sbxtest/concurrent", "v1")
	ref := proxy.host + "/sbxtest/concurrent:v1"
	for _, l := range img.layers {
		proxy.set("/blobs/"+l.Digest.String(), fault{rate: 8 << 20})
	}
	a := start(t, opts{}, "pull", ref)
	b := start(t, opts{}, "pull", ref)
	for i, p := range []*proc{a, b} {
		if code := p.wait(t, 60*time.Second); code != 0 {
			t.Errorf("pull %d: exit %d\nstderr: %s", i, code, p.stderr.String())
		}
	}
	for _, l := range img.layers {
		if gets, _, served := proxy.stats(l.Digest); gets != 1 || served != l.Size {
			t.Errorf("layer %s: %d GETs, %d bytes served; want 1 GET of %d bytes", l.Digest, gets, served, l.Size)
		}
	}
}

// TestLoadSave saves an image, removes it and loads it back (an
// air-gapped host), also from a docker-archive and a gzip-compressed file,
// and runs a sandbox from the loaded image.
func TestLoadSave(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	dir := t.TempDir()
	saved := filepath.Join(dir, "base.tar")
	stdout, stderr, code := run(t, "save", "-o", saved, "base")
	expect(t, "save", code, 0, stdout, stderr)
	before := listImages(t, opts{})[baseRef]

	stdout, stderr, code = run(t, "rmi", baseRef)
	expect(t, "rmi", code, 0, stdout, stderr)
	if _, ok := listImages(t, opts{})[baseRef]; ok {
		t.Fatalf("rmi left %s", baseRef)
	}
	stdout, stderr, code = run(t, "load", "-i", saved)
	expect(t, "load", code, 0, stdout, stderr)
	wantOutput(t, "load's output", stdout, "Loaded image: "+baseRef)
	if after := listImages(t, opts{})[baseRef]; after.Digest != before.Digest || !contains(after.Profiles, "base") {
		t.Errorf("after save, rmi and load: %+v; want digest %s and profile base", after, before.Digest)
	}
	stdout, stderr, code = sandbox(t, nameFor(t), "base", "--", "true")
	expect(t, "run from the loaded image", code, 0, stdout, stderr)

	gz := filepath.Join(dir, "base.tar.gz")
	compress(t, saved, gz)
	stdout, stderr, code = run(t, "load", "-i", gz)
	expect(t, "load of a gzip archive", code, 0, stdout, stderr)
	wantOutput(t, "load's output", stdout, "Loaded image: "+baseRef)

	archive := filepath.Join(dir, "docker.tar")
	name := "localhost/sbxtest/docker-archive:1"
	cmd := exec.Command(requireTool(t, "skopeo", "skopeo"), "copy", "--quiet", "oci-archive:"+harness.baseImage, "docker-archive:"+archive+":"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to docker-archive: %v\n%s", err, b)
	}
	stdout, stderr, code = run(t, "load", "-i", archive)
	expect(t, "load of a docker-archive", code, 0, stdout, stderr)
	wantOutput(t, "load's output", stdout, "Loaded image: "+name)

	stdout, stderr, code = run(t, "save", "-o", filepath.Join(dir, "none.tar"), "localhost/sbxtest/none:1")
	expect(t, "save of a missing image", code, 125, stdout, stderr)
	if _, err := os.Stat(filepath.Join(dir, "none.tar")); err == nil {
		t.Errorf("a failed save left its file")
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// compress gzips src into dst.
func compress(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// namespaceBytes is what t's namespace holds: content (with partial
// downloads) and committed snapshots, measured with the containerd client.
func namespaceBytes(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := nsCtx(t)
	defer cancel()
	var total int64
	cs := harness.client.ContentStore()
	if err := cs.Walk(ctx, func(i content.Info) error { total += i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	sts, err := cs.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		total += st.Offset
	}
	sn := harness.client.SnapshotService("overlayfs")
	var keys []string
	if err := sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error { keys = append(keys, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		u, err := sn.Usage(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		total += u.Size
	}
	return total
}

var reclaimed = regexp.MustCompile(`Total reclaimed space: .* \((\d+) bytes\)`)

// TestPrune pulls an image no profile uses and checks that prune removes
// it, keeps the profile's image, and frees the bytes it reports.
func TestPrune(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	reg := startRegistry(t, registryOpts{})
	img := buildImage(t, 2<<20, 1<<20)
	reg.push(t, img.layout, "sbxtest/prune", "v1")
	ref := reg.host + "/sbxtest/prune:v1"
	stdout, stderr, code := run(t, "pull", "-q", ref)
	expect(t, "pull", code, 0, stdout, stderr)

	before := namespaceBytes(t)
	stdout, stderr, code = run(t, "prune")
	if code != 125 || !strings.Contains(stderr, "pass -f") {
		t.Errorf("prune without -f and without a terminal: exit %d, stderr %q; want 125 asking for -f", code, stderr)
	}
	stdout, stderr, code = run(t, "prune", "-f")
	expect(t, "prune", code, 0, stdout, stderr)
	after := namespaceBytes(t)
	m := reclaimed.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("prune printed no total: %q", stdout)
	}
	freed, _ := strconv.ParseInt(m[1], 10, 64)
	if freed != before-after || freed < 2*img.bytes() {
		t.Errorf("prune says it freed %d bytes; the namespace went from %d to %d (%d), and the image's layers alone are %d (twice unpacked)", freed, before, after, before-after, img.bytes())
	}
	wantOutput(t, "prune's output", stdout, "Deleted: "+ref)
	list := listImages(t, opts{})
	if _, ok := list[ref]; ok {
		t.Errorf("prune kept %s, which nothing uses", ref)
	}
	if _, ok := list[baseRef]; !ok {
		t.Errorf("prune removed %s, the base profile's image", baseRef)
	}
	for _, l := range img.layers {
		assertNoTrace(t, l.Digest)
	}
}

// TestRegistryPrefix repoints the built-in profiles with SBXRUN_REGISTRY:
// "sbxrun pull base" pulls base from the private registry, "sbxrun images"
// says the profile uses it, and a sandbox runs from it.
func TestRegistryPrefix(t *testing.T) {
	t.Parallel()
	useNamespace(t, false)
	reg := startRegistry(t, registryOpts{})
	reg.push(t, "oci-archive:"+harness.baseImage, "mirror/sbxrun/base", "latest")
	mirrored := reg.host + "/mirror/sbxrun/base:latest"
	o := opts{env: []string{"SBXRUN_REGISTRY=" + reg.host + "/mirror/sbxrun"}}
	stdout, stderr, code := runWith(t, o, "pull", "base")
	expect(t, "pull base", code, 0, stdout, stderr)
	wantOutput(t, "stderr", stderr, "pulling "+mirrored)
	list := listImages(t, o)
	if e := list[mirrored]; len(e.Profiles) != 1 || e.Profiles[0] != "base" {
		t.Errorf("sbxrun images: %s is used by %v; want [base]", mirrored, e.Profiles)
	}
	if e := list[baseRef]; len(e.Profiles) != 0 {
		t.Errorf("sbxrun images: %s still used by %v with SBXRUN_REGISTRY set", baseRef, e.Profiles)
	}
	stdout, stderr, code = sandboxWith(t, o, nameFor(t), "base", "--", "true")
	expect(t, "run base from the mirror", code, 0, stdout, stderr)
}

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

// TestRunSurvivesConcurrentPrune runs sandboxes of a registry image while
// `sbxrun prune -a -f` removes that image again and again in the same
// namespace. prune may take the image between the run's image check and
// the creation of its rootfs; the run must then fetch it again (its pull
// policy allows that), never fail with a missing parent snapshot.
func TestRunSurvivesConcurrentPrune(t *testing.T) {
	useNamespace(t, false)
	reg := startRegistry(t, registryOpts{})
	reg.push(t, "oci-archive:"+harness.plainImage, "sbxtest/prune-race", "v1")
	ref := reg.host + "/sbxtest/prune-race:v1"

	const rounds = 12
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	prunes := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			stdout, stderr, code := run(t, "prune", "-a", "-f")
			if code != 0 {
				t.Errorf("prune: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
				return
			}
			prunes++
		}
	}()
	failed := 0
	for i := 0; i < rounds; i++ {
		stdout, stderr, code := run(t, "run", "--pull", "missing", ref, "--", "echo", "ran")
		if code != 0 || strings.TrimSpace(stdout) != "ran" {
			failed++
			t.Errorf("round %d: run while prune removes its image: exit %d\nstdout: %s\nstderr: %s", i, code, stdout, stderr)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d runs, %d prunes beside them, %d failed", rounds, prunes, failed)
	if prunes < 2 {
		t.Errorf("only %d prunes ran beside the %d runs: the race was not exercised", prunes, rounds)
	}
}
