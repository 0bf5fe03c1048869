package network

import (
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		in      string
		want    Publish
		wantErr string
	}{
		{in: "8000", want: Publish{ContainerStart: 8000, ContainerEnd: 8000, Protocol: "tcp"}},
		{in: "8080:80", want: Publish{HostStart: 8080, HostEnd: 8080, ContainerStart: 80, ContainerEnd: 80, Protocol: "tcp"}},
		{in: "0.0.0.0:8080:80/udp", want: Publish{HostIP: "0.0.0.0", HostStart: 8080, HostEnd: 8080, ContainerStart: 80, ContainerEnd: 80, Protocol: "udp"}},
		{in: "127.0.0.1::80", want: Publish{HostIP: "127.0.0.1", ContainerStart: 80, ContainerEnd: 80, Protocol: "tcp"}},
		{in: "8000-8002:9000-9002/TCP", want: Publish{HostStart: 8000, HostEnd: 8002, ContainerStart: 9000, ContainerEnd: 9002, Protocol: "tcp"}},
		{in: "8000-8010:80", want: Publish{HostStart: 8000, HostEnd: 8010, ContainerStart: 80, ContainerEnd: 80, Protocol: "tcp"}},
		{in: "9000-9001", want: Publish{ContainerStart: 9000, ContainerEnd: 9001, Protocol: "tcp"}},
		{in: "[127.0.0.1]:8080:80", want: Publish{HostIP: "127.0.0.1", HostStart: 8080, HostEnd: 8080, ContainerStart: 80, ContainerEnd: 80, Protocol: "tcp"}},
		{in: "", wantErr: "container port: missing port"},
		{in: "80/sctp", wantErr: "protocol must be tcp or udp"},
		{in: "0:80", wantErr: `host port: "0" is not a port`},
		{in: "65536", wantErr: `"65536" is not a port`},
		{in: "+80", wantErr: `"+80" is not a port`},
		{in: "a:b:c:d", wantErr: "too many ':'"},
		{in: "host:8080:80", wantErr: `"host" is not an IP address`},
		{in: "[::1]:8080:80", wantErr: "only IPv4 host addresses"},
		{in: "::1:8080:80", wantErr: "too many ':'"},
		{in: "8000-8001:9000-9003", wantErr: "ranges differ in size"},
		{in: "9002-9000", wantErr: "ends before it starts"},
		{in: "1-2000", wantErr: "longer than 1024 ports"},
		{in: "[127.0.0.1:80", wantErr: "unclosed ["},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePublish(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePublish(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !strings.HasSuffix(err.Error(), "e.g. 8080:80 or 127.0.0.1:8000-8001:8000-8001/udp") {
					t.Errorf("error %q does not end with the fix", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePublish(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParsePublish: no panic, and what parses is a valid publish.
func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{"8000", "8080:80", "0.0.0.0:8080:80/udp", "[127.0.0.1]:1-2:3-4/tcp", "::", "-", "1-", "[]:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublish(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q has more than one line", err)
			}
			return
		}
		if p.ContainerStart < 1 || p.ContainerEnd > 65535 || p.ContainerEnd < p.ContainerStart {
			t.Errorf("%q: container range %d-%d", s, p.ContainerStart, p.ContainerEnd)
		}
		if p.HostStart != 0 && (p.HostEnd < p.HostStart || p.HostEnd > 65535) {
			t.Errorf("%q: host range %d-%d", s, p.HostStart, p.HostEnd)
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			t.Errorf("%q: protocol %q", s, p.Protocol)
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP).To4() == nil {
			t.Errorf("%q: host IP %q", s, p.HostIP)
		}
	})
}

func TestFormatParsePorts(t *testing.T) {
	ports := []Port{{"127.0.0.1", 8080, 80, "tcp"}, {"0.0.0.0", 5353, 53, "udp"}}
	s := FormatPorts(ports)
	if s != "127.0.0.1:8080->80/tcp, 0.0.0.0:5353->53/udp" {
		t.Errorf("FormatPorts = %q", s)
	}
	if got := ParsePorts(s); !reflect.DeepEqual(got, ports) {
		t.Errorf("ParsePorts(%q) = %+v, want %+v", s, got, ports)
	}
	if got := ParsePorts(""); got != nil {
		t.Errorf("ParsePorts(\"\") = %+v", got)
	}
}

func TestResolvePorts(t *testing.T) {
	p := Paths{StateDir: t.TempDir()}
	// A port published by a recorded sandbox.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recorded := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := p.writeRecord(&record{Attachment: Attachment{Ports: []Port{{"127.0.0.1", recorded, 80, "tcp"}}}, Namespace: "ns", ID: "web", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	// A port a process holds.
	held, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port

	got, err := ResolvePorts(p, []Publish{{ContainerStart: 80, ContainerEnd: 81, Protocol: "tcp"}})
	if err != nil || len(got) != 2 || got[0].HostIP != DefaultHostIP || got[0].HostPort == 0 || got[0].HostPort == got[1].HostPort || got[1].ContainerPort != 81 {
		t.Errorf("free ports: %+v, %v", got, err)
	}
	for _, tt := range []struct {
		pub  Publish
		want string
	}{
		{Publish{HostStart: recorded, HostEnd: recorded, ContainerStart: 8000, ContainerEnd: 8000, Protocol: "tcp"}, "host port 127.0.0.1:" + strconv.Itoa(recorded) + "/tcp is already in use by sandbox ns/web: choose another host port with -p"},
		{Publish{HostIP: "0.0.0.0", HostStart: recorded, HostEnd: recorded, ContainerStart: 8000, ContainerEnd: 8000, Protocol: "tcp"}, "in use by sandbox ns/web"},
		{Publish{HostStart: heldPort, HostEnd: heldPort, ContainerStart: 8000, ContainerEnd: 8000, Protocol: "tcp"}, "host port 127.0.0.1:" + strconv.Itoa(heldPort) + "/tcp is already in use by network.test (pid"},
		{Publish{HostIP: "192.0.2.250", HostStart: 8000, HostEnd: 8000, ContainerStart: 8000, ContainerEnd: 8000, Protocol: "tcp"}, "the host has no address 192.0.2.250"},
	} {
		_, err := ResolvePorts(p, []Publish{tt.pub})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ResolvePorts(%+v) = %v, want an error containing %q", tt.pub, err, tt.want)
		}
	}
	// UDP on the recorded TCP port is free; a host range skips the taken port.
	if _, err := ResolvePorts(p, []Publish{{HostStart: recorded, HostEnd: recorded, ContainerStart: 53, ContainerEnd: 53, Protocol: "udp"}}); err != nil {
		t.Errorf("udp on a tcp-published port: %v", err)
	}
	got, err = ResolvePorts(p, []Publish{{HostStart: heldPort, HostEnd: heldPort + 1, ContainerStart: 80, ContainerEnd: 80, Protocol: "tcp"}})
	if err == nil && (len(got) != 1 || got[0].HostPort != heldPort+1) {
		t.Errorf("host range past a held port: %+v", got)
	}
	// Two -p of one run on one host port.
	if _, err := ResolvePorts(p, []Publish{{HostStart: 41234, HostEnd: 41234, ContainerStart: 1, ContainerEnd: 1, Protocol: "tcp"}, {HostStart: 41234, HostEnd: 41234, ContainerStart: 2, ContainerEnd: 2, Protocol: "tcp"}}); err == nil || !strings.Contains(err.Error(), "another -p of this run") {
		t.Errorf("one host port twice: %v", err)
	}
}
