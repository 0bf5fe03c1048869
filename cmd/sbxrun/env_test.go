package main

import (
	"strings"
	"testing"
)

func TestResolveEnvFlag(t *testing.T) {
	host := map[string]string{"FROM_HOST": "host value", "EMPTY": ""}
	lookup := func(k string) (string, bool) {
		v, ok := host[k]
		return v, ok
	}
	tests := []struct {
		in         string
		key, value string
		ok         bool
		err        string
	}{
		{in: "A=1", key: "A", value: "1", ok: true},
		{in: "A=", key: "A", value: "", ok: true},
		{in: "A=b=c", key: "A", value: "b=c", ok: true},
		{in: "A=a b", key: "A", value: "a b", ok: true},
		{in: "FROM_HOST=given", key: "FROM_HOST", value: "given", ok: true},
		{in: "FROM_HOST", key: "FROM_HOST", value: "host value", ok: true},
		{in: "EMPTY", key: "EMPTY", value: "", ok: true},
		{in: "UNSET", key: "UNSET", ok: false},
		{in: "", err: `invalid -e "": use KEY=VALUE or KEY`},
		{in: "=1", err: `invalid -e "=1": use KEY=VALUE or KEY`},
		{in: "A B=1", err: `invalid -e "A B=1"`},
		{in: "A\tB", err: `invalid -e "A\tB"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			key, value, ok, err := resolveEnvFlag(tt.in, lookup)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("resolveEnvFlag(%q) error %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || key != tt.key || value != tt.value || ok != tt.ok {
				t.Errorf("resolveEnvFlag(%q) = %q, %q, %v, %v; want %q, %q, %v", tt.in, key, value, ok, err, tt.key, tt.value, tt.ok)
			}
		})
	}
}
