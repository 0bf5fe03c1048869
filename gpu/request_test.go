package gpu

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	uuid := "GPU-12345678-1234-1234-1234-123456789abc"
	tests := []struct {
		in   string
		want Request
		err  string
	}{
		{in: "all", want: Request{All: true}},
		{in: "none", want: Request{None: true}},
		{in: "2", want: Request{Count: 2}},
		{in: "count=3", want: Request{Count: 3}},
		{in: "count=all", want: Request{All: true}},
		{in: "0,2", want: Request{IDs: []string{"0", "2"}}},
		{in: "device=0,2", want: Request{IDs: []string{"0", "2"}}},
		{in: `"device=0,2"`, want: Request{IDs: []string{"0", "2"}}},
		{in: "device=1", want: Request{IDs: []string{"1"}}},
		{in: "device=" + uuid, want: Request{IDs: []string{uuid}}},
		{in: uuid, want: Request{IDs: []string{uuid}}},
		{in: "device=0:1", want: Request{IDs: []string{"0:1"}}},
		{in: "driver=nvidia,count=1,capabilities=compute,utility", want: Request{Count: 1}},
		{in: "0,0", want: Request{IDs: []string{"0"}}},
		{in: "", err: "empty"},
		{in: "0", err: "for GPU 0 write device=0"},
		{in: "count=0", err: "count must be"},
		{in: "driver=amd", err: "--device VENDOR/CLASS=NAME"},
		{in: "colour=red", err: "unknown option"},
		{in: "all,0", err: "is not a GPU index"},
		{in: "count=2,device=0", err: "either all, a count or devices"},
		{in: "0,,2", err: "empty device"},
		{in: "capabilities=compute", err: "nothing asked for"},
		{in: "gpu 0", err: "is not a GPU index"},
		{in: "driver=nvidia,2", err: `"2" follows driver=`},
		{in: "count=1,0", err: `"0" follows count=`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRequest(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRequest(%q) error = %v, want one containing %q", tt.in, err, tt.err)
				}
				if !strings.Contains(err.Error(), "use all, none") && !strings.Contains(err.Error(), "write device=0") {
					t.Errorf("error names no fix: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.in, err)
			}
			if got.All != tt.want.All || got.None != tt.want.None || got.Count != tt.want.Count || !slices.Equal(got.IDs, tt.want.IDs) {
				t.Errorf("ParseRequest(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			// String round-trips.
			again, err := ParseRequest(got.String())
			if err != nil || again.String() != got.String() {
				t.Errorf("%q -> %q -> %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestRequestDevices(t *testing.T) {
	dgx := []string{"all", "0", "1", "10", "2", "GPU-a", "GPU-b", "0:0"}
	noAll := []string{"1", "0", "GPU-a"}
	tests := []struct {
		name      string
		req       Request
		available []string
		want      []string
		err       string
	}{
		{"all", Request{All: true}, dgx, []string{"nvidia.com/gpu=all"}, ""},
		{"all without an all device is every index", Request{All: true}, noAll, []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1"}, ""},
		{"all with no spec is left to the registry", Request{All: true}, nil, []string{"nvidia.com/gpu=all"}, ""},
		{"count takes the lowest indices numerically", Request{Count: 3}, dgx, []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=2"}, ""},
		{"count beyond the GPUs", Request{Count: 5}, noAll, nil, "asked for 5 GPUs, but the CDI specs define 2 (0, 1)"},
		{"count with no spec is left to the registry", Request{Count: 2}, nil, []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1"}, ""},
		{"ids as given", Request{IDs: []string{"GPU-b", "0:0"}}, dgx, []string{"nvidia.com/gpu=GPU-b", "nvidia.com/gpu=0:0"}, ""},
		{"none", Request{None: true}, dgx, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.Devices(tt.available)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Devices = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
