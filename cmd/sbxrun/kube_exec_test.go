//go:build !kube

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// sbxrun itself links no Kubernetes package: sbxrun-kube does the kube
// commands.
func TestNoKubernetesLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || p == "github.com/sbxrun/sbxrun/kube" {
			t.Errorf("sbxrun links %s: only sbxrun-kube (-tags kube) may", p)
		}
	}
}
