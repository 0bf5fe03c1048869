package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
)

// DockerHub is the registry login and logout use when none is named, as
// docker login does.
const DockerHub = "docker.io"

// dockerHubKey is where Docker keeps Docker Hub's credentials in
// config.json (docker/cli's registry.IndexServer); a pull from docker.io
// asks for the credentials of registry-1.docker.io, which authKey maps here.
const dockerHubKey = "https://index.docker.io/v1/"

// authKey is the config.json key of a registry host.
func authKey(host string) string {
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return dockerHubKey
	}
	return host
}

// loadDockerConfig reads config.json from dir ("" is $DOCKER_CONFIG, else
// ~/.docker). A missing file is an empty config.
func loadDockerConfig(dir string) (*configfile.ConfigFile, error) {
	cf, err := dockerconfig.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the Docker config: %w; fix or remove it (DOCKER_CONFIG points elsewhere)", err)
	}
	return cf, nil
}

// credentials returns the lookup containerd's authorizer calls for a host:
// config.json's auths, credsStore and credHelpers (docker-credential-*).
func (o *RegistryOptions) credentials() (func(string) (string, string, error), error) {
	cf, err := loadDockerConfig(o.DockerConfig)
	if err != nil {
		return nil, err
	}
	return func(host string) (string, string, error) {
		ac, err := cf.GetAuthConfig(authKey(host))
		if err != nil {
			return "", "", fmt.Errorf("getting credentials for %s from %q: %w", host, cf.Filename, err)
		}
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}, nil
}

// LoginOptions are the inputs of Login.
type LoginOptions struct {
	// Registry is the registry host; "" is Docker Hub (DockerHub).
	Registry string
	// Username and Password are checked against the registry, then stored.
	Username, Password string
	// RegistryOptions say how to reach it and where config.json is.
	RegistryOptions
}

// ErrLoginFailed is matched (errors.Is) by the error of a login the
// registry refused.
var ErrLoginFailed = errors.New("login failed")

// NormalizeRegistry turns "https://host:port/" or "docker.io" into the
// host form sbxrun and containerd use; "" and Docker Hub's other names
// (index.docker.io, registry-1.docker.io, https://index.docker.io/v1/) are
// DockerHub.
func NormalizeRegistry(s string) (string, error) {
	if s == "" {
		return DockerHub, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://"), "/")
	h = strings.TrimSuffix(h, "/v1")
	h = strings.TrimSuffix(h, "/v2")
	if h == "" || strings.ContainsAny(h, "/ \t@") {
		return "", fmt.Errorf("invalid registry %q: give its host, e.g. registry.example.com or localhost:5000", s)
	}
	if h == "index.docker.io" || h == "registry-1.docker.io" {
		h = DockerHub
	}
	return h, nil
}

// Login checks the credentials against the registry (HTTPS and hosts.toml
// as for a pull) and stores them where Docker would: the credential helper
// config.json names for the registry, else config.json itself. It returns
// the file it wrote.
func Login(ctx context.Context, o LoginOptions) (string, error) {
	host, err := NormalizeRegistry(o.Registry)
	if err != nil {
		return "", err
	}
	if o.Username == "" || o.Password == "" {
		return "", errors.New("login needs a user name and a password: sbxrun login -u USER --password-stdin [REGISTRY] < file")
	}
	if err := o.verify(ctx, host); err != nil {
		return "", err
	}
	cf, err := loadDockerConfig(o.DockerConfig)
	if err != nil {
		return "", err
	}
	key := authKey(host)
	ac := types.AuthConfig{ServerAddress: key, Username: o.Username, Password: o.Password}
	if err := cf.GetCredentialsStore(key).Store(ac); err != nil {
		return "", fmt.Errorf("storing the credentials for %s in %q: %w", host, cf.Filename, err)
	}
	return cf.Filename, nil
}

// Logout removes the stored credentials of a registry. It reports whether
// there were any.
func Logout(registry string, o RegistryOptions) (bool, error) {
	host, err := NormalizeRegistry(registry)
	if err != nil {
		return false, err
	}
	cf, err := loadDockerConfig(o.DockerConfig)
	if err != nil {
		return false, err
	}
	key := authKey(host)
	_, inFile := cf.AuthConfigs[key]
	store := cf.GetCredentialsStore(key)
	had := inFile
	if ac, err := store.Get(key); err == nil && (ac.Username != "" || ac.Password != "" || ac.IdentityToken != "") {
		had = true
	}
	if !had {
		return false, nil
	}
	if err := store.Erase(key); err != nil {
		return true, fmt.Errorf("removing the credentials for %s from %q: %w", host, cf.Filename, err)
	}
	if inFile {
		// A credential helper keeps an empty entry in the file as well.
		delete(cf.AuthConfigs, key)
		if err := cf.Save(); err != nil {
			return true, fmt.Errorf("writing %q: %w", cf.Filename, err)
		}
	}
	return true, nil
}

// verify asks the registry's /v2/ endpoint whether the credentials are
// good, answering its challenge the way a pull would.
func (o *LoginOptions) verify(ctx context.Context, host string) error {
	creds := func(string) (string, string, error) { return o.Username, o.Password, nil }
	hosts, err := o.registryHosts(ctx, creds, &observer{})(host)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return fmt.Errorf("registry %s has no endpoint in its hosts.toml", host)
	}
	// The last endpoint is the registry itself; the others are mirrors.
	rh := hosts[len(hosts)-1]
	endpoint := rh.Scheme + "://" + rh.Host + rh.Path + "/"
	var resp *http.Response
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return fmt.Errorf("logging in to %s: %w", host, err)
		}
		for k, v := range rh.Header {
			req.Header[k] = v
		}
		if attempt > 0 {
			if err := rh.Authorizer.Authorize(ctx, req); err != nil {
				return loginError(host, err)
			}
		}
		resp, err = rh.Client.Do(req)
		if err != nil {
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded) || ctx.Err() == nil && unreachable(err) && !certError(err):
				return unreachableError(host, err)
			case ctx.Err() != nil:
				return fmt.Errorf("%w: logging in to %s was interrupted", ErrLoginFailed, host)
			}
			p := &puller{name: host + "/x", obs: &observer{}}
			if e := p.explain(ctx, err); !strings.HasPrefix(e.Error(), "pulling ") {
				return fmt.Errorf("%w: %v", ErrLoginFailed, e)
			}
			return fmt.Errorf("%w: reaching %s: %v", ErrLoginFailed, endpoint, rootCause(err))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			break
		}
		if err := rh.Authorizer.AddResponses(ctx, []*http.Response{resp}); err != nil {
			return loginError(host, err)
		}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: registry %s rejected user %q (401 Unauthorized): check the user name and password", ErrLoginFailed, host, o.Username)
	case resp.StatusCode >= 300:
		return fmt.Errorf("%w: registry %s answered %s at %s: is it a registry?", ErrLoginFailed, host, resp.Status, endpoint)
	}
	return nil
}

// unreachableError is the one line for a registry login could not reach
// (refused, unknown name, timed out after the retries of retryTransport).
func unreachableError(host string, err error) error {
	cause := rootCause(err)
	if errors.Is(err, context.DeadlineExceeded) {
		cause = "no answer in time"
	}
	if host == DockerHub {
		return fmt.Errorf("%w: Docker Hub (docker.io, used when no registry is named) is unreachable (%s): check the network and proxy (HTTPS_PROXY), or name your registry: sbxrun login -u USER --password-stdin REGISTRY", ErrLoginFailed, cause)
	}
	return fmt.Errorf("%w: registry %s is unreachable (%s): check the address, the network and proxy (HTTPS_PROXY), and that the registry is up", ErrLoginFailed, host, cause)
}

func loginError(host string, err error) error {
	if unreachable(err) && !certError(err) {
		// The token service, which may be another host, did not answer.
		return unreachableError(host, err)
	}
	if errors.Is(err, docker.ErrInvalidAuthorization) || strings.Contains(err.Error(), "401") {
		return fmt.Errorf("%w: registry %s rejected the credentials: check the user name and password", ErrLoginFailed, host)
	}
	return fmt.Errorf("%w: authenticating with %s: %v", ErrLoginFailed, host, rootCause(err))
}
