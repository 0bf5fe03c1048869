package main

import (
	"slices"
	"testing"
)

func TestComplete(t *testing.T) {
	app := newApp()
	profs := []string{"base", "myprof"}
	for _, tc := range []struct {
		words     []string
		want      []string
		wantNot   []string
		wantEmpty bool
	}{
		{words: []string{""}, want: []string{"run", "doctor", "gpu", "myprof"}, wantNot: []string{"__complete", "__generate"}},
		{words: []string{"--namespace", "x", ""}, want: []string{"ps", "myprof"}},
		{words: []string{"-"}, want: []string{"--address", "--namespace", "-n", "--debug"}},
		{words: []string{"myprof", "--me"}, want: []string{"--memory", "--memory-swap", "-m", "--gpus"}},
		{words: []string{"run", ""}, want: []string{"myprof", "base"}, wantNot: []string{"ps"}},
		{words: []string{"run", "-v", "a:b", "myprof", "-"}, want: []string{"--volume"}},
		{words: []string{"gpu", ""}, want: []string{"setup", "status"}},
		{words: []string{"gpu", "setup", "--"}, want: []string{"--output", "--if-stale"}},
		{words: []string{"doctor", "--"}, want: []string{"--format"}, wantNot: []string{"--memory"}},
		{words: []string{"profiles", "show", ""}, want: []string{"myprof"}},
		{words: []string{"completion", ""}, want: []string{"bash", "zsh", "fish"}},
		{words: []string{"myprof", "--", "-"}, wantEmpty: true},
		{words: []string{"myprof", ""}, wantEmpty: true},
	} {
		got := complete(app, tc.words, profs)
		if tc.wantEmpty && len(got) > 0 {
			t.Errorf("complete(%q) = %q, want nothing", tc.words, got)
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete(%q) lacks %q: %q", tc.words, w, got)
			}
		}
		for _, w := range tc.wantNot {
			if slices.Contains(got, w) {
				t.Errorf("complete(%q) offers %q: %q", tc.words, w, got)
			}
		}
	}
}
