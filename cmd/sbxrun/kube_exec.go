//go:build !kube

package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/internal/libexec"
)

// kubeHelper is the program that does the kube commands' work: this
// sbxrun built with -tags kube.
const kubeHelper = "sbxrun-kube"

func kubeGenerate(c *cli.Context) error { return execKube() }
func kubePlay(c *cli.Context) error     { return execKube() }
func kubeDown(c *cli.Context) error     { return execKube() }

// execKube replaces this process with sbxrun-kube, given the same
// arguments and environment: the same command line, parsed again there.
func execKube() error {
	bin, err := kubeHelperPath()
	if err != nil {
		return failf("%v", err)
	}
	argv := append([]string{"sbxrun"}, os.Args[1:]...)
	if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
		return failf("running %s: %v: reinstall sbxrun (`make install`, or its package)", bin, err)
	}
	return nil
}

// kubeHelperPath finds sbxrun-kube: SBXRUN_KUBE_HELPER, else beside this
// program, in ../libexec/sbxrun, or on PATH.
func kubeHelperPath() (string, error) {
	if p, ok := libexec.Find(kubeHelper, "SBXRUN_KUBE_HELPER"); ok {
		return p, nil
	}
	return "", fmt.Errorf("%s, which does sbxrun's kube commands, is not beside sbxrun nor in ../libexec/sbxrun: reinstall sbxrun (`make install`, or its package), or set SBXRUN_KUBE_HELPER to its path", kubeHelper)
}
