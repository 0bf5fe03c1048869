package profiles

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// DefaultSystemConfig is the system-wide profile file.
const DefaultSystemConfig = "/etc/sbxrun/sbxrun.yaml"

// LoadOptions says where profile files are read from; empty fields take the
// defaults.
type LoadOptions struct {
	// SystemFile defaults to $SBXRUN_SYSTEM_CONFIG, then DefaultSystemConfig.
	SystemFile string
	// UserFile defaults to $XDG_CONFIG_HOME/sbxrun/sbxrun.yaml, then
	// ~/.config/sbxrun/sbxrun.yaml.
	UserFile string
	// ProjectFile defaults to sbxrun.yaml in the current directory.
	ProjectFile string
	// ConfigFile is --config; unlike the others it must exist when set.
	ConfigFile string
	// TrustFile is where the user's trust in project files is recorded;
	// "" is DefaultTrustFile().
	TrustFile string
}

// Set is the set of profiles sbxrun knows: the built-ins layered with
// the profile files.
type Set struct {
	defs map[string]*definition
	// untrusted are the layers read from a project file the user has not
	// trusted (with this content), by profile name; CheckTrust confines
	// what they may ask for.
	untrusted map[string][]untrustedLayer
	// projectDirs maps each untrusted project file to its directory, the
	// only place its bind mounts may come from.
	projectDirs map[string]string
}

// definition is one profile with its file layers merged, Extends unresolved.
type definition struct {
	profile Profile
	sources map[string]string
}

// fileLayer is one profile as decoded from one file; at says where each
// key (keyed as Resolved.Sources is) was written, as "FILE:LINE".
type fileLayer struct {
	name    string
	profile Profile
	at      func(key string) string
}

// lineAt makes a fileLayer's at from the lines of a profile's keys; "" is
// the line of the profile's name, used for keys merged in with "<<" or an
// alias.
func lineAt(file string, lines map[string]int) func(string) string {
	return func(key string) string {
		line, ok := lines[key]
		if !ok {
			line = lines[""]
		}
		if line == 0 {
			return file
		}
		return fmt.Sprintf("%s:%d", file, line)
	}
}

// Load reads the built-in profiles and the profile files in layer
// order. Missing default files are skipped; an unreadable or invalid file,
// or a missing ConfigFile, is an error naming the file (and line).
func Load(opts LoadOptions) (*Set, error) {
	p := &Set{defs: map[string]*definition{}, untrusted: map[string][]untrustedLayer{}, projectDirs: map[string]string{}}
	for name, b := range builtinProfiles() {
		d := &definition{sources: map[string]string{}}
		mergeProfile(&d.profile, d.sources, &b, func(string) string { return SourceBuiltin })
		p.defs[name] = d
	}

	files, err := opts.files()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var trust *trustStore
	for _, f := range files {
		abs, err := filepath.Abs(f.path)
		if err != nil {
			return nil, badConfigf("profile file %q: %w", f.path, err)
		}
		if seen[abs] {
			continue // --config naming ./sbxrun.yaml: append lists once
		}
		seen[abs] = true
		data, err := readProfileFile(f.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !f.required {
				continue
			}
			return nil, badConfigf("reading profile file %q: %w", f.path, err)
		}
		layers, err := parseProfileFile(abs, data)
		if err != nil {
			return nil, err
		}
		// The trust is judged on the very bytes parsed, so a file swapped
		// after `sbxrun trust` or while it is read is not trusted.
		untrusted := false
		if f.project && len(layers) > 0 {
			if trust == nil {
				tf := opts.TrustFile
				if tf == "" {
					tf = DefaultTrustFile()
				}
				if trust, err = readTrust(tf); err != nil {
					return nil, badConfigf("%w", err)
				}
			}
			untrusted = !trust.trusts(abs, contentDigest(data))
		}
		if untrusted {
			p.projectDirs[abs] = filepath.Dir(abs)
		}
		for _, l := range layers {
			p.add(l)
			if untrusted {
				p.untrusted[l.name] = append(p.untrusted[l.name], untrustedLayer{l, filepath.Dir(abs)})
			}
		}
	}
	if err := p.checkExtends(); err != nil {
		return nil, err
	}
	return p, nil
}

// maxProfileFile bounds the size of a profile file.
const maxProfileFile = 1 << 20

// readProfileFile reads a profile file of at most maxProfileFile bytes.
func readProfileFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfileFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxProfileFile {
		return nil, fmt.Errorf("larger than %d bytes: is it the right file?", maxProfileFile)
	}
	return data, nil
}

// profileFile is one file to read.
type profileFile struct {
	path     string
	required bool
	// project marks the file that comes with the current directory: it is
	// untrusted until the user trusts it, unless also named by --config.
	project bool
}

// files lists the profile files in layer order, defaults filled in.
func (o LoadOptions) files() ([]profileFile, error) {
	system := o.SystemFile
	if system == "" {
		system = os.Getenv("SBXRUN_SYSTEM_CONFIG")
	}
	if system == "" {
		system = DefaultSystemConfig
	}
	user := o.UserFile
	if user == "" {
		if dir := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
			user = filepath.Join(dir, "sbxrun", "sbxrun.yaml")
		} else if home, err := os.UserHomeDir(); err == nil {
			user = filepath.Join(home, ".config", "sbxrun", "sbxrun.yaml")
		}
	}
	project := o.ProjectFile
	if project == "" {
		project = "sbxrun.yaml"
	}
	files := []profileFile{{path: system}}
	if user != "" {
		files = append(files, profileFile{path: user})
	}
	files = append(files, profileFile{path: project, project: !sameFile(project, o.ConfigFile)})
	if o.ConfigFile != "" {
		if _, err := os.Stat(o.ConfigFile); err != nil {
			return nil, badConfigf("config file %q: %w: check the --config path", o.ConfigFile, err)
		}
		files = append(files, profileFile{path: o.ConfigFile, required: true})
	}
	return files, nil
}

// sameFile reports whether a and b name the same path ("" is no file).
func sameFile(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// add layers one file's profile over what is already known.
func (p *Set) add(l fileLayer) {
	d := p.defs[l.name]
	if d == nil {
		d = &definition{sources: map[string]string{}}
		p.defs[l.name] = d
	}
	mergeProfile(&d.profile, d.sources, &l.profile, l.at)
}

// checkExtends refuses an extends of an unknown profile and cycles, naming
// where the offending extends was written.
func (p *Set) checkExtends() error {
	for _, name := range p.Names() {
		if _, err := p.chain(name); err != nil {
			return err
		}
	}
	return nil
}

// chain is name followed by the profiles it extends, nearest first.
func (p *Set) chain(name string) ([]string, error) {
	var chain []string
	seen := map[string]bool{}
	for cur := name; cur != ""; {
		d, ok := p.defs[cur]
		if !ok {
			return nil, fmt.Errorf("profile %q %w: run \"sbxrun profiles\" to list the profiles", cur, errdefs.ErrNotFound)
		}
		if seen[cur] {
			return nil, badConfigf("%s: profile %q extends itself through %s: remove one extends", d.sources["extends"], cur, strings.Join(append(chain, cur), " -> "))
		}
		seen[cur] = true
		chain = append(chain, cur)
		next := d.profile.Extends
		if next != "" && p.defs[next] == nil {
			return nil, badConfigf("%s: profile %q extends unknown profile %q: define it or fix the name", d.sources["extends"], cur, next)
		}
		cur = next
	}
	return chain, nil
}

// Names lists the profiles, sorted.
func (p *Set) Names() []string {
	names := make([]string, 0, len(p.defs))
	for n := range p.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether name is a profile (rather than an image reference).
func (p *Set) Has(name string) bool {
	_, ok := p.defs[name]
	return ok
}

// Description is the profile's own description ("" for an unknown name).
func (p *Set) Description(name string) string {
	if d, ok := p.defs[name]; ok {
		return d.profile.Description
	}
	return ""
}

// dockerKeys maps the names Docker Compose uses to sbxrun's keys.
var dockerKeys = map[string]string{
	"volumes": "mounts", "environment": "env", "working_dir": "workdir",
	"mem_limit": "memory", "memswap_limit": "memory_swap", "network_mode": "network",
	"read_only_rootfs": "read_only", "stop_grace_period": "stop_timeout",
}

// suggestProfileKey offers the sbxrun key for a misspelt or Docker Compose
// one.
func suggestProfileKey(key string) string {
	if k, ok := dockerKeys[key]; ok {
		return fmt.Sprintf(": sbxrun calls it %q", k)
	}
	return suggest(key, profileKeys)
}

// suggest offers the closest known key to a misspelt one.
func suggest(key string, known map[string]keyKind) string {
	best, bestDist := "", 3
	for k := range known {
		if d := editDistance(key, k); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(": did you mean %q?", best)
	}
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	return ": use one of " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// configError marks a bad profile file or value as
// errdefs.ErrInvalidArgument without changing its text.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }

func (e configError) Unwrap() []error { return []error{e.err, errdefs.ErrInvalidArgument} }

// badConfigf formats a configError; %w is honoured.
func badConfigf(format string, a ...any) error {
	return configError{fmt.Errorf(format, a...)}
}
