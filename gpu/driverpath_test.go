package gpu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseLdconfigNVML(t *testing.T) {
	tests := []struct{ name, out, want string }{
		{"driver in /usr/local/nvidia", "1234 libs found in cache `/etc/ld.so.cache'\n" +
			"\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/local/nvidia/lib64/libnvidia-ml.so.1\n" +
			"\tlibnvidia-ml.so (libc6,x86-64) => /usr/local/nvidia/lib64/libnvidia-ml.so\n", "/usr/local/nvidia/lib64/libnvidia-ml.so.1"},
		{"the native entry wins over i386", "\tlibnvidia-ml.so.1 (libc6) => /usr/lib/i386-linux-gnu/libnvidia-ml.so.1\n" +
			"\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1\n", "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"},
		{"no driver", "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseLdconfigNVML(tt.out); got != tt.want {
				t.Errorf("parseLdconfigNVML = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWithDriverPath: a driver kept like /usr/local/nvidia (lib64 and bin)
// puts its bin directory first in PATH while a spec is generated, the
// system directories after it and nothing of the caller's PATH, which comes
// back afterwards.
func TestWithDriverPath(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"lib64", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "lib64", "libnvidia-ml.so.1"), []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := driverBinDirs(root); len(got) != 0 {
		t.Errorf("driverBinDirs without nvidia-smi = %q, want none", got)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "nvidia-smi"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "bin")
	if got := driverBinDirs(root); !slices.Equal(got, []string{want}) {
		t.Fatalf("driverBinDirs = %q, want [%s]", got, want)
	}
	// A caller's PATH (here a user's bin directory in root's PATH) plays no
	// part: the driver's directory, then the system's.
	t.Setenv("PATH", "/home/someone/bin:/usr/bin:/bin")
	restore := withDriverPath(root)
	if p, w := os.Getenv("PATH"), want+":"+strings.Join(systemPath, ":"); p != w {
		t.Errorf("PATH while generating = %q, want %q", p, w)
	}
	restore()
	if p := os.Getenv("PATH"); p != "/home/someone/bin:/usr/bin:/bin" {
		t.Errorf("PATH after = %q, want the caller's back", p)
	}
}

// TestDefaultsFindTheDriverRoot: without --driver-root, a driver that only
// lives under one of the usual other roots (the dynamic loader does not know
// it) is found there, so nothing has to remember the root across reboots.
func TestDefaultsFindTheDriverRoot(t *testing.T) {
	root := fakeDriverRoot(t, mockVersion)
	old, oldSystem := alternateRoots, systemNVML
	t.Cleanup(func() { alternateRoots, systemNVML = old, oldSystem })
	systemNVML = func() string { return "" } // as on a host whose loader does not know the driver
	alternateRoots = []string{filepath.Join(t.TempDir(), "none"), root}
	o := Options{HookPath: hookBinary(t)}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.DriverRoot != root {
		t.Errorf("driver root = %q, want %q, the root that holds libnvidia-ml.so.1", o.DriverRoot, root)
	}
	// A mock NVML (tests) or a given root is taken as it is.
	o = Options{HookPath: hookBinary(t), NVML: dgx(mockVersion)}
	if err := o.defaults(); err != nil || o.DriverRoot != "/" {
		t.Errorf("with a mock NVML: driver root %q, %v; want /", o.DriverRoot, err)
	}
}
