package runtime

import (
	"strings"
	"testing"
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
