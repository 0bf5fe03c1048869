package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPages: a page per visible command, generated from its
// definition (run's page lists run's flags), none for hidden commands.
func TestManPages(t *testing.T) {
	app := newApp()
	dir := t.TempDir()
	n, err := writeManPages(app, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(app.VisibleCommands()) + 1; n != want {
		t.Errorf("%d pages, want %d", n, want)
	}
	for _, c := range app.VisibleCommands() {
		if _, err := os.Stat(filepath.Join(dir, "sbxrun-"+c.Name+".1")); err != nil {
			t.Errorf("no page for %s: %v", c.Name, err)
		}
	}
	for _, hidden := range []string{"__complete", "__generate"} {
		if _, err := os.Stat(filepath.Join(dir, "sbxrun-"+hidden+".1")); err == nil {
			t.Errorf("a page for the hidden command %s", hidden)
		}
	}
	run, err := os.ReadFile(filepath.Join(dir, "sbxrun-run.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".TH sbxrun-run 1", "memory", "publish", "gpus"} {
		if !strings.Contains(string(run), want) {
			t.Errorf("sbxrun-run.1 lacks %q", want)
		}
	}
}
