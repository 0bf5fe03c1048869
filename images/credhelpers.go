package images

import (
	"fmt"
	"os/exec"
	"sort"
)

// CredentialHelper is one docker-credential-* program the Docker config
// names (credsStore or credHelpers), checked for presence, so `sbxrun
// doctor` can say before a pull that a private registry's credentials
// cannot be read.
type CredentialHelper struct {
	// Name is the helper's suffix: "pass" for docker-credential-pass.
	Name string
	// Registries are the hosts it serves; empty for credsStore, which
	// serves all.
	Registries []string
	// Path is the binary found on $PATH, "" when it is missing.
	Path string
}

// CredentialHelpers reads config.json from dir ("" is $DOCKER_CONFIG,
// else ~/.docker) and returns the file's name and the helpers it names.
// A missing file is no helpers.
func CredentialHelpers(dir string) (file string, helpers []CredentialHelper, err error) {
	cf, err := loadDockerConfig(dir)
	if err != nil {
		return "", nil, err
	}
	byName := map[string]*CredentialHelper{}
	add := func(name, registry string) {
		h := byName[name]
		if h == nil {
			h = &CredentialHelper{Name: name}
			if p, err := exec.LookPath("docker-credential-" + name); err == nil {
				h.Path = p
			}
			byName[name] = h
		}
		if registry != "" {
			h.Registries = append(h.Registries, registry)
		}
	}
	if cf.CredentialsStore != "" {
		add(cf.CredentialsStore, "")
	}
	for reg, name := range cf.CredentialHelpers {
		if name != "" {
			add(name, reg)
		}
	}
	for _, h := range byName {
		sort.Strings(h.Registries)
		helpers = append(helpers, *h)
	}
	sort.Slice(helpers, func(i, j int) bool { return helpers[i].Name < helpers[j].Name })
	return cf.Filename, helpers, nil
}

// String names the helper's binary and what it serves.
func (h CredentialHelper) String() string {
	if len(h.Registries) == 0 {
		return fmt.Sprintf("docker-credential-%s (credsStore)", h.Name)
	}
	return fmt.Sprintf("docker-credential-%s (for %v)", h.Name, h.Registries)
}
