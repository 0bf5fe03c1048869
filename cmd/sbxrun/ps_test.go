package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sbxrun/sbxrun/runtime"
)

func TestPsTemplate(t *testing.T) {
	one := 1
	list := []runtime.Sandbox{
		{Name: "a--b", ID: "a-b-12345678", Image: "img:1", Status: "stopped", Exit: &one, Created: time.Now(), Labels: map[string]string{"team": "ml"}},
	}
	tests := []struct{ format, want string }{
		{"{{.Names}}", "a--b\n"},
		{"{{.Names}} {{.Status}} {{.State}}", "a--b Exited (1) exited\n"},
		{"{{.ID}}\t{{.Image}}", "a-b-12345678\timg:1\n"},
		{`{{.Label "team"}}`, "ml\n"},
		{"table {{.Names}}\\t{{.Image}}", "NAMES   IMAGE\na--b    img:1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			tmpl, table, err := psTemplate(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := writeTemplate(&b, tmpl, table, list); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("format %q printed %q, want %q", tt.format, b.String(), tt.want)
			}
		})
	}
	if _, _, err := psTemplate("{{.Names"); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("unclosed template: %v, want an error naming --format", err)
	}
	tmpl, _, _ := psTemplate("{{.Nope}}")
	if err := writeTemplate(&strings.Builder{}, tmpl, false, list); err == nil || !strings.Contains(err.Error(), ".Names") {
		t.Errorf("unknown field: %v, want an error listing the fields", err)
	}
}

func TestPrintProjectPs(t *testing.T) {
	two := 2
	rows := []runtime.ProjectService{
		{Name: "p-db-1", Service: "db", Image: "base", State: "running", Health: "healthy", Ports: "127.0.0.1:5432->5432/tcp"},
		{Name: "p-job-1", Service: "job", Image: "base", State: "stopped", ExitCode: &two},
	}
	var b strings.Builder
	if err := printProjectPs(&b, rows, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME ") || !strings.Contains(lines[1], "healthy") ||
		!strings.Contains(lines[1], "127.0.0.1:5432->5432/tcp") || !strings.Contains(lines[2], "exited (2)") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	if err := printProjectPs(&b, rows, "json"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"Publishers":"127.0.0.1:5432->5432/tcp"`) || !strings.Contains(b.String(), `"ExitCode":2`) {
		t.Errorf("json: %s", b.String())
	}
}
