package runtime

import (
	"os"
	"testing"
)

func TestZZSmoke(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/c.yaml", []byte("profiles:\n  base:\n    memory: 4g\n    env: {FOO: \"a #b\", E: \"\"}\n  mine:\n    extends: model-dev\n    image: registry.example.com/mine:1\n    cap_add: [SYS_PTRACE]\n    mounts:\n      - ~/data:/data:ro\n      - ~/x:~/x\n"), 0o644)
	p, err := LoadProfiles(LoadOptions{SystemFile: dir + "/none", UserFile: dir + "/none2", ProjectFile: dir + "/none3", ConfigFile: dir + "/c.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(p.Names())
	for _, n := range p.Names() {
		r, err := p.Resolve(n, &Profile{Memory: pointerTo("8g"), CapAdd: []string{"NET_ADMIN"}})
		if err != nil {
			t.Fatal(err)
		}
		r.Describe(os.Stdout)
		sb, err := r.Sandbox(HostEnv{Home: dir + "/home", Cwd: dir})
		t.Logf("%+v %v", sb, err)
	}
}
