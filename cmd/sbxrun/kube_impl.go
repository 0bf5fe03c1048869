//go:build kube

package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/compose"
	"github.com/sbxrun/sbxrun/kube"
	"github.com/sbxrun/sbxrun/runtime"
)

// kubePlay is `sbxrun kube play`.
func kubePlay(c *cli.Context) error {
	if c.NArg() != 1 {
		return failf("kube play takes one manifest file: `sbxrun kube play FILE`")
	}
	p, err := kube.Load(c.Args().First(), "")
	if err != nil {
		return failf("%v", err)
	}
	return kube.Play(c.Context, global(c), p, c.App.Writer, c.App.ErrWriter)
}

// kubeDown is `sbxrun kube down`.
func kubeDown(c *cli.Context) error {
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
	ko := kube.Options{
		Kind: w.value("kind"), Namespace: w.value("namespace"), Service: service,
		PodSecurity: w.value("pod-security"), GPUAPI: w.value("gpu-api"), Volumes: w.value("volumes"), Pin: pin,
	}
	if fromCompose, err := w.bool("compose"); err != nil {
		return failf("%v", err)
	} else if fromCompose {
		return kubeGenerateCompose(c, w, ko)
	}
	for _, f := range []string{"file", "project-name", "profile", "project-directory"} {
		if len(w.list(f)) > 0 {
			return failf("--%s is for --compose: `sbxrun kube generate --compose -f FILE [SERVICE...]`", f)
		}
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
	ko.Name = name
	m, err := kube.Generate(r, ko)
	if err != nil {
		return failf("%v", err)
	}
	report(c, "", m)
	return writeManifests(c, w.value("output"), []string{name}, []*kube.Manifest{m})
}

// report prints a manifest's volume lines and warnings, naming the
// compose service when there is one.
func report(c *cli.Context, service string, m *kube.Manifest) {
	prefix := ""
	if service != "" {
		prefix = fmt.Sprintf("service %q: ", service)
	}
	for _, l := range m.Volumes {
		fmt.Fprintln(c.App.ErrWriter, "sbxrun: "+prefix+"volume "+l)
	}
	for _, l := range m.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "sbxrun: warning: "+prefix+l)
	}
}

// writeManifests writes manifests to stdout or FILE, one after the other,
// or each to DIR/NAME.yaml; a file with a Secret is its owner's only.
func writeManifests(c *cli.Context, out string, names []string, ms []*kube.Manifest) error {
	render := func(ms []*kube.Manifest) ([]byte, os.FileMode, error) {
		var b bytes.Buffer
		mode := os.FileMode(0o644)
		for i, m := range ms {
			if i > 0 {
				b.WriteString("---\n")
			}
			if err := kube.Write(&b, m); err != nil {
				return nil, 0, failf("writing the manifest: %v", err)
			}
			if m.HasSecret() {
				mode = 0o600 // credentials: readable by their owner only
			}
		}
		return b.Bytes(), mode, nil
	}
	if out == "" {
		b, _, err := render(ms)
		if err != nil {
			return err
		}
		_, err = c.App.Writer.Write(b)
		return err
	}
	files, groups := []string{out}, [][]*kube.Manifest{ms}
	if strings.HasSuffix(out, "/") {
		// DIR/ is a directory, made when missing.
		if err := os.MkdirAll(out, 0o755); err != nil {
			return failf("creating the output directory: %v: choose another -o", err)
		}
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		files, groups = nil, nil
		for i, m := range ms {
			files = append(files, filepath.Join(out, names[i]+".yaml"))
			groups = append(groups, []*kube.Manifest{m})
		}
	}
	for i, f := range files {
		b, mode, err := render(groups[i])
		if err != nil {
			return err
		}
		// WriteFile keeps an existing file's mode: a Secret written over
		// a 0644 file must not stay readable by all.
		if err := os.WriteFile(f, b, mode); err != nil {
			return failf("writing the manifest: %v: choose another -o", err)
		}
		if err := os.Chmod(f, mode); err != nil {
			return failf("setting the mode of %s: %v", f, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "sbxrun: wrote %s\n", f)
	}
	return nil
}

// kubeGenerateCompose is `sbxrun kube generate --compose [SERVICE...]`:
// each service (with the services it depends on) resolved as `compose up`
// runs it, then generated as one workload named after the service, with a
// Service for its published and exposed ports (other services reach it by
// its name, as on the project's network), and a PersistentVolumeClaim for
// each named volume, shared by the services that mount it. The default
// kind is a Deployment: services run until stopped.
func kubeGenerateCompose(c *cli.Context, w *generateWords, ko kube.Options) error {
	if len(w.flags) > 0 {
		switch w.flags[0].name {
		case "publish":
			return failf("-p is --publish, a run option, which does not apply with --compose: the project name is --project-name, ports are the compose file's")
		case "env-file":
			return failf("--env-file is a run option here, which does not apply with --compose: interpolation reads .env of the project directory and the environment (or use `sbxrun compose --env-file F config` to check)")
		}
		return failf("run option --%s does not apply with --compose: set it in the compose file", w.flags[0].name)
	}
	if w.value("name") != "" {
		return failf("--name does not apply with --compose: objects are named after their services")
	}
	services := w.run
	if i := slices.Index(services, "--"); i >= 0 {
		return failf("a command does not apply with --compose: set command: in the compose file")
	}
	switch ko.Kind {
	case "":
		ko.Kind = kube.KindDeployment
	case kube.KindPod, kube.KindJob, kube.KindDeployment:
	default:
		return failf("unknown --kind %q: use pod, job or deployment", ko.Kind)
	}
	_, po, err := loadProjectPlan(c, compose.Options{Files: w.list("file"), Project: w.value("project-name"),
		Profiles: w.list("profile"), WorkingDir: w.value("project-directory")}, services, false)
	if err != nil {
		return err
	}
	// Two services, or two volumes, whose Kubernetes names are the same
	// would overwrite each other: refused.
	taken := map[string]string{}
	claimName := func(what, name, kname string) error {
		if other, ok := taken[kname]; ok {
			return failf("%s and %s both become %q in Kubernetes (names there are DNS labels of at most 40 characters here): rename one", other, what+" "+strconv.Quote(name), kname)
		}
		taken[kname] = what + " " + strconv.Quote(name)
		return nil
	}
	for _, s := range po.Plan.Services {
		if err := claimName("service", s.Name, kube.NameFor(s.Name)); err != nil {
			return err
		}
		// A Service's name must start with a letter (DNS-1035).
		if len(s.Publish)+len(s.Expose) > 0 && !unicode.IsLetter(rune(kube.NameFor(s.Name)[0])) {
			return failf("service %q: its Kubernetes Service would be named %q, and Service names must start with a letter: rename the service", s.Name, kube.NameFor(s.Name))
		}
	}
	ko.Claims = map[string]string{}
	claims := map[string]bool{}
	for _, v := range po.Plan.Volumes {
		kname := kube.NameFor(v.Name)
		if err := claimName("volume", v.Name, kname); err != nil {
			return err
		}
		ko.Claims[filepath.Clean(v.Dir)] = kname
		claims["PersistentVolumeClaim/"+kname] = true
	}
	var names []string
	var ms []*kube.Manifest
	emitted := map[string]bool{} // the shared claims written so far
	var lines []func()           // printed once every service is generated
	for _, s := range po.Plan.Services {
		so := ko
		so.Name = kube.NameFor(s.Name)
		so.Expose = s.Expose
		// A Service for the services with ports, whatever --service says
		// (a compose project's other services have none to give).
		so.Service = len(s.Publish) > 0 || len(s.Expose) > 0
		ro := po.ServiceRunOptions(s)
		ro.Name = so.Name
		r, err := runtime.Resolve(c.Context, ro, ro.LocalImages())
		if err != nil {
			return failf("service %q: %v", s.Name, err)
		}
		// The labels that tie a sandbox to this host's project stay here.
		maps.DeleteFunc(r.Labels, func(k, _ string) bool { return strings.HasPrefix(k, compose.LabelPrefix) })
		m, err := kube.Generate(r, so)
		if err != nil {
			return failf("service %q: %v", s.Name, err)
		}
		if len(s.DependsOn) > 0 {
			m.Warnings = append(m.Warnings, "depends_on: not written: Kubernetes starts Pods independently (an init container or a readinessProbe can wait)")
		}
		if s.Health != nil {
			m.Warnings = append(m.Warnings, "healthcheck: not written: write it as a readinessProbe")
		}
		if s.Restart == "no" && so.Kind == kube.KindDeployment {
			m.Warnings = append(m.Warnings, "restart: no: a Deployment restarts its Pod whenever it ends; generate a run-once service with --kind job")
		}
		m.DropSeen(emitted, claims)
		name := s.Name
		lines = append(lines, func() { report(c, name, m) })
		names = append(names, so.Name)
		ms = append(ms, m)
	}
	for _, l := range po.Plan.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "sbxrun: warning: "+l)
	}
	for _, l := range lines {
		l()
	}
	return writeManifests(c, w.value("output"), names, ms)
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
