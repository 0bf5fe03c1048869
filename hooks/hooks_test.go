package hooks

import (
	"slices"
	"testing"
)

func TestInvoked(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
		ok   bool
	}{
		{"multicall by argv0", []string{"nvidia-cdi-hook", "create-symlinks", "--link", "a::b"}, []string{Name, "create-symlinks", "--link", "a::b"}, true},
		{"multicall by path", []string{"/usr/local/bin/nvidia-cdi-hook", "noop"}, []string{Name, "noop"}, true},
		{"hidden subcommand", []string{"/usr/bin/sbxrun", "nvidia-cdi-hook", "update-ldcache", "--folder", "/x"}, []string{Name, "update-ldcache", "--folder", "/x"}, true},
		{"plain sbxrun", []string{"sbxrun", "run", "base"}, nil, false},
		{"the name as a later argument", []string{"sbxrun", "run", "nvidia-cdi-hook"}, nil, false},
		{"empty", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Invoked(tt.args)
			if ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Errorf("Invoked(%q) = %q, %v; want %q, %v", tt.args, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name   string
		vendor []string
		want   []string
	}{
		{"nothing asked: PATH only", nil, []string{"PATH=" + Path}},
		{"vendor switches kept", []string{"NVIDIA_CTK_DEBUG=false"}, []string{"PATH=" + Path, "NVIDIA_CTK_DEBUG=false"}},
		{"loader variables dropped", []string{"LD_PRELOAD=/x.so", "LD_LIBRARY_PATH=/x", "GCONV_PATH=/x", "GLIBC_TUNABLES=x", "A=1"}, []string{"PATH=" + Path, "A=1"}},
		{"PATH is ours", []string{"PATH=/tmp/evil"}, []string{"PATH=" + Path}},
		{"malformed entries dropped", []string{"NOEQUALS", "=x"}, []string{"PATH=" + Path}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Env(tt.vendor); !slices.Equal(got, tt.want) {
				t.Errorf("Env(%q) = %q, want %q", tt.vendor, got, tt.want)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	environ := []string{"HOME=/root", "LD_PRELOAD=/evil.so", "PATH=/evil", "NVIDIA_CTK_DEBUG=true", "NVIDIA_CDI_QUIET=1", "NVIDIA_VISIBLE_DEVICES=all", "TMPDIR=/x"}
	want := []string{"PATH=" + Path, "NVIDIA_CTK_DEBUG=true", "NVIDIA_CDI_QUIET=1"}
	if got := Scrub(environ); !slices.Equal(got, want) {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
}
