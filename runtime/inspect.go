package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
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
	if vs, ok := f["status"]; ok && !slices.Contains(vs, s.state()) {
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

// state is Docker's word for the sandbox's state: created, running,
// paused or exited.
func (s Sandbox) state() string {
	switch s.Status {
	case string(client.Running), string(client.Paused), string(client.Created):
		return s.Status
	case string(client.Stopped):
		return "exited"
	}
	return s.Status
}

// psRow is what a `ps --format` template sees: the fields of Docker's
// `docker ps --format` that sbxrun has, as text.
type psRow struct {
	ID, Names, Image, Profile, State, Status, Pid, CreatedAt, RunningFor, Labels, Ports string

	labels map[string]string
	header bool
}

// Label is the value of one label, as Docker's {{.Label "KEY"}}.
func (r psRow) Label(key string) string {
	if r.header {
		return strings.ToUpper(key)
	}
	return r.labels[key]
}

func newPsRow(s Sandbox) psRow {
	status := "Created"
	switch s.state() {
	case "running":
		status = "Up " + strings.TrimSuffix(ago(s.Created), " ago")
	case "paused":
		status = "Up " + strings.TrimSuffix(ago(s.Created), " ago") + " (Paused)"
	case "exited":
		status = "Exited"
		if s.Exit != nil {
			status = fmt.Sprintf("Exited (%d)", *s.Exit)
		}
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		labels = append(labels, k+"="+s.Labels[k])
	}
	return psRow{ID: s.ID, Names: s.Name, Image: s.Image, Profile: s.Profile, State: s.state(), Status: status,
		Pid: fmt.Sprint(s.Pid), CreatedAt: s.Created.Format("2006-01-02 15:04:05 -0700 MST"), RunningFor: ago(s.Created),
		Labels: strings.Join(labels, ","), Ports: s.Ports, labels: s.Labels}
}

var psHeader = psRow{ID: "ID", Names: "NAMES", Image: "IMAGE", Profile: "PROFILE", State: "STATE", Status: "STATUS",
	Pid: "PID", CreatedAt: "CREATED AT", RunningFor: "CREATED", Labels: "LABELS", Ports: "PORTS", header: true}

// psTemplate parses a --format Go template; "table TEMPLATE" prints a
// header row and aligns the columns, as Docker does.
func psTemplate(format string) (tmpl *template.Template, table bool, err error) {
	text, table := strings.CutPrefix(format, "table ")
	// Docker's templates write \t for a tab in the shell's single quotes.
	text = strings.ReplaceAll(text, `\t`, "\t")
	tmpl, err = template.New("ps").Funcs(template.FuncMap{
		"json":  func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
		"join":  strings.Join,
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
	}).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, false, fmt.Errorf("invalid --format %q: %v: use a Go template such as '{{.Names}}\\t{{.Status}}', or table or json", format, err)
	}
	return tmpl, table, nil
}

// writeTemplate prints one line per sandbox with tmpl.
func writeTemplate(w io.Writer, tmpl *template.Template, table bool, list []Sandbox) error {
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		out = tw
	}
	rows := make([]psRow, 0, len(list)+1)
	if table {
		rows = append(rows, psHeader)
	}
	for _, s := range list {
		rows = append(rows, newPsRow(s))
	}
	for _, r := range rows {
		var b strings.Builder
		if err := tmpl.Execute(&b, r); err != nil {
			return fmt.Errorf("invalid --format: %v: the fields are .ID .Names .Image .Profile .State .Status .Pid .CreatedAt .RunningFor .Labels and .Label \"KEY\"", err)
		}
		fmt.Fprintln(out, b.String())
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
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
		State:  InspectionState{Status: s.state(), Running: s.state() == "running", Paused: s.state() == "paused", Pid: s.Pid},
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
