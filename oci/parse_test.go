package oci

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "512m", want: 512 << 20},
		{in: "512M", want: 512 << 20},
		{in: "8g", want: 8 << 30},
		{in: "8GB", want: 8 << 30},
		{in: "1.5g", want: 3 << 29},
		{in: "64k", want: 64 << 10},
		{in: "2GiB", want: 2 << 30},
		{in: "2Gi", wantErr: true},
		{in: "1e30", wantErr: true},
		{in: "", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "-5m", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "8x", wantErr: true},
		{in: "99999999999999999999p", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want error", tt.in, got)
				}
				if msg := err.Error(); !strings.Contains(msg, "512m") || !strings.Contains(msg, "8g") || !strings.Contains(msg, `"`+tt.in+`"`) {
					t.Errorf("error %q should quote the value and show 512m and 8g", msg)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v is not errdefs.ErrInvalidArgument", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseSwap(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "-1", want: -1},
		{in: "1g", want: 1 << 30},
		{in: "0", want: 0},
		{in: "-2", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSwap(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseSwap(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseVolume(t *testing.T) {
	tests := []struct {
		in      string
		want    Mount
		wantErr string
	}{
		{in: "/data:/data", want: Mount{Type: "bind", Source: "/data", Destination: "/data"}},
		{in: "~/data:/data:ro", want: Mount{Type: "bind", Source: "~/data", Destination: "/data", ReadOnly: true}},
		{in: "./src:/workspace:rw", want: Mount{Type: "bind", Source: "./src", Destination: "/workspace"}},
		{in: ".:/workspace", want: Mount{Type: "bind", Source: ".", Destination: "/workspace"}},
		{in: "../x:/x:ro,rshared", want: Mount{Type: "bind", Source: "../x", Destination: "/x", ReadOnly: true, Options: []string{"rshared"}}},
		{in: "/a:/b:z", want: Mount{Type: "bind", Source: "/a", Destination: "/b"}},
		{in: "/a:/b:Z,ro", want: Mount{Type: "bind", Source: "/a", Destination: "/b", ReadOnly: true}},
		{in: "/a:/b:cached", want: Mount{Type: "bind", Source: "/a", Destination: "/b"}},
		{in: "/a:/b:slave", want: Mount{Type: "bind", Source: "/a", Destination: "/b", Options: []string{"slave"}}},
		{in: "/a:/b:ro,ro", want: Mount{Type: "bind", Source: "/a", Destination: "/b", ReadOnly: true}},
		{in: "/data", wantErr: "anonymous volumes"},
		{in: "data:/data", wantErr: "named volumes are not supported yet"},
		{in: ":/data", wantErr: "empty source"},
		{in: "/data:", wantErr: "empty destination"},
		{in: "/data:rel", wantErr: "not an absolute path"},
		{in: "/a:/b:ro:x", wantErr: "too many colons"},
		{in: "/a:/b:ro,rw", wantErr: "both ro and rw"},
		{in: "/a:/b:shared,slave", wantErr: "two propagation modes"},
		{in: "/a:/b:nocopy", wantErr: `unknown option "nocopy"`},
		{in: "/a:/b:", wantErr: `unknown option ""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseVolume(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseVolume(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v is not errdefs.ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVolume(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseVolume(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMountFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    Mount
		wantErr string
	}{
		{in: "type=bind,source=/a,target=/b", want: Mount{Type: "bind", Source: "/a", Destination: "/b"}},
		{in: "type=bind,src=/a,dst=/b,readonly", want: Mount{Type: "bind", Source: "/a", Destination: "/b", ReadOnly: true}},
		{in: "type=bind,src=./a,destination=/b,ro=true", want: Mount{Type: "bind", Source: "./a", Destination: "/b", ReadOnly: true}},
		{in: "type=bind,src=/a,target=/b,readonly=false", want: Mount{Type: "bind", Source: "/a", Destination: "/b"}},
		{in: "Type=bind,Source=/a,Target=/b,bind-propagation=rslave", want: Mount{Type: "bind", Source: "/a", Destination: "/b", Options: []string{"rslave"}}},
		{in: `type=bind,"source=/a,b",target=/b`, want: Mount{Type: "bind", Source: "/a,b", Destination: "/b"}},
		{in: "type=bind,src=/a,target=/b,", want: Mount{Type: "bind", Source: "/a", Destination: "/b"}},
		{in: "type=tmpfs,target=/tmp", want: Mount{Type: "tmpfs", Destination: "/tmp"}},
		{in: "type=tmpfs,dst=/scratch,tmpfs-size=64m,tmpfs-mode=1777", want: Mount{Type: "tmpfs", Destination: "/scratch", Options: []string{"size=67108864", "mode=1777"}}},
		{in: "type=tmpfs,dst=/s,tmpfs-mode=0755,ro", want: Mount{Type: "tmpfs", Destination: "/s", ReadOnly: true, Options: []string{"mode=755"}}},
		{in: "source=/a,target=/b", wantErr: "type=volume (the default) is not supported yet"},
		{in: "type=volume,source=v,target=/b", wantErr: "type=volume"},
		{in: "type=npipe,source=/a,target=/b", wantErr: `unknown type "npipe"`},
		{in: "type=bind,source=/a,target=/b,color=blue", wantErr: `unknown key "color"`},
		{in: "type=bind,source=/a,target=/b,readonly=maybe", wantErr: `key "readonly"`},
		{in: "type=bind,source=/a", wantErr: "missing target"},
		{in: "type=bind,target=/b", wantErr: "needs source"},
		{in: "type=bind,source=/a,target=b", wantErr: "not an absolute path"},
		{in: "type=bind,source,target=/b", wantErr: `key "source" needs a value`},
		{in: "type=bind,source=/a,target=/b,bind-propagation=weird", wantErr: `key "bind-propagation"`},
		{in: "type=bind,source=/a,target=/b,tmpfs-size=1m", wantErr: `key "tmpfs-size" is only for type=tmpfs`},
		{in: "type=tmpfs,target=/b,bind-propagation=shared", wantErr: `key "bind-propagation" is only for type=bind`},
		{in: "type=tmpfs,source=/a,target=/b", wantErr: "takes no source"},
		{in: "type=tmpfs,target=/b,tmpfs-size=lots", wantErr: `key "tmpfs-size"`},
		{in: "type=tmpfs,target=/b,tmpfs-mode=999", wantErr: `key "tmpfs-mode"`},
		{in: "type=bind,source=/a,target=/b\ntype=bind", wantErr: "more than one line"},
		{in: `type=bind,"source=/a`, wantErr: "invalid mount"},
		{in: "type=bind,source=/a,target=/b,bind-propagation=rslave,bind-propagation=rshared", wantErr: `key "bind-propagation" given twice: keep one`},
		{in: "type=bind,source=/a,target=/b,bind-propagation=rslave,Bind-Propagation=rslave", wantErr: `key "bind-propagation" given twice`},
		{in: "type=bind,source=/a,src=/c,target=/b", wantErr: `keys "source" and "src" are one key given twice`},
		{in: "type=bind,source=/a,target=/b,dst=/c", wantErr: `keys "target" and "dst"`},
		{in: "type=bind,source=/a,target=/b,ro,readonly=false", wantErr: `keys "ro" and "readonly"`},
		{in: "type=tmpfs,type=bind,source=/a,target=/b", wantErr: `key "type" given twice`},
		{in: "type=tmpfs,target=/b,tmpfs-size=1m,tmpfs-size=2m", wantErr: `key "tmpfs-size" given twice`},
		{in: "type=tmpfs,target=/b,tmpfs-mode=700,tmpfs-mode=700", wantErr: `key "tmpfs-mode" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMountFlag(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMountFlag(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v is not errdefs.ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMountFlag(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMountFlag(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseEnvFile(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"HOSTVAR": "from-host"}[k]
		return v, ok
	}
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{
			name: "docker semantics",
			in:   "# a comment\n\nA=1\n   B=two words \nC=\"quoted\"\nD='single'\nE=\nF=a=b\n\t# indented comment\nHOSTVAR\nUNSET\n",
			want: []string{"A=1", "B=two words ", `C="quoted"`, "D='single'", "E=", "F=a=b", "HOSTVAR=from-host"},
		},
		{name: "bom and crlf", in: "\xef\xbb\xbfA=1\r\nB=2\r\n", want: []string{"A=1", "B=2"}},
		{name: "no trailing newline", in: "A=1", want: []string{"A=1"}},
		{name: "space in key", in: "A=1\nMY VAR=x\n", wantErr: `env.list:2: variable "MY VAR" contains whitespace`},
		{name: "trailing space on bare key", in: "HOSTVAR \n", wantErr: "env.list:1:"},
		{name: "no key", in: "\n\n=value\n", wantErr: "env.list:3: no variable name"},
		{name: "bad utf8", in: "A=\xff\n", wantErr: "env.list:1: invalid UTF-8"},
		{name: "nul in value", in: "A=1\nB=x\x00y\n", wantErr: "env.list:2: a NUL byte"},
		{name: "nul in key", in: "# c\n\nA\x00B=1\n", wantErr: "env.list:3: a NUL byte"},
		{name: "nul in comment", in: "# \x00\n", wantErr: "env.list:1: a NUL byte"},
		{name: "long line", in: "A=" + strings.Repeat("x", maxEnvLine+1), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvFile(strings.NewReader(tt.in), "env.list", lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v is not errdefs.ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseEnvFileReadError(t *testing.T) {
	_, err := ParseEnvFile(failingReader{}, "env.list", nil)
	if err == nil || !strings.Contains(err.Error(), `"env.list"`) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("error = %v, want the file name and the cause", err)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512m", "8g", "1.5GiB", "-1", "", "99999999999999999999p", "0", "1e19", "1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && (n < 0 || n == math.MaxInt64) {
			t.Fatalf("ParseSize(%q) = %d without error", s, n)
		}
	})
}

func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"/a:/b", "~/x:/y:ro,rshared", "v:/b", ":::", "/a:/b:Z,z,ro", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseVolume(s)
		if err != nil {
			return
		}
		if m.Type != "bind" || m.Source == "" || !strings.HasPrefix(m.Destination, "/") {
			t.Fatalf("ParseVolume(%q) = %+v: want a bind with a source and an absolute destination", s, m)
		}
	})
}

func FuzzParseMountFlag(f *testing.F) {
	for _, s := range []string{
		"type=bind,source=/a,target=/b,readonly",
		"type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777",
		`type=bind,"src=/a,b",dst=/c,bind-propagation=rshared`,
		"type=bind,ro=false,,",
		`"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMountFlag(s)
		if err != nil {
			return
		}
		if (m.Type != "bind" && m.Type != "tmpfs") || !strings.HasPrefix(m.Destination, "/") {
			t.Fatalf("ParseMountFlag(%q) = %+v: want bind or tmpfs with an absolute target", s, m)
		}
		if m.Type == "bind" && m.Source == "" {
			t.Fatalf("ParseMountFlag(%q) = %+v: bind without source", s, m)
		}
	})
}

func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{"A=1\n#c\n\nB\n", "\xef\xbb\xbfX=y\r\n", " =x", "A B=c", "\xff", "A=\x00"} {
		f.Add(s)
	}
	lookup := func(k string) (string, bool) { return "v", len(k)%2 == 0 }
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseEnvFile(strings.NewReader(s), "fuzz.env", lookup)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.env:") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		for _, kv := range env {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" || strings.ContainsAny(k, " \t\n") || strings.ContainsRune(kv, 0) {
				t.Fatalf("ParseEnvFile(%q) returned bad entry %q", s, kv)
			}
		}
	})
}
