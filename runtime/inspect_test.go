package runtime

import (
	"strings"
	"testing"
	"time"
)

func TestPsFilter(t *testing.T) {
	zero, one := 0, 1
	list := []Sandbox{
		{Name: "web-1", Status: "running", Labels: map[string]string{"team": "ml"}},
		{Name: "web-2", Status: "stopped", Exit: &one, Labels: map[string]string{"team": "db"}},
		{Name: "job", Status: "stopped", Exit: &zero},
		{Name: "new", Status: "created"},
	}
	tests := []struct {
		filters []string
		want    string
	}{
		{nil, "web-1 web-2 job new"},
		{[]string{"name=web"}, "web-1 web-2"},
		{[]string{"status=exited"}, "web-2 job"},
		{[]string{"status=running", "status=created"}, "web-1 new"},
		{[]string{"label=team"}, "web-1 web-2"},
		{[]string{"label=team=db"}, "web-2"},
		{[]string{"name=web", "status=exited"}, "web-2"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.filters, ","), func(t *testing.T) {
			f, err := parsePsFilters(tt.filters)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range list {
				if f.match(s) {
					got = append(got, s.Name)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("filter %q = %q, want %q", tt.filters, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"name", "status=dead", "id=1", "label="} {
		if _, err := parsePsFilters([]string{bad}); err == nil || !strings.Contains(err.Error(), "--filter") {
			t.Errorf("parsePsFilters(%q) = %v, want an error naming --filter", bad, err)
		}
	}
}

func TestPsTemplate(t *testing.T) {
	one := 1
	list := []Sandbox{
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
