package main

import "testing"

func TestChecksHost(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"sbxrun", "doctor"}, true},
		{[]string{"sbxrun", "--namespace", "x", "doctor", "--format", "json"}, true},
		{[]string{"sbxrun", "--debug", "doctor"}, true},
		{[]string{"sbxrun", "-n", "doctor", "ps"}, false}, // "doctor" is -n's value
		{[]string{"sbxrun", "base", "--", "doctor"}, false},
		{[]string{"sbxrun", "run", "doctor"}, false},
		{[]string{"sbxrun", "ps"}, false},
		{[]string{"sbxrun"}, false},
	} {
		if got := checksHost(tc.args); got != tc.want {
			t.Errorf("checksHost(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
