package main

import (
	"slices"

	"github.com/urfave/cli/v2"
)

// The defaults of --pod-security and --gpu-api (kube.LevelRestricted and
// kube.GPUDevicePlugin: TestKubeDefaults), written out so that this file
// does not link package kube.
const (
	defaultPodSecurity = "restricted"
	defaultGPUAPI      = "device-plugin"
)

// The kube commands' work is done by kube_impl.go, which links
// k8s.io/api (about 10 MB of the binary, and its start-up in every
// command): it is built into sbxrun-kube (-tags kube), a program of its
// own beside sbxrun or in ../libexec/sbxrun, which sbxrun's kube commands
// exec with their arguments (kube_exec.go).

// kubeGenerateFlags are `kube generate`'s own flags; every other flag is a
// run flag, resolved exactly as `sbxrun run` resolves it.
var kubeGenerateFlags = []cli.Flag{
	&cli.StringFlag{Name: "kind", Usage: "workload: pod, job or deployment (default pod; deployment with --compose)"},
	&cli.StringFlag{Name: "name", Usage: "the objects' name, a DNS label (default the profile's or image's name)"},
	&cli.StringFlag{Name: "namespace", Usage: "Kubernetes namespace written into every object (default none: kubectl's)"},
	&cli.BoolFlag{Name: "service", Usage: "add a Service for the published ports (-p)"},
	&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to FILE, or to DIR/NAME.yaml (default stdout)"},
	&cli.StringFlag{Name: "pod-security", Value: defaultPodSecurity, Usage: "Pod Security level to meet: restricted, or baseline (keeps the sandbox's capabilities)"},
	&cli.StringFlag{Name: "gpu-api", Value: defaultGPUAPI, Usage: "how GPUs are asked for: device-plugin (nvidia.com/gpu) or dra (a ResourceClaimTemplate, resource.k8s.io/v1)"},
	&cli.StringFlag{Name: "volumes", Usage: "what bind mounts become: pvc, hostpath or emptydir (default: PersistentVolumeClaims for the workspace and caches, other host paths left out)"},
	&cli.BoolFlag{Name: "pin", Usage: "write the image by its digest in containerd"},
	&cli.BoolFlag{Name: "compose", Usage: "generate the services of a compose project (arguments: SERVICE..., default all) instead of one sandbox"},
	&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "with --compose: compose file, repeatable (default compose.yaml and its override, or COMPOSE_FILE)"},
	&cli.StringFlag{Name: "project-name", Usage: "with --compose: project name (default the directory's name; -p is --publish here)"},
	&cli.StringSliceFlag{Name: "profile", Usage: "with --compose: enable a compose profile, repeatable"},
	&cli.StringFlag{Name: "project-directory", Usage: "with --compose: the project directory (default the first compose file's)"},
}

// kubeHidden are run flags that mean nothing in a manifest.
// (--name is generate's own: it names the objects, and the sandbox.)
var kubeHidden = []string{"detach", "interactive", "tty", "rm", "sig-proxy", "name"}

func kubeCommand() *cli.Command {
	return &cli.Command{
		Name: "kube", Usage: "Kubernetes manifests from sandboxes", OnUsageError: usageError, HideHelpCommand: true,
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "print the Kubernetes objects of a sandbox (Pod, Job or Deployment, hardened to Pod Security restricted)",
			UsageText: "sbxrun kube generate [--kind pod|job|deployment] [--name N] [--namespace NS] [--service] [-o FILE|DIR] [run options] PROFILE|IMAGE [-- COMMAND...]\n" +
				"   sbxrun kube generate --compose [-f FILE]... [--kind ...] [-o FILE|DIR] [SERVICE...]\n" +
				"   e.g. sbxrun kube generate model-dev --gpus 2 --memory 32g -- ollama serve | kubectl apply -f -",
			Flags: append(slices.Clone(kubeGenerateFlags), slices.DeleteFunc(slices.Clone(runFlags), func(f cli.Flag) bool {
				return slices.Contains(kubeHidden, f.Names()[0])
			})...),
			// Flags may follow PROFILE, as for run: generate splits them
			// itself, as `systemd generate` does.
			SkipFlagParsing: true,
			Action:          kubeGenerate,
		}, {
			Name:  "play",
			Usage: "run the Pods, Deployments (one replica) and Jobs of a manifest as sandboxes",
			Description: "Init containers run first, in order, each to completion; a Pod's containers share the first one's network\n" +
				"namespace; a Job's container runs in the foreground and its exit status is sbxrun's. Until you trust the file\n" +
				"(`sbxrun trust FILE`), it may not ask for privileged containers, capabilities beyond the default set, host namespaces or\n" +
				"hostPath volumes outside its directory. `sbxrun kube down FILE` removes what play created.",
			ArgsUsage: "FILE", OnUsageError: usageError,
			Action: kubePlay,
		}, {
			Name: "down", Usage: "remove the sandboxes `kube play FILE` created", ArgsUsage: "FILE", OnUsageError: usageError,
			Action: kubeDown,
		}},
	}
}
