package rootless

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"
)

// TestHasSubID: setup's checklist finds a user's subordinate-ID range by
// name or uid and accepts it only when it holds 65536 IDs.
func TestHasSubID(t *testing.T) {
	u := &user.User{Username: "dev", Uid: "1000"}
	tests := []struct {
		name string
		file string // "-": no file
		want bool
	}{
		{"by name", "dev:100000:65536\n", true},
		{"by uid", "1000:100000:65536\n", true},
		{"larger range, among others", "root:1:2\n\n  dev:200000:131072  \nother:300000:65536\n", true},
		{"too small", "dev:100000:65535\n", false},
		{"another user", "developer:100000:65536\n1001:100000:65536\n", false},
		{"count missing", "dev:100000\n", false},
		{"count not a number", "dev:100000:lots\n", false},
		{"empty file", "", false},
		{"no file", "-", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "subuid")
			if tt.file != "-" {
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := hasSubID(path, u); got != tt.want {
				t.Errorf("hasSubID(%q) = %v, want %v", tt.file, got, tt.want)
			}
		})
	}
}
