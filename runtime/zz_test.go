package runtime

import ("testing";"time")

func TestZZBomb(t *testing.T) {
	start := time.Now()
	_, err := LoadProfiles(LoadOptions{SystemFile: "/nonexist", UserFile: "/nonexist", ProjectFile: "/nonexist", ConfigFile: "/tmp/bomb.yaml"})
	t.Log(time.Since(start), err)
}
