package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/kube"
	"github.com/sbxrun/sbxrun/runtime"
)

// kubeGenerateFlags are `kube generate`'s own flags; every other flag is a
// run flag, resolved exactly as `sbxrun run` resolves it.
var kubeGenerateFlags = []cli.Flag{
	&cli.StringFlag{Name: "kind", Value: kube.KindPod, Usage: "workload: pod, job or deployment"},
	&cli.StringFlag{Name: "name", Usage: "the objects' name, a DNS label (default the profile's or image's name)"},
	&cli.StringFlag{Name: "namespace", Usage: "Kubernetes namespace written into every object (default none: kubectl's)"},
	&cli.BoolFlag{Name: "service", Usage: "add a Service for the published ports (-p)"},
	&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to FILE, or to DIR/NAME.yaml (default stdout)"},
	&cli.StringFlag{Name: "pod-security", Value: kube.LevelRestricted, Usage: "Pod Security level to meet: restricted, or baseline (keeps the sandbox's capabilities)"},
	&cli.StringFlag{Name: "gpu-api", Value: kube.GPUDevicePlugin, Usage: "how GPUs are asked for: device-plugin (nvidia.com/gpu) or dra (a ResourceClaimTemplate, resource.k8s.io/v1)"},
	&cli.StringFlag{Name: "volumes", Usage: "what bind mounts become: pvc, hostpath or emptydir (default: PersistentVolumeClaims for the workspace and caches, other host paths left out)"},
	&cli.BoolFlag{Name: "pin", Usage: "write the image by its digest in containerd"},
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
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return failf("kube play takes one manifest file: `sbxrun kube play FILE`")
				}
				p, err := kube.Load(c.Args().First(), "")
				if err != nil {
					return failf("%v", err)
				}
				return kube.Play(c.Context, global(c), p, c.App.Writer, c.App.ErrWriter)
			},
		}, {
			Name: "down", Usage: "remove the sandboxes `kube play FILE` created", ArgsUsage: "FILE", OnUsageError: usageError,
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return failf("kube down takes one manifest file: `sbxrun kube down FILE`")
				}
				names, err := kube.Down(c.Context, global(c), c.Args().First())
				for _, n := range names {
					fmt.Fprintln(c.App.Writer, n)
				}
				if err != nil {
					return failf("%v", err)
				}
				return nil
			},
		}},
	}
}

// kubeGenerate is `sbxrun kube generate`.
func kubeGenerate(c *cli.Context) error {
	w, err := splitOwnWords(kubeGenerateFlags, c.Args().Slice())
	if err != nil {
		return failf("%v: see `sbxrun kube generate --help`", err)
	}
	if w.help {
		cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
		return nil
	}
	service, err := w.bool("service")
	if err != nil {
		return failf("%v", err)
	}
	pin, err := w.bool("pin")
	if err != nil {
		return failf("%v", err)
	}
	// The global flags are read from the app's own context: generate's
	// --namespace (Kubernetes') would hide the global one (containerd's).
	if _, target, _, _ := splitRunArgs(runFlags, w.run); target == "" {
		return failf("no profile or image given: `sbxrun kube generate PROFILE|IMAGE [-- CMD]` (`sbxrun profiles` lists profiles)")
	}
	o, err := parseRunWordsFor(c, globalWords(appContext(c)), w.run, "sbxrun kube generate PROFILE|IMAGE [-- CMD]", func(*cli.Context) error { return nil })
	if err != nil {
		return err
	}
	name := w.value("name")
	if name == "" {
		name = kube.NameFor(o.Target)
	}
	o.Name = name
	r, err := runtime.Resolve(c.Context, o, o.LocalImages())
	if err != nil {
		return failf("%v", err)
	}
	ko := kube.Options{
		Kind: w.value("kind"), Name: name, Namespace: w.value("namespace"), Service: service,
		PodSecurity: w.value("pod-security"), GPUAPI: w.value("gpu-api"), Volumes: w.value("volumes"), Pin: pin,
	}
	m, err := kube.Generate(r, ko)
	if err != nil {
		return failf("%v", err)
	}
	for _, l := range m.Volumes {
		fmt.Fprintln(c.App.ErrWriter, "sbxrun: volume "+l)
	}
	for _, l := range m.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "sbxrun: warning: "+l)
	}
	var b bytes.Buffer
	if err := kube.Write(&b, m); err != nil {
		return failf("writing the manifest: %v", err)
	}
	out := w.value("output")
	if out == "" {
		_, err := c.App.Writer.Write(b.Bytes())
		return err
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		out = filepath.Join(out, name+".yaml")
	}
	mode := os.FileMode(0o644)
	if m.HasSecret() {
		mode = 0o600 // credentials: readable by their owner only
	}
	if err := os.WriteFile(out, b.Bytes(), mode); err != nil {
		return failf("writing the manifest: %v: choose another -o", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "sbxrun: wrote %s\n", out)
	return nil
}

// appContext is the app's own context in c's lineage (the one that parsed
// the global flags; urfave/cli puts a bare context above it).
func appContext(c *cli.Context) *cli.Context {
	app := c
	for _, l := range c.Lineage() {
		if l.App != nil {
			app = l
		}
	}
	return app
}
