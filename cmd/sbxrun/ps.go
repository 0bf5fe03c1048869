package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/sbxrun/sbxrun/runtime"
)

// psOptions are `sbxrun ps`'s flags.
type psOptions struct {
	runtime.PsOptions
	// Quiet prints the names only, one a line (`ps -q`, for scripts).
	Quiet bool
	// Format is "table" (default), "json", or a Go template over the
	// fields of Docker's `ps --format` ({{.Names}}, {{.Status}}, {{.Image}},
	// {{.ID}}, ...), with a "table " prefix for a header and aligned columns.
	Format string
}

// ps writes the sandbox list as a table, JSON, names (Quiet) or a Go
// template.
func ps(ctx context.Context, g *runtime.Global, o psOptions, w io.Writer) error {
	var (
		tmpl  *template.Template
		table bool
	)
	switch o.Format {
	case "", "table", "json":
	default:
		var err error
		if tmpl, table, err = psTemplate(o.Format); err != nil {
			return err
		}
	}
	list, err := runtime.Select(ctx, g, o.PsOptions)
	if err != nil {
		return err
	}
	switch {
	case o.Quiet:
		for _, s := range list {
			fmt.Fprintln(w, s.Name)
		}
		return nil
	case tmpl != nil:
		return writeTemplate(w, tmpl, table, list)
	case o.Format == "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// A PORTS column when a sandbox publishes any.
	ports := slices.ContainsFunc(list, func(s runtime.Sandbox) bool { return s.Ports != "" })
	header := "NAME\tPROFILE\tIMAGE\tSTATUS\tPID\tCREATED"
	if ports {
		header += "\tPORTS"
	}
	fmt.Fprintln(tw, header)
	for _, s := range list {
		status := s.Status
		if s.Exit != nil {
			status = fmt.Sprintf("exited (%d)", *s.Exit)
		}
		prof := s.Profile
		if prof == "" {
			prof = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s", s.Name, prof, s.Image, status, s.Pid, ago(s.Created))
		if ports {
			fmt.Fprintf(tw, "\t%s", s.Ports)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// ago is how long ago t was, as `ps` and `images` print it.
func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
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

func newPsRow(s runtime.Sandbox) psRow {
	status := "Created"
	switch s.State() {
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
	return psRow{ID: s.ID, Names: s.Name, Image: s.Image, Profile: s.Profile, State: s.State(), Status: status,
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
func writeTemplate(w io.Writer, tmpl *template.Template, table bool, list []runtime.Sandbox) error {
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

// printProjectPs prints `compose ps`: a table, or the rows as JSON.
func printProjectPs(w io.Writer, rows []runtime.ProjectService, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // "->" in ports, as written
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERVICE\tIMAGE\tSTATE\tHEALTH\tPORTS")
	for _, r := range rows {
		st := r.State
		if r.ExitCode != nil && r.State == "stopped" {
			st = fmt.Sprintf("exited (%d)", *r.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Service, r.Image, st, r.Health, r.Ports)
	}
	return tw.Flush()
}
