package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netLeakRuns is how many --rm runs the leak check makes
// (SBXRUN_NET_LEAK_RUNS raises it, e.g. to the 200 of issue 12).
func netLeakRuns() int {
	if n, err := strconv.Atoi(os.Getenv("SBXRUN_NET_LEAK_RUNS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// httpdScript serves "hello-WHO" on port 8000 with busybox httpd.
func httpdScript(who string) string {
	return "mkdir -p /tmp/www && echo hello-" + who + " > /tmp/www/index.html && exec httpd -f -p 8000 -h /tmp/www"
}

// hostsLookup defines two shell functions for the test image: lookup NAME
// prints NAME's address from /etc/hosts, get ADDR prints the body of
// http://ADDR:8000/ (nc, 3 s at most) and fails when nothing answered.
const hostsLookup = `lookup() { awk -v n="$1" '{for (i = 2; i <= NF; i++) if ($i == n) {print $1; exit}}' /etc/hosts; }
get() { b=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$1" 8000 | sed '1,/^\r*$/d'); [ -n "$b" ] && echo "$b"; }
`

// freeHostPort is a TCP port free on 127.0.0.1 now.
func freeHostPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpBody GETs url until it answers 200 or d passes.
func httpBody(url string, d time.Duration) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(d)
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == 200 {
				return string(b), nil
			}
			err = fmt.Errorf("status %d, %v", resp.StatusCode, rerr)
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serveOnce listens on addr and writes msg to every connection.
func serveOnce(t *testing.T, addr, msg string) int {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(msg + "\n"))
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// netState is what the host holds of this test process's networks:
// firewall rules, interfaces, network namespaces and their mounts, address
// allocations, records, CNI's result cache. Other test processes (other
// engineers' runs of the same suite) change the host's firewall at the same
// time, so only what names this process's bridges, subnets or CNI IDs
// counts (see ours).
type netState struct {
	rules, links, files, mounts []string
	bridges                     []string
	subnets                     []netip.Prefix
	prefix                      string
}

var (
	counters = regexp.MustCompile(`\[\d+:\d+\]`)
	ipv4     = regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)
)

func snapshotNet(t *testing.T) netState {
	t.Helper()
	return snapshotNetOf(t, os.Getenv("SBXRUN_STATE_DIR"))
}

// snapshotNetOf is snapshotNet for the sbxrun state directory state.
func snapshotNetOf(t *testing.T, state string) netState {
	t.Helper()
	var s netState
	// The CNI IDs of this state directory (network.Paths.cniPrefix).
	sum := sha256.Sum256([]byte(filepath.Join(state, "cni")))
	s.prefix = "sbx" + hex.EncodeToString(sum[:3]) + "-"
	confs, _ := filepath.Glob(filepath.Join(os.Getenv("SBXRUN_CNI_CONF_DIR"), "*.conflist"))
	for _, c := range confs {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		var l struct {
			Plugins []struct {
				Bridge string
				IPAM   struct{ Ranges [][]struct{ Subnet string } }
			}
		}
		_ = json.Unmarshal(b, &l)
		for _, p := range l.Plugins {
			if p.Bridge != "" {
				s.bridges = append(s.bridges, p.Bridge)
			}
			if len(p.IPAM.Ranges) > 0 && len(p.IPAM.Ranges[0]) > 0 {
				if pfx, err := netip.ParsePrefix(p.IPAM.Ranges[0][0].Subnet); err == nil {
					s.subnets = append(s.subnets, pfx)
				}
			}
		}
	}
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			s.rules = append(s.rules, counters.ReplaceAllString(l, ""))
		}
	}
	sort.Strings(s.rules)
	out, err = exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			name := strings.TrimSuffix(f[1], ":")
			if i := strings.Index(l, " master "); i >= 0 {
				name += " master " + strings.Fields(l[i+8:])[0]
			}
			s.links = append(s.links, name)
		}
	}
	sort.Strings(s.links)
	for _, dir := range []string{filepath.Join(state, "cni"), filepath.Join(state, "netns"), "/var/lib/cni/results"} {
		_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			// Lock files appear on first use and stay; they hold nothing.
			if err == nil && !fi.IsDir() && !strings.HasSuffix(p, "last_reserved_ip.0") && fi.Name() != ".lock" && fi.Name() != "lock" &&
				(!strings.HasPrefix(p, "/var/lib/cni/") || strings.Contains(p, s.prefix)) {
				s.files = append(s.files, p)
			}
			return nil
		})
	}
	sort.Strings(s.files)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "nsfs") && strings.Contains(sc.Text(), state) {
			s.mounts = append(s.mounts, sc.Text())
		}
	}
	return s
}

// ours reports whether a rule or interface line belongs to the networks
// of a or b: it names one of their bridges or CNI IDs, or an address in
// one of their subnets.
func ours(line string, a, b netState) bool {
	for _, st := range []netState{a, b} {
		if strings.Contains(line, st.prefix) {
			return true
		}
		for _, br := range st.bridges {
			if strings.Contains(line, br) {
				return true
			}
		}
		for _, m := range ipv4.FindAllString(line, -1) {
			addr, err := netip.ParseAddr(m)
			if err != nil {
				continue
			}
			for _, pfx := range st.subnets {
				if pfx.Contains(addr) {
					return true
				}
			}
		}
	}
	return false
}

func diffLists(a, b []string) (gone, added []string) {
	in := func(l []string, x string) bool {
		for _, y := range l {
			if y == x {
				return true
			}
		}
		return false
	}
	for _, x := range a {
		if !in(b, x) {
			gone = append(gone, x)
		}
	}
	for _, x := range b {
		if !in(a, x) {
			added = append(added, x)
		}
	}
	return gone, added
}

// assertNetSame fails t when the host's network state differs from before.
func assertNetSame(t *testing.T, what string, before netState) {
	t.Helper()
	assertNetSameAs(t, what, before, snapshotNet(t))
}

func assertNetSameAs(t *testing.T, what string, before, after netState) {
	t.Helper()
	filter := func(l []string) []string {
		var out []string
		for _, x := range l {
			if ours(x, before, after) {
				out = append(out, x)
			}
		}
		return out
	}
	for _, c := range []struct {
		kind string
		a, b []string
	}{{"firewall rules", filter(before.rules), filter(after.rules)}, {"interfaces", filter(before.links), filter(after.links)},
		{"files", before.files, after.files}, {"netns mounts", before.mounts, after.mounts}} {
		if gone, added := diffLists(c.a, c.b); len(gone)+len(added) > 0 {
			t.Errorf("%s: %s changed: gone %q, added %q", what, c.kind, gone, added)
		}
	}
}

// TestBridgeNetworks covers --net bridge and named networks against real CNI
// plugins and iptables: published ports, a taken port, the host's
// loopback, names within a network and isolation between networks,
// --internal, and that nothing is left behind (--rm runs, a killed sbxrun
// and gc, network rm). Subtests run in order: they share the default
// network, which the test removes at the end.
func TestBridgeNetworks(t *testing.T) {
	useNamespace(t, true)
	t.Cleanup(func() {
		if stdout, stderr, code := run(t, "network", "rm", "sbxrun"); code != 0 && !strings.Contains(stderr, "no network named") {
			t.Errorf("network rm sbxrun: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})

	// warm makes sure the default network and its bridge exist: they stay
	// until `network rm`, and leak checks compare what comes after.
	warm := func(t *testing.T) {
		t.Helper()
		stdout, stderr, code := sandbox(t, nameFor(t, "warm"), "--net", "bridge", "-p", "8000", "base", "--", "true")
		expect(t, "warm-up run", code, 0, stdout, stderr)
	}

	t.Run("publish", func(t *testing.T) {
		ports := []int{freeHostPort(t), freeHostPort(t)}
		names := []string{nameFor(t, "a"), nameFor(t, "b")}
		for i, name := range names {
			stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--name", name, "--net", "bridge",
				"-p", fmt.Sprintf("%d:8000", ports[i]), "base", "--", "sh", "-c", httpdScript(name))
			expect(t, "run -d -p", code, 0, stdout, stderr)
			defer run(t, "rm", "-f", name)
			if want := fmt.Sprintf("sbxrun: %s publishes 127.0.0.1:%d->8000/tcp\n", name, ports[i]); stdout != name+"\n" || stderr != want {
				t.Errorf("run -d -p printed %q and %q, want the name, and %q on stderr", stdout, stderr, want)
			}
		}
		for i, name := range names {
			body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/", ports[i]), 15*time.Second)
			if err != nil || body != "hello-"+name+"\n" {
				t.Errorf("GET 127.0.0.1:%d = %q, %v; want hello-%s", ports[i], body, err, name)
			}
			stdout, stderr, code := run(t, "port", name)
			expect(t, "port", code, 0, stdout, stderr)
			if want := fmt.Sprintf("8000/tcp -> 127.0.0.1:%d\n", ports[i]); stdout != want {
				t.Errorf("sbxrun port %s = %q, want %q", name, stdout, want)
			}
			stdout, _, _ = run(t, "ps")
			if !strings.Contains(stdout, fmt.Sprintf("127.0.0.1:%d->8000/tcp", ports[i])) {
				t.Errorf("sbxrun ps does not show port %d:\n%s", ports[i], stdout)
			}
		}

		// A third sandbox asks for a host port the first publishes.
		name := nameFor(t, "c")
		stdout, stderr, code := sandbox(t, name, "--net", "bridge", "-p", fmt.Sprintf("%d:8000", ports[0]), "base", "--", "true")
		expect(t, "run -p TAKEN", code, 125, stdout, stderr)
		want := fmt.Sprintf("sbxrun: host port 127.0.0.1:%d/tcp is already in use by sandbox %s/%s: choose another host port with -p\n", ports[0], nsFor(t), names[0])
		if stderr != want {
			t.Errorf("stderr = %q, want %q", stderr, want)
		}
		// A port a host process holds.
		held := serveOnce(t, "127.0.0.1:0", "held")
		stdout, stderr, code = sandbox(t, name, "--net", "bridge", "-p", fmt.Sprintf("%d:8000", held), "base", "--", "true")
		expect(t, "run -p HELD", code, 125, stdout, stderr)
		if !strings.Contains(stderr, fmt.Sprintf("host port 127.0.0.1:%d/tcp is already in use by", held)) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr = %q, want one line naming port %d and its holder", stderr, held)
		}
		// -p on the host network is refused.
		stdout, stderr, code = sandbox(t, name, "--net", "host", "-p", "8000", "base", "--", "true")
		expect(t, "run --net host -p", code, 125, stdout, stderr)
		if !strings.Contains(stderr, "add --net bridge") {
			t.Errorf("stderr = %q, want the fix --net bridge", stderr)
		}
	})

	t.Run("host loopback unreachable", func(t *testing.T) {
		secret := serveOnce(t, "127.0.0.1:0", "secret")
		control := serveOnce(t, "0.0.0.0:0", "control")
		script := fmt.Sprintf(`gw=$(ip route | awk '/^default/ {print $3}'); echo gw=$gw
nc -w 2 $gw %d </dev/null; nc -w 2 $gw %d </dev/null; nc -w 2 127.0.0.1 %d </dev/null
echo ping_group_range=$(cat /proc/sys/net/ipv4/ping_group_range); echo done`, control, secret, secret)
		stdout, stderr, code := sandbox(t, nameFor(t), "--net", "bridge", "base", "--", "sh", "-c", script)
		expect(t, "run", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "control") || !strings.Contains(stdout, "done") {
			t.Errorf("the sandbox did not reach a host service on 0.0.0.0 through its gateway (the check would prove nothing):\n%s\n%s", stdout, stderr)
		}
		if strings.Contains(stdout, "secret") {
			t.Errorf("the sandbox reached a service bound to the host's 127.0.0.1:\n%s", stdout)
		}
		// ping without NET_RAW: every group may open ICMP sockets (the
		// test image's busybox ping only tries raw sockets, so the setting
		// is what is checked).
		if !strings.Contains(stdout, "ping_group_range=0 2147483647\n") {
			t.Errorf("the sandbox's net.ipv4.ping_group_range is not 0 2147483647:\n%s", stdout)
		}
		// A sandbox that sends packets for 127.0.0.1 to the bridge itself
		// (what a raw socket can do; here a privileged sandbox reroutes its
		// own loopback) meets sbxrun's guard: portmap has turned on
		// route_localnet on the bridge, which would let them in.
		attack := fmt.Sprintf(`gw=$(ip route | awk '/^default/ {print $3}')
sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1 || echo NOSYSCTL
ip addr del 127.0.0.1/8 dev lo && ip route add 127.0.0.1/32 via $gw dev eth0 || echo NOROUTE
ip route get 127.0.0.1; nc -w 2 127.0.0.1 %d </dev/null; echo done`, secret)
		stdout, stderr, code = sandbox(t, nameFor(t, "raw"), "--net", "bridge", "--privileged", "-p", "8000", "base", "--", "sh", "-c", attack)
		expect(t, "run --privileged", code, 0, stdout, stderr)
		if strings.Contains(stdout, "NOSYSCTL") || strings.Contains(stdout, "NOROUTE") || !strings.Contains(stdout, "via") || !strings.Contains(stdout, "done") {
			t.Errorf("the sandbox could not route 127.0.0.1 to the bridge (the check would prove nothing):\n%s\n%s", stdout, stderr)
		}
		if strings.Contains(stdout, "secret") {
			t.Errorf("a sandbox routing 127.0.0.1 to the bridge reached a service bound to the host's 127.0.0.1:\n%s", stdout)
		}
	})

	t.Run("names", func(t *testing.T) {
		netA, netB, netI := nameFor(t, "a"), nameFor(t, "b"), nameFor(t, "i")
		for _, args := range [][]string{{netA}, {netB}, {"--internal", netI}} {
			stdout, stderr, code := run(t, append([]string{"network", "create"}, args...)...)
			expect(t, "network create", code, 0, stdout, stderr)
		}
		defer run(t, "network", "rm", netA, netB, netI)
		srv := nameFor(t, "srv")
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--name", srv, "--net", netA, "--network-alias", "web",
			"base", "--", "sh", "-c", httpdScript("srv"))
		expect(t, "run -d --net A", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", srv)
		stdout, stderr, code = run(t, "exec", srv, "ip", "-4", "-o", "addr", "show", "eth0")
		expect(t, "exec ip addr", code, 0, stdout, stderr)
		m := regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+)/`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("no address on the server's eth0: %q", stdout)
		}
		ip := m[1]
		stdout, stderr, code = run(t, "inspect", srv)
		expect(t, "inspect", code, 0, stdout, stderr)
		var in []struct {
			NetworkSettings struct{ Network, IPAddress, SandboxKey string }
		}
		if err := json.Unmarshal([]byte(stdout), &in); err != nil || len(in) != 1 || in[0].NetworkSettings.IPAddress != ip || in[0].NetworkSettings.Network != netA || in[0].NetworkSettings.SandboxKey == "" {
			t.Errorf("inspect's NetworkSettings = %+v (%v), want network %s, address %s and the namespace", in, err, netA, ip)
		}

		// Same network: by name and by alias. Names come from the
		// sandbox's /etc/hosts, which every libc reads; the static busybox
		// of the test image cannot load glibc's NSS modules, so the script
		// looks names up in /etc/hosts itself.
		stdout, stderr, code = sandbox(t, nameFor(t, "client"), "--net", netA, "base", "--", "sh", "-c",
			fmt.Sprintf(hostsLookup+"for h in %s web %s; do a=$(lookup $h); [ -n \"$a\" ] || a=$h; get $a || echo FAIL $h; done", srv, ip))
		expect(t, "same network", code, 0, stdout, stderr)
		if stdout != "hello-srv\nhello-srv\nhello-srv\n" {
			t.Errorf("a sandbox on the same network got %q, want hello-srv by name, alias and address\nstderr: %s", stdout, stderr)
		}
		// Another network: neither the name nor the address.
		stdout, stderr, code = sandbox(t, nameFor(t, "other"), "--net", netB, "base", "--", "sh", "-c",
			fmt.Sprintf(hostsLookup+"[ -n \"$(lookup %s)\" ] && echo NAMED; get %s || echo NOROUTE", srv, ip))
		expect(t, "other network", code, 0, stdout, stderr)
		if strings.Contains(stdout, "hello") || strings.Contains(stdout, "NAMED") || !strings.Contains(stdout, "NOROUTE") {
			t.Errorf("a sandbox on another network got %q, want neither the name nor the address to answer", stdout)
		}
		// --internal: no default route, the host's addresses unreachable.
		control := serveOnce(t, "0.0.0.0:0", "control")
		stdout, stderr, code = sandbox(t, nameFor(t, "internal"), "--net", netI, "base", "--", "sh", "-c",
			fmt.Sprintf("ip route; nc -w 2 192.0.2.2 %d </dev/null; nc -w 2 %s 8000 </dev/null; echo done", control, ip))
		expect(t, "internal network", code, 0, stdout, stderr)
		if strings.Contains(stdout, "default") || strings.Contains(stdout, "control") || !strings.Contains(stdout, "done") {
			t.Errorf("a sandbox on an internal network: %q, want no default route and nothing reached", stdout)
		}
		// A sandbox that joins later is found by those already running,
		// and forgotten when it goes.
		late := nameFor(t, "late")
		stdout, stderr, code = run(t, "run", "--pull", "never", "-d", "--name", late, "--net", netA, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d late", code, 0, stdout, stderr)
		stdout, _, _ = run(t, "exec", srv, "cat", "/etc/hosts")
		if !strings.Contains(stdout, " "+late) && !strings.Contains(stdout, "\t"+late) {
			t.Errorf("the server's /etc/hosts does not list %s, which joined later:\n%s", late, stdout)
		}
		run(t, "rm", "-f", late)
		stdout, _, _ = run(t, "exec", srv, "cat", "/etc/hosts")
		if strings.Contains(stdout, late) {
			t.Errorf("the server's /etc/hosts still lists %s after it was removed:\n%s", late, stdout)
		}
		stdout, stderr, code = sandbox(t, nameFor(t, "internal-p"), "--net", netI, "-p", "8000", "base", "--", "true")
		expect(t, "-p on an internal network", code, 125, stdout, stderr)
		if !strings.Contains(stderr, "is internal: it publishes no ports") {
			t.Errorf("stderr = %q, want the internal network named", stderr)
		}
		// Bad input: an alias that is no host name, an alias on the
		// default network, a network that does not exist.
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--net", netA, "--network-alias", "a b"}, `invalid --network-alias "a b"`},
			{[]string{"--net", "bridge", "--network-alias", "web"}, "--network-alias needs a named network"},
			{[]string{"--net", "no-such-net"}, `no network named "no-such-net": create it with`},
		} {
			stdout, stderr, code := sandbox(t, nameFor(t, "bad"), append(tt.args, "base", "--", "true")...)
			expect(t, strings.Join(tt.args, " "), code, 125, stdout, stderr)
			if !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%s: stderr %q, want one line with %q", strings.Join(tt.args, " "), stderr, tt.want)
			}
		}
		// A network in use cannot be removed.
		stdout, stderr, code = run(t, "network", "rm", netA)
		expect(t, "network rm in use", code, 125, stdout, stderr)
		if !strings.Contains(stderr, fmt.Sprintf("network %q is in use by %s/%s", netA, nsFor(t), srv)) {
			t.Errorf("stderr = %q, want the sandbox that uses the network", stderr)
		}
		stdout, _, _ = run(t, "network", "ls")
		for _, n := range []string{netA, netB, netI} {
			if !strings.Contains(stdout, n) {
				t.Errorf("network ls does not list %s:\n%s", n, stdout)
			}
		}
	})

	t.Run("no leaks", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		n := netLeakRuns()
		start := time.Now()
		for i := range n {
			stdout, stderr, code := runWith(t, opts{}, "run", "--pull", "never", "--name", nameFor(t, strconv.Itoa(i)), "--net", "bridge", "-p", "8000", "-p", "9000/udp", "base", "--", "true")
			if code != 0 {
				t.Fatalf("run %d: exit %d\nstdout: %s\nstderr: %s", i, code, stdout, stderr)
			}
		}
		t.Logf("%d --rm runs on the bridge with two published ports: %s each", n, time.Since(start)/time.Duration(n))
		assertNetSame(t, fmt.Sprintf("after %d --rm runs", n), before)

		// A named network and a sandbox on it, then rm and network rm.
		netN := nameFor(t, "net")
		stdout, stderr, code := run(t, "network", "create", netN)
		expect(t, "network create", code, 0, stdout, stderr)
		stdout, stderr, code = sandbox(t, nameFor(t, "on-net"), "--net", netN, "-p", "8000", "base", "--", "true")
		expect(t, "run on a named network", code, 0, stdout, stderr)
		stdout, stderr, code = run(t, "network", "rm", netN)
		expect(t, "network rm", code, 0, stdout, stderr)
		assertNetSame(t, "after network create, a run and network rm", before)
	})

	t.Run("gc after kill", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		name := nameFor(t)
		p := start(t, opts{}, "run", "--pull", "never", "--name", name, "--net", "bridge", "-p", "8000", "base", "--", "sh", "-c", loopScript)
		waitOutput(t, p, p.stdout, "ready", 30*time.Second)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(t, 10*time.Second)
		stdout, stderr, code := run(t, "gc")
		expect(t, "gc", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "released the network of "+name) {
			t.Errorf("gc printed %q, want it to release the network of %s", stdout, name)
		}
		assertNetSame(t, "after a killed run and gc", before)
	})

	t.Run("gc after kills at random points", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
		for i := range 8 {
			p := start(t, opts{}, "run", "--pull", "never", "--name", nameFor(t, strconv.Itoa(i)), "--net", "bridge", "-p", "8000", "base", "--", "sleep", "30")
			delay := time.Duration(rng.IntN(400)) * time.Millisecond
			time.Sleep(delay)
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			p.wait(t, 10*time.Second)
			t.Logf("run %d killed after %s", i, delay)
		}
		// A plugin a killed run started may still be at work: gc leaves
		// an unfinished attachment alone for 10 s.
		time.Sleep(11 * time.Second)
		stdout, stderr, code := run(t, "gc")
		expect(t, "gc", code, 0, stdout, stderr)
		assertNetSame(t, "after 8 runs killed at random points and gc", before)
	})

	t.Run("containerd restart", func(t *testing.T) {
		d := newDaemon(t)
		o := d.opts()
		o.env = append(o.env, "SBXRUN_CNI_CONF_DIR="+os.Getenv("SBXRUN_CNI_CONF_DIR"))
		state := filepath.Join(d.dir, "sbxrun-state")
		// The default network exists from the first run on.
		stdout, stderr, code := runWith(t, o, "run", "--pull", "never", "--name", nameFor(t, "warm"), "--net", "bridge", "base", "--", "true")
		expect(t, "warm-up run", code, 0, stdout, stderr)
		before := snapshotNetOf(t, state)
		p := start(t, o, "run", "--pull", "never", "--name", nameFor(t), "--net", "bridge", "-p", "8000", "base", "--", "sh", "-c", "echo ready; sleep 4; echo finished")
		waitOutput(t, p, p.stdout, "ready", 30*time.Second)
		d.stop(t)
		d.start(t)
		if code := p.wait(t, 60*time.Second); code != 0 || !strings.Contains(p.stdout.String(), "finished") {
			t.Errorf("run across a containerd restart: exit %d, stdout %q, stderr %q", code, p.stdout.String(), p.stderr.String())
		}
		assertNetSameAs(t, "after a run across a containerd restart", before, snapshotNetOf(t, state))
	})

	t.Run("default network", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		hostNS, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		// No --net: the default network, a namespace of the sandbox's own
		// with an address on eth0; --net host: the host's namespace.
		script := "readlink /proc/self/ns/net; ip -4 -o addr show eth0 | grep -o 'inet [0-9.]*' || echo NOADDR"
		stdout, stderr, code := sandbox(t, nameFor(t, "dflt"), "base", "--", "sh", "-c", script)
		expect(t, "run without --net", code, 0, stdout, stderr)
		if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 2 || lines[0] == hostNS || !strings.HasPrefix(lines[1], "inet ") {
			t.Errorf("run without --net: %q, want a network namespace other than the host's %s and an address on eth0", stdout, hostNS)
		}
		stdout, stderr, code = sandbox(t, nameFor(t, "host"), "--net", "host", "base", "--", "readlink", "/proc/self/ns/net")
		expect(t, "run --net host", code, 0, stdout, stderr)
		if strings.TrimSpace(stdout) != hostNS {
			t.Errorf("run --net host: namespace %q, want the host's %s", stdout, hostNS)
		}
		// exec joins the sandbox's network.
		name := nameFor(t, "exec")
		stdout, stderr, code = run(t, "run", "--pull", "never", "-d", "--name", name, "base", "--", "sh", "-c", loopScript)
		expect(t, "run -d", code, 0, stdout, stderr)
		stdout, stderr, code = run(t, "exec", name, "sh", "-c", "readlink /proc/self/ns/net; readlink /proc/1/ns/net")
		expect(t, "exec", code, 0, stdout, stderr)
		if l := strings.Fields(stdout); len(l) != 2 || l[0] != l[1] || l[0] == hostNS {
			t.Errorf("exec's network namespace and the workload's: %q, want the same, not the host's %s", stdout, hostNS)
		}
		stdout, stderr, code = run(t, "rm", "-f", name)
		expect(t, "rm -f", code, 0, stdout, stderr)
		// spec shows the namespace without --net too.
		stdout, stderr, code = run(t, "spec", "--pull", "never", "--name", nameFor(t, "spec"), "base")
		expect(t, "spec", code, 0, stdout, stderr)
		if want := filepath.Join(os.Getenv("SBXRUN_STATE_DIR"), "netns", nsFor(t)+"-"+nameFor(t, "spec")); !strings.Contains(stdout, `"path": "`+want+`"`) {
			t.Errorf("spec without --net does not name the namespace %s:\n%s", want, stdout)
		}
		assertNetSame(t, "after runs on the default network", before)
	})

	t.Run("container mode", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		srv := nameFor(t, "srv")
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--name", srv, "base", "--", "sh", "-c", httpdScript("srv"))
		expect(t, "run -d", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", srv)
		srvNS, stderr, code := run(t, "exec", srv, "readlink", "/proc/self/ns/net")
		expect(t, "exec readlink", code, 0, srvNS, stderr)
		// The joiner reaches the server on the namespace's loopback, and
		// has its /etc/hosts.
		join := nameFor(t, "join")
		stdout, stderr, code = sandbox(t, join, "--net", "container:"+srv, "base", "--", "sh", "-c",
			hostsLookup+"readlink /proc/self/ns/net; for i in 1 2 3 4 5 6 7 8 9 10; do get 127.0.0.1 && break; sleep 0.3; done; grep -q "+srv+" /etc/hosts && echo HOSTS")
		expect(t, "run --net container:", code, 0, stdout, stderr)
		if want := srvNS + "hello-srv\nHOSTS\n"; stdout != want {
			t.Errorf("run --net container:%s printed %q, want %q (its namespace, its server on 127.0.0.1, its hosts file)", srv, stdout, want)
		}
		stdout, _, _ = run(t, "ps", "-a")
		if strings.Contains(stdout, join) {
			t.Errorf("the --rm joiner is still listed:\n%s", stdout)
		}
		// Refusals: one line, exit 125, nothing created.
		stopped := nameFor(t, "stopped")
		stdout, stderr, code = run(t, "run", "--pull", "never", "--rm=false", "--name", stopped, "base", "--", "true")
		expect(t, "run --rm=false", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", stopped)
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--net", "container:" + nameFor(t, "nosuch")}, fmt.Sprintf("no sandbox named %q is running", nameFor(t, "nosuch"))},
			{[]string{"--net", "container:" + stopped}, fmt.Sprintf("sandbox %q is not running", stopped)},
			{[]string{"--net", "container:" + srv, "-p", "8000"}, fmt.Sprintf("-p needs a network of the sandbox's own, and --net container:%s shares sandbox %q's", srv, srv)},
			{[]string{"--net", "container:" + srv, "-P"}, "-P needs a network of the sandbox's own"},
		} {
			stdout, stderr, code := sandbox(t, nameFor(t, "bad"), append(tt.args, "base", "--", "true")...)
			expect(t, strings.Join(tt.args, " "), code, 125, stdout, stderr)
			if !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%s: stderr %q, want one line with %q", strings.Join(tt.args, " "), stderr, tt.want)
			}
		}
		run(t, "rm", "-f", srv, stopped)
		assertNetSame(t, "after a sandbox joined another's network", before)
	})

	t.Run("publish all", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		// The plain test image EXPOSEs 8000/tcp and 9000/udp.
		name := nameFor(t)
		stdout, stderr, code := run(t, "run", "--pull", "never", "-d", "--name", name, "-P", plainRef, "--", "sh", "-c", httpdScript(name))
		expect(t, "run -d -P", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", name)
		m := regexp.MustCompile(`^sbxrun: \S+ publishes 127\.0\.0\.1:(\d+)->8000/tcp, 127\.0\.0\.1:(\d+)->9000/udp\n$`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("run -d -P printed %q on stderr, want the two EXPOSEd ports on free host ports of 127.0.0.1", stderr)
		}
		body, err := httpBody("http://127.0.0.1:"+m[1]+"/", 15*time.Second)
		if err != nil || body != "hello-"+name+"\n" {
			t.Errorf("GET 127.0.0.1:%s = %q, %v; want hello-%s", m[1], body, err, name)
		}
		stdout, stderr, code = run(t, "port", name, "9000/udp")
		expect(t, "port 9000/udp", code, 0, stdout, stderr)
		if stdout != "127.0.0.1:"+m[2]+"\n" {
			t.Errorf("port %s 9000/udp = %q, want 127.0.0.1:%s", name, stdout, m[2])
		}
		// -p for one of them wins; -P adds the other.
		hp := freeHostPort(t)
		stdout, stderr, code = sandbox(t, nameFor(t, "both"), "-P", "-p", fmt.Sprintf("%d:8000", hp), plainRef, "--", "sh", "-c", "true")
		expect(t, "run -P -p", code, 0, stdout, stderr)
		stdout, stderr, code = sandbox(t, nameFor(t, "host"), "--net", "host", "-P", plainRef, "--", "true")
		expect(t, "run --net host -P", code, 125, stdout, stderr)
		if !strings.Contains(stderr, "-P needs a network of the sandbox's own") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--net host -P: stderr %q, want one line refusing -P", stderr)
		}
		run(t, "rm", "-f", name)
		assertNetSame(t, "after -P runs", before)
	})

	t.Run("publish address", func(t *testing.T) {
		warm(t)
		before := snapshotNet(t)
		conf := filepath.Join(t.TempDir(), "sbxrun.yaml")
		if err := os.WriteFile(conf, []byte("default_publish_address: 127.0.0.2\nprofiles: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o := opts{env: []string{"SBXRUN_SYSTEM_CONFIG=" + conf}}
		name := nameFor(t)
		stdout, stderr, code := runWith(t, o, "run", "--pull", "never", "-d", "--name", name, "-p", "8000", "base", "--", "sh", "-c", httpdScript(name))
		expect(t, "run -d -p with default_publish_address", code, 0, stdout, stderr)
		defer run(t, "rm", "-f", name)
		m := regexp.MustCompile(`publishes 127\.0\.0\.2:(\d+)->8000/tcp\n$`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("stderr %q, want port 8000 published on 127.0.0.2, the configured default", stderr)
		}
		body, err := httpBody("http://127.0.0.2:"+m[1]+"/", 15*time.Second)
		if err != nil || body != "hello-"+name+"\n" {
			t.Errorf("GET 127.0.0.2:%s = %q, %v; want hello-%s", m[1], body, err, name)
		}
		// An address given with -p wins.
		stdout, stderr, code = runWith(t, o, "spec", "--pull", "never", "--name", nameFor(t, "given"), "-p", "127.0.0.1::8000", "base")
		expect(t, "spec -p 127.0.0.1::8000", code, 0, stdout, stderr)
		if err := os.WriteFile(conf, []byte("default_publish_address: everywhere\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code = sandboxWith(t, o, nameFor(t, "bad"), "-p", "8000", "base", "--", "true")
		expect(t, "run with a bad default_publish_address", code, 125, stdout, stderr)
		if !strings.Contains(stderr, conf+":1: default_publish_address \"everywhere\" is not an IP address") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr %q, want one line naming %s:1 and the value", stderr, conf)
		}
		run(t, "rm", "-f", name)
		assertNetSame(t, "after runs publishing on the configured address", before)
	})

	t.Run("spec", func(t *testing.T) {
		stdout, stderr, code := run(t, "spec", "--pull", "never", "--name", nameFor(t), "--net", "bridge", "base")
		expect(t, "spec", code, 0, stdout, stderr)
		var spec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string }
			}
		}
		if err := json.Unmarshal([]byte(stdout), &spec); err != nil {
			t.Fatalf("spec: %v", err)
		}
		want := filepath.Join(os.Getenv("SBXRUN_STATE_DIR"), "netns", nsFor(t)+"-"+nameFor(t))
		found := false
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == "network" {
				found = ns.Path == want
			}
		}
		if !found {
			t.Errorf("spec's network namespace is not %q: %+v", want, spec.Linux.Namespaces)
		}
		// A unit carries --net and -p, even while its port is taken (by
		// the service it was generated for, typically).
		held := serveOnce(t, "127.0.0.1:0", "held")
		stdout, stderr, code = run(t, "systemd", "generate", "--name", nameFor(t, "unit"), "base", "--net", "bridge", "-p", fmt.Sprintf("%d:8000", held), "--", "sh")
		expect(t, "systemd generate", code, 0, stdout, stderr)
		if !strings.Contains(stdout, "--net bridge") || !strings.Contains(stdout, fmt.Sprintf("-p %d:8000", held)) {
			t.Errorf("the unit does not carry --net bridge -p %d:8000:\n%s", held, stdout)
		}
	})
}
