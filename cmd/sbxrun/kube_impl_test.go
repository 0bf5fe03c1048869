//go:build kube

package main

import (
	"testing"

	"github.com/sbxrun/sbxrun/kube"
)

// The kube flags' defaults are written out in kube.go, which must not
// link package kube: they must be kube's.
func TestKubeDefaults(t *testing.T) {
	if defaultPodSecurity != kube.LevelRestricted || defaultGPUAPI != kube.GPUDevicePlugin {
		t.Errorf("defaults %q, %q; package kube's are %q, %q", defaultPodSecurity, defaultGPUAPI, kube.LevelRestricted, kube.GPUDevicePlugin)
	}
}
