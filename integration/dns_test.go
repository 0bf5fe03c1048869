package integration

import (
	"regexp"
	"strings"
	"testing"
)

// catNameFiles prints the sandbox's /etc/hosts, a separator line, then its
// /etc/resolv.conf.
var catNameFiles = []string{"sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf"}

// checkNameFiles checks what catNameFiles printed in a sandbox run with
// --add-host db.internal:10.1.2.3 --add-host gw.internal:host-gateway
// --dns 192.0.2.53 --dns-search example.test --dns-option ndots:2.
func checkNameFiles(t *testing.T, what, out string) {
	t.Helper()
	hosts, resolv, ok := strings.Cut(out, "---\n")
	if !ok {
		t.Fatalf("%s printed no separator:\n%s", what, out)
	}
	if !strings.Contains(hosts, "10.1.2.3\tdb.internal\n") {
		t.Errorf("%s: /etc/hosts lacks db.internal:\n%s", what, hosts)
	}
	if !regexp.MustCompile(`(?m)^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\tgw\.internal$`).MatchString(hosts) {
		t.Errorf("%s: /etc/hosts lacks gw.internal at the gateway's address:\n%s", what, hosts)
	}
	var servers, search, options []string
	for _, line := range strings.Split(strings.TrimSpace(resolv), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain":
			search = append(search, f[1:]...)
		case "options":
			options = append(options, f[1:]...)
		}
	}
	if strings.Join(servers, " ") != "192.0.2.53" || strings.Join(search, " ") != "example.test" || strings.Join(options, " ") != "ndots:2" {
		t.Errorf("%s: /etc/resolv.conf has nameservers %q, search %q, options %q; want only 192.0.2.53, example.test, ndots:2:\n%s",
			what, servers, search, options, resolv)
	}
}

var nameFlags = []string{"--add-host", "db.internal:10.1.2.3", "--add-host", "gw.internal:host-gateway",
	"--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:2"}

// TestAddHostDNS: --add-host and --dns* land in the sandbox's /etc/hosts
// and /etc/resolv.conf on the default bridge and on a named network, for
// run and for create/start; bad values and network modes without files of
// the sandbox's own are one line and exit 125, with nothing created; and
// nothing is left on the host.
func TestAddHostDNS(t *testing.T) {
	useNamespace(t, false)
	t.Cleanup(func() {
		if stdout, stderr, code := run(t, "network", "rm", "sbxrun"); code != 0 && !strings.Contains(stderr, "no network named") {
			t.Errorf("network rm sbxrun: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})

	// The default bridge (created now if missing: it stays until the
	// cleanup's `network rm`, so it comes before the leak snapshot).
	stdout, stderr, code := sandbox(t, nameFor(t, "bridge"), append(append([]string{"--net", "bridge"}, nameFlags...), append([]string{"base", "--"}, catNameFiles...)...)...)
	expect(t, "run --net bridge "+strings.Join(nameFlags, " "), code, 0, stdout, stderr)
	checkNameFiles(t, "run --net bridge", stdout)
	before := snapshotNet(t)

	netN := nameFor(t, "net")
	stdout, stderr, code = run(t, "network", "create", netN)
	expect(t, "network create", code, 0, stdout, stderr)
	stdout, stderr, code = sandbox(t, nameFor(t, "named"), append(append([]string{"--net", netN}, nameFlags...), append([]string{"base", "--"}, catNameFiles...)...)...)
	expect(t, "run --net "+netN, code, 0, stdout, stderr)
	checkNameFiles(t, "run on a named network", stdout)

	// create keeps the flags for start.
	created := nameFor(t, "created")
	stdout, stderr, code = run(t, append(append([]string{"create", "--pull", "never", "--name", created, "--net", netN}, nameFlags...), append([]string{"base", "--"}, catNameFiles...)...)...)
	expect(t, "create", code, 0, stdout, stderr)
	stdout, stderr, code = run(t, "start", "-a", created)
	expect(t, "start -a", code, 0, stdout, stderr)
	checkNameFiles(t, "create, then start", stdout)
	stdout, stderr, code = run(t, "rm", created)
	expect(t, "rm", code, 0, stdout, stderr)

	stdout, stderr, code = run(t, "network", "rm", netN)
	expect(t, "network rm", code, 0, stdout, stderr)
	assertNetSame(t, "after runs with --add-host and --dns, and network rm", before)

	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--add-host", "db.internal"}, `sbxrun: --add-host: "db.internal" has no IP address: use HOST:IP, such as db.internal:10.1.2.3 or host.docker.internal:host-gateway`},
			{[]string{"--add-host", "db.internal:10.1.2"}, `sbxrun: --add-host: "db.internal:10.1.2": "10.1.2" is not an IP address: use HOST:IP, such as db.internal:10.1.2.3 or host.docker.internal:host-gateway`},
			{[]string{"--dns", "dns.example"}, `sbxrun: --dns: "dns.example" is not an IP address: use a DNS server's address, such as 192.0.2.53`},
			{[]string{"--dns-search", "a b"}, `sbxrun: --dns-search: "a b" is not one domain: use one domain, such as example.test (repeat the flag for more)`},
			{[]string{"--net", "host", "--add-host", "gw:host-gateway"}, `sbxrun: --add-host gw:host-gateway: --net host has no gateway of its own: give the host's address instead, or use --net bridge`},
			{[]string{"--net", "none", "--add-host", "gw:host-gateway"}, `sbxrun: --add-host gw:host-gateway: --net none has no gateway of its own: give the host's address instead, or use --net bridge`},
			{[]string{"--net", "host", "--add-host", "db:10.1.2.3"}, `sbxrun: --add-host needs a /etc/hosts of the sandbox's own, which sbxrun writes on bridge and named networks, not with --net host: use --net bridge (or a network's name)`},
			{[]string{"--net", "none", "--dns", "192.0.2.53"}, `sbxrun: --dns needs a /etc/resolv.conf of the sandbox's own, which sbxrun writes on bridge and named networks, not with --net none: use --net bridge (or a network's name)`},
			{[]string{"--net", "container:web", "--add-host", "db:10.1.2.3"}, `sbxrun: conflicting options: --add-host and --net container:web: the sandbox uses the files of the one it joins; give --add-host to that sandbox`},
			{[]string{"--net", "container:web", "--dns", "192.0.2.53"}, `sbxrun: conflicting options: --dns and --net container:web: the sandbox uses the files of the one it joins; give --dns to that sandbox`},
		} {
			for _, verb := range []string{"run", "create"} {
				name := nameFor(t, verb)
				stdout, stderr, code := run(t, append(append([]string{verb, "--pull", "never", "--name", name}, tt.args...), "base", "--", "true")...)
				what := "sbxrun " + verb + " " + strings.Join(tt.args, " ")
				expect(t, what, code, 125, stdout, stderr)
				if stderr != tt.want+"\n" {
					t.Errorf("%s printed %q, want the one line %q", what, stderr, tt.want)
				}
				assertGone(t, name)
			}
		}
	})
}
