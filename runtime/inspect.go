package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// psFilter is `ps --filter KEY=VALUE`, Docker's keys that scripts use:
// name (a substring of the name), status (created, running, paused,
// exited) and label (KEY or KEY=VALUE). Values of one key are alternatives;
// different keys must all match.
type psFilter map[string][]string

func parsePsFilters(filters []string) (psFilter, error) {
	f := psFilter{}
	for _, s := range filters {
		k, v, ok := strings.Cut(s, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || v == "" {
			return nil, fmt.Errorf("invalid --filter %q: use name=NAME, status=STATUS or label=KEY[=VALUE]", s)
		}
		switch k {
		case "name", "label":
		case "status":
			switch v {
			case "created", "running", "paused", "exited":
			default:
				return nil, fmt.Errorf("invalid --filter %q: the status is created, running, paused or exited", s)
			}
		default:
			return nil, fmt.Errorf("invalid --filter %q: the keys are name, status and label", s)
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

func (f psFilter) match(s Sandbox) bool {
	if vs, ok := f["name"]; ok && !slices.ContainsFunc(vs, func(v string) bool { return strings.Contains(s.Name, v) }) {
		return false
	}
	if vs, ok := f["status"]; ok && !slices.Contains(vs, s.State()) {
		return false
	}
	for _, v := range f["label"] {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := s.Labels[k]
		if !ok || hasValue && got != want {
			return false
		}
	}
	return true
}

// State is Docker's word for the sandbox's state: created, running,
// paused or exited.
func (s Sandbox) State() string {
	switch s.Status {
	case string(client.Running), string(client.Paused), string(client.Created):
		return s.Status
	case string(client.Stopped):
		return "exited"
	}
	return s.Status
}

// Wait waits until the sandbox name stops and returns its exit status, as
// `docker wait` does. A sandbox that already stopped returns at once.
func Wait(ctx context.Context, g *Global, name string) (int, error) {
	c, ctx, ctr, err := g.load(ctx, name)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("loading the task of %q: %w", name, err)
		}
		labels, lerr := ctr.Labels(ctx)
		if lerr != nil {
			return 0, lerr
		}
		var code int
		if _, err := fmt.Sscan(labels[LabelExitCode], &code); err == nil {
			return code, nil
		}
		return 0, fmt.Errorf("sandbox %q has not run: there is no exit status to wait for", name)
	}
	ch, err := task.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("waiting on %q: %w", name, err)
	}
	select {
	case st := <-ch:
		code, _, err := st.Result()
		if err != nil {
			return 0, fmt.Errorf("waiting on %q: %w", name, err)
		}
		return int(code), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Inspection is one element of `sbxrun inspect`, shaped like the fields of
// `docker inspect` that scripts read (.Id, .Name, .State.Status,
// .State.ExitCode, .Config.Image, .Config.Labels), plus sbxrun's own.
type Inspection struct {
	ID      string          `json:"Id"`
	Name    string          `json:"Name"`
	Created time.Time       `json:"Created"`
	Image   string          `json:"Image"`
	Profile string          `json:"Profile"`
	State   InspectionState `json:"State"`
	Config  InspectionConf  `json:"Config"`
	// NetworkSettings is Docker's .NetworkSettings, for a sandbox on a CNI
	// network.
	NetworkSettings *InspectionNet `json:"NetworkSettings,omitempty"`
	// Spec is the OCI runtime spec the sandbox runs with.
	Spec json.RawMessage `json:"Spec,omitempty"`
}

// InspectionState is Docker's .State: status is created, running, paused
// or exited.
type InspectionState struct {
	Status   string `json:"Status"`
	Running  bool   `json:"Running"`
	Paused   bool   `json:"Paused"`
	Pid      uint32 `json:"Pid"`
	ExitCode int    `json:"ExitCode"`
}

// InspectionConf is Docker's .Config, from the sandbox's spec and labels.
type InspectionConf struct {
	Hostname   string            `json:"Hostname"`
	User       string            `json:"User"`
	Env        []string          `json:"Env"`
	Cmd        []string          `json:"Cmd"`
	WorkingDir string            `json:"WorkingDir"`
	Tty        bool              `json:"Tty"`
	Image      string            `json:"Image"`
	Labels     map[string]string `json:"Labels"`
}

// Inspect writes a JSON array with one Inspection per name found, in the
// order given; the names not found are one error (exit 125) after the array,
// as Docker prints what it found and fails for the rest.
func Inspect(ctx context.Context, g *Global, names []string, w io.Writer) error {
	c, ctx, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	out := []Inspection{}
	var errs []error
	for _, name := range names {
		in, err := inspectOne(ctx, c, name, g.namespace())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		in.NetworkSettings = g.networkSettings(in.ID)
		out = append(out, in)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func inspectOne(ctx context.Context, c *client.Client, name, ns string) (Inspection, error) {
	ctr, err := c.LoadContainer(ctx, containerID(name))
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Inspection{}, fmt.Errorf("no sandbox named %q in namespace %q: `sbxrun ps -a` lists them", name, ns)
		}
		return Inspection{}, fmt.Errorf("loading sandbox %q: %w", name, err)
	}
	info, err := ctr.Info(ctx)
	if err != nil {
		return Inspection{}, fmt.Errorf("loading sandbox %q: %w", name, err)
	}
	s := sandboxOf(ctx, ctr, info.Labels, info.ID, info.Image, info.CreatedAt)
	in := Inspection{ID: info.ID, Name: s.Name, Created: info.CreatedAt, Image: s.Image, Profile: s.Profile,
		State:  InspectionState{Status: s.State(), Running: s.State() == "running", Paused: s.State() == "paused", Pid: s.Pid},
		Config: InspectionConf{Image: s.Image, Labels: info.Labels}}
	if s.Exit != nil {
		in.State.ExitCode = *s.Exit
	}
	if spec, err := ctr.Spec(ctx); err == nil {
		if spec.Hostname != "" {
			in.Config.Hostname = spec.Hostname
		}
		if p := spec.Process; p != nil {
			in.Config.User = fmt.Sprintf("%d:%d", p.User.UID, p.User.GID)
			in.Config.Env, in.Config.Cmd, in.Config.WorkingDir, in.Config.Tty = p.Env, p.Args, p.Cwd, p.Terminal
		}
		in.Spec, _ = json.Marshal(spec)
	}
	return in, nil
}
