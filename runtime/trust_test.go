package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckTrust: settings that give up confinement are refused from a
// project's ./sbxrun.yaml and honoured from --config and flags.
func TestCheckTrust(t *testing.T) {
	tests := []struct {
		name, yaml string
		flags      *Profile
		wantErr    string
	}{
		{name: "privileged", yaml: "privileged: true", wantErr: "privileged: true is not honoured from a project's sbxrun.yaml: pass --privileged"},
		{name: "cap_add ALL", yaml: "cap_add: [ALL]", wantErr: "cap_add: ALL"},
		{name: "cap_add sys_admin any spelling", yaml: "cap_add: [cap_sys_admin]", wantErr: "cap_add: cap_sys_admin"},
		{name: "seccomp unconfined", yaml: "security_opt: [seccomp=unconfined]", wantErr: "security_opt: seccomp=unconfined"},
		{name: "no-new-privileges off", yaml: "security_opt: [no-new-privileges=false]", wantErr: "no-new-privileges=false"},
		{name: "devices", yaml: "devices: [vendor.example.com/x=y]", wantErr: "devices is not honoured"},
		{name: "harmless settings pass", yaml: "memory: 1g\n    cap_add: [NET_BIND_SERVICE]\n    security_opt: [no-new-privileges]"},
		{name: "privileged false passes", yaml: "privileged: false"},
		{name: "the flag itself passes", yaml: "memory: 1g", flags: &Profile{Privileged: pointerTo(true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			project := filepath.Join(dir, "sbxrun.yaml")
			if err := os.WriteFile(project, []byte("profiles:\n  base:\n    "+tt.yaml+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			none := filepath.Join(dir, "none.yaml")
			profs, err := LoadProfiles(LoadOptions{SystemFile: none, UserFile: none, ProjectFile: project})
			if err != nil {
				t.Fatal(err)
			}
			res, err := profs.Resolve("base", tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			err = checkTrust(res, dir)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("checkTrust: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("checkTrust = %v, want an error containing %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), project+":"):
				t.Errorf("error %q does not name the file and line", err)
			}

			// The same file given with --config is the user's explicit choice.
			profs, err = LoadProfiles(LoadOptions{SystemFile: none, UserFile: none, ProjectFile: none, ConfigFile: project})
			if err != nil {
				t.Fatal(err)
			}
			if res, err = profs.Resolve("base", tt.flags); err != nil {
				t.Fatal(err)
			}
			if err := checkTrust(res, t.TempDir()); err != nil {
				t.Errorf("from --config: %v", err)
			}
		})
	}
}
