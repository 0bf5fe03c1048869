package images

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{in: "alpine", want: "docker.io/library/alpine:latest"},
		{in: "ubuntu:24.04", want: "docker.io/library/ubuntu:24.04"},
		{in: "ghcr.io/sbxrun/base:latest", want: "ghcr.io/sbxrun/base:latest"},
		{in: "localhost:5000/x", want: "localhost:5000/x:latest"},
		{in: "alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123", want: "docker.io/library/alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123"},
		{in: "Upper", wantErr: "invalid image reference"},
		{in: "a b", wantErr: "invalid image reference"},
		{in: "", wantErr: "invalid image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Normalize(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNotPresentError(t *testing.T) {
	err := error(&notPresentError{name: "docker.io/library/alpine:latest", ref: "alpine"})
	if !errors.Is(err, ErrNotPresent) {
		t.Fatal("errors.Is(notPresentError, ErrNotPresent) = false")
	}
	for _, want := range []string{"sbxrun load -i FILE", "sbxrun pull alpine", "--pull never"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}
