package main

import (
	"os/exec"
	"testing"
)

func TestDebianVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-rc1":              "1.2.3~rc1",
		"v1.2.3-rc.1-dirty":       "1.2.3~rc.1+dirty",
		"v1.2.3-4-gabcdef0":       "1.2.3+git4.abcdef0",
		"v1.2.3-rc1-4-gabcdef0":   "1.2.3~rc1+git4.abcdef0",
		"v1.2.3-4-gabcdef0-dirty": "1.2.3+git4.abcdef0.dirty",
		"f889487":                 "0~git.f889487",
		"f889487-dirty":           "0~git.f889487+dirty",
	} {
		got, err := DebianVersion(in)
		if err != nil || got != want {
			t.Errorf("DebianVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "release_1", "v1.2.3-x_y"} {
		if v, err := DebianVersion(bad); err == nil {
			t.Errorf("DebianVersion(%q) = %q, want an error", bad, v)
		}
	}
}

// TestDebianVersionOrder checks with dpkg that the versions sort as the
// releases do.
func TestDebianVersionOrder(t *testing.T) {
	order := []string{"f889487", "v1.2.3-rc1", "v1.2.3-rc1-2-gabc1234", "v1.2.3", "v1.2.3-4-gabcdef0", "v1.2.4"}
	for i := 1; i < len(order); i++ {
		a, _ := DebianVersion(order[i-1])
		b, _ := DebianVersion(order[i])
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg does not sort %s (%s) before %s (%s): %v", a, order[i-1], b, order[i], err)
		}
	}
}
