package systemd

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRootlessDaemonUnit(t *testing.T) {
	exe := fakeExec(t, filepath.Join(t.TempDir(), "bin with space"))
	text, err := RootlessDaemonUnit(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "rootless start --foreground", "KillMode=mixed", "WantedBy=default.target", `"` + exe + `"`} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	verify(t, RootlessDaemonName, User, text)
	if _, err := RootlessDaemonUnit("/opt/$x/sbxrun"); err == nil {
		t.Error("a binary path with '$' was accepted")
	}
}

func TestGenerateRefusesTheDaemonName(t *testing.T) {
	_, err := Generate(Options{Name: RootlessDaemonName, Scope: User, Exec: "/usr/bin/sbxrun", Run: []string{"base"}, StopSignal: 15})
	if err == nil || !strings.Contains(err.Error(), "rootless containerd") {
		t.Fatalf("Generate(--name %s) = %v, want a refusal naming the daemon unit", RootlessDaemonName, err)
	}
}
