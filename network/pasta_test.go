package network

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPastaArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ports []Port
		want  []string // the forwards, after the fixed options
	}{
		{"no ports", nil, []string{"-t", "none", "-u", "none"}},
		{"tcp on loopback", []Port{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 8000, Protocol: "tcp"}},
			[]string{"-t", "127.0.0.1/8080:8000", "-u", "none"}},
		{"every address, udp too", []Port{
			{HostIP: "0.0.0.0", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
			{HostIP: "192.0.2.7", HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
		}, []string{"-t", "8080:80", "-t", "192.0.2.7/8443:443", "-u", "127.0.0.1/5353:53"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := pastaArgs("/state/netns/ns-id", "/state/id.pid", "", tc.ports)
			fixed := []string{"--netns", "/state/netns/ns-id", "--config-net", "--no-map-gw", "--quiet", "--pid", "/state/id.pid", "-T", "none", "-U", "none"}
			if !slices.Equal(args[:len(fixed)], fixed) {
				t.Errorf("options %q, want %q first: the gateway must not map to the host's loopback, nor the namespace's ports to the host's", args, fixed)
			}
			if got := args[len(fixed):]; !slices.Equal(got, tc.want) {
				t.Errorf("forwards %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPastaError(t *testing.T) {
	r := &record{Name: "web", Attachment: Attachment{Ports: []Port{
		{HostIP: "127.0.0.1", HostPort: 18080, ContainerPort: 8000, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 18081, ContainerPort: 8001, Protocol: "tcp"},
	}}}
	err := pastaError(r, errors.New("exit status 1"), "Failed to send 69 bytes to syslog\nFailed to bind any port for '-t 127.0.0.1/18081:8001', exiting\n")
	var pt *PortTakenError
	if !errors.As(err, &pt) || pt.Port.HostPort != 18081 {
		t.Fatalf("pastaError = %v, want the port 18081 taken", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:18081/tcp is already in use") {
		t.Errorf("message %q does not name the port", err)
	}
	err = pastaError(r, errors.New("exit status 1"), "Failed to send 10 bytes to syslog\nCouldn't open user namespace /proc/1/ns/user: Permission denied\n")
	if got := err.Error(); strings.Contains(got, "syslog") || !strings.Contains(got, "Couldn't open user namespace") || strings.Count(got, "\n") != 0 {
		t.Errorf("message %q: want pasta's reason on one line, without the syslog noise", got)
	}
}

func TestPingGroupRange(t *testing.T) {
	// The test runs in some user namespace: the range must be a valid
	// "0 N" either way.
	f := strings.Fields(pingGroupRange())
	if len(f) != 2 || f[0] != "0" {
		t.Errorf("pingGroupRange() = %q", pingGroupRange())
	}
}

func TestPastaHostsHaveNoMembers(t *testing.T) {
	a := &record{Attachment: Attachment{Network: PastaNetwork, IP: "192.0.2.2"}, Namespace: "ns", ID: "a", Name: "a"}
	b := &record{Attachment: Attachment{Network: PastaNetwork, IP: "192.0.2.2"}, Namespace: "ns", ID: "b", Name: "b"}
	if h := string(hostsFile(a, []*record{a, b})); strings.Contains(h, "\tb") {
		t.Errorf("hosts of a rootless sandbox name another one (they share the host's address, not a network):\n%s", h)
	}
}

// On a rootless named network eth0 is the bridge's: pasta's interface is
// named, so that a host whose own interface is eth0 does not clash.
func TestPastaArgsInterface(t *testing.T) {
	args := pastaArgs("/state/netns/ns-id", "/state/id.pid", pastaUplink, nil)
	i := slices.Index(args, "-I")
	if i < 0 || i+1 >= len(args) || args[i+1] != "eth1" {
		t.Errorf("pastaArgs with an interface name: %q, want -I eth1", args)
	}
	if slices.Contains(pastaArgs("/state/netns/ns-id", "/state/id.pid", "", nil), "-I") {
		t.Error("pastaArgs without an interface name passes -I")
	}
}
