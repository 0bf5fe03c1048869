package runtime

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/containerd/errdefs"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
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

// Profiles is the set of profiles sbxrun knows: the built-ins layered with
// the profile files.
type Profiles struct {
	defs map[string]*definition
	// untrusted are the layers read from a project file the user has not
	// trusted (with this content), by profile name; checkTrust confines
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

// LoadProfiles reads the built-in profiles and the profile files in layer
// order. Missing default files are skipped; an unreadable or invalid file,
// or a missing ConfigFile, is an error naming the file (and line).
func LoadProfiles(opts LoadOptions) (*Profiles, error) {
	p := &Profiles{defs: map[string]*definition{}, untrusted: map[string][]untrustedLayer{}, projectDirs: map[string]string{}}
	for name, b := range builtinProfiles() {
		d := &definition{sources: map[string]string{}}
		mergeProfile(&d.profile, d.sources, &b, func(string) string { return sourceBuiltin })
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
func (p *Profiles) add(l fileLayer) {
	d := p.defs[l.name]
	if d == nil {
		d = &definition{sources: map[string]string{}}
		p.defs[l.name] = d
	}
	mergeProfile(&d.profile, d.sources, &l.profile, l.at)
}

// checkExtends refuses an extends of an unknown profile and cycles, naming
// where the offending extends was written.
func (p *Profiles) checkExtends() error {
	for _, name := range p.Names() {
		if _, err := p.chain(name); err != nil {
			return err
		}
	}
	return nil
}

// chain is name followed by the profiles it extends, nearest first.
func (p *Profiles) chain(name string) ([]string, error) {
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
func (p *Profiles) Names() []string {
	names := make([]string, 0, len(p.defs))
	for n := range p.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether name is a profile (rather than an image reference).
func (p *Profiles) Has(name string) bool {
	_, ok := p.defs[name]
	return ok
}

// Description is the profile's own description ("" for an unknown name).
func (p *Profiles) Description(name string) string {
	if d, ok := p.defs[name]; ok {
		return d.profile.Description
	}
	return ""
}

// profileName is what a profile may be called: it must not look like an
// image reference (no "/" or ":").
var profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// parseProfileFile decodes one profile file strictly: a mapping with the
// key "profiles" and any keys starting with "x-" (ignored: a place for YAML
// anchors). The AST is walked first, for key lines, unknown keys and scalar
// types with messages naming the profile; goccy's strict decoder then fills
// the structs (its errors carry the line too); values are checked last.
func parseProfileFile(file string, data []byte) ([]fileLayer, error) {
	if !utf8.Valid(data) {
		line := 1
		for len(data) > 0 {
			r, size := utf8.DecodeRune(data)
			if r == utf8.RuneError && size <= 1 {
				break
			}
			if r == '\n' {
				line++
			}
			data = data[size:]
		}
		return nil, badConfigf("%s:%d: invalid UTF-8: save the file as UTF-8", file, line)
	}
	var astFile *ast.File
	err := guardYAML(file, func() (err error) {
		astFile, err = parser.ParseBytes(data, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, doc := range astFile.Docs {
		if expandedSize(doc, map[string]int{}) > maxExpandedNodes {
			return nil, badConfigf("%s: more than %d values once YAML aliases are expanded: simplify the file", file, maxExpandedNodes)
		}
	}
	w := &walker{file: file, lines: map[string]map[string]int{}}
	if err := w.walkFile(astFile); err != nil {
		return nil, err
	}

	var doc struct {
		Profiles map[string]*Profile `yaml:"profiles"`
	}
	err = guardYAML(file, func() error {
		return yaml.UnmarshalWithOptions(data, &doc, yaml.Strict(), yaml.AllowFieldPrefixes("x-"))
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(doc.Profiles))
	for n := range doc.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	var layers []fileLayer
	for _, name := range names {
		prof := doc.Profiles[name]
		if prof == nil {
			prof = &Profile{}
		}
		at := lineAt(file, w.lines[name])
		if !profileName.MatchString(name) {
			return nil, badConfigf("%s: invalid profile name %q: use letters, digits, '.', '_' and '-' (no '/' or ':', which mark image references)", at(""), name)
		}
		err := validateProfile(prof, func(key string, err error) error {
			return badConfigf("%s: %s in profile %q: %w", at(key), key, name, err)
		})
		if err != nil {
			return nil, err
		}
		layers = append(layers, fileLayer{name: name, profile: *prof, at: at})
	}
	return layers, nil
}

// maxExpandedNodes bounds a profile file with its aliases expanded: a
// "billion laughs" file would otherwise exhaust memory while decoding.
const maxExpandedNodes = 100_000

// expandedSize counts the nodes under n with every alias expanded, stopping
// early past maxExpandedNodes. anchors holds the sizes of the anchors seen
// so far (YAML defines an anchor before its aliases).
func expandedSize(n ast.Node, anchors map[string]int) int {
	if n == nil {
		return 0
	}
	sum := func(nodes ...ast.Node) int {
		total := 1
		for _, c := range nodes {
			total += expandedSize(c, anchors)
			if total > maxExpandedNodes {
				return maxExpandedNodes + 1
			}
		}
		return total
	}
	switch t := n.(type) {
	case *ast.DocumentNode:
		return sum(t.Body)
	case *ast.MappingNode:
		nodes := make([]ast.Node, len(t.Values))
		for i, v := range t.Values {
			nodes[i] = v
		}
		return sum(nodes...)
	case *ast.MappingValueNode:
		return sum(t.Key, t.Value)
	case *ast.MappingKeyNode:
		return sum(t.Value)
	case *ast.SequenceNode:
		return sum(t.Values...)
	case *ast.TagNode:
		return sum(t.Value)
	case *ast.AnchorNode:
		size := sum(t.Value)
		if t.Name != nil && t.Name.GetToken() != nil {
			anchors[t.Name.GetToken().Value] = size
		}
		return size
	case *ast.AliasNode:
		if t.Value != nil && t.Value.GetToken() != nil {
			if size, ok := anchors[t.Value.GetToken().Value]; ok {
				return size
			}
		}
	}
	return 1
}

// guardYAML runs a goccy call, turning its errors into "FILE:LINE: message"
// and a panic inside it into an error: a parser bug must not take sbxrun
// down with a stack trace.
func guardYAML(file string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = badConfigf("%s: cannot parse YAML (%v): check the file's syntax", file, r)
		}
	}()
	if err := f(); err != nil {
		return yamlError(file, err)
	}
	return nil
}

// yamlError turns a goccy error into "FILE:LINE: message".
func yamlError(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
		msg := ye.GetMessage()
		var te *yaml.TypeError
		if errors.As(err, &te) && te.SrcType != nil && te.DstType != nil {
			msg = fmt.Sprintf("wrong type: %s where %s is expected", typeWord(te.SrcType), typeWord(te.DstType))
		}
		return badConfigf("%s:%d: %s", file, ye.GetToken().Position.Line, msg)
	}
	return badConfigf("%s: %w", file, err)
}

// typeWord names a Go type as YAML would.
func typeWord(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// keyKind is the YAML shape a profile key takes.
type keyKind int

const (
	kindString keyKind = iota
	kindInt
	kindNumber
	kindBool
	kindStringList
	kindStringMap
	kindMounts
)

// profileKeys maps each yaml key of Profile to its shape, read from the
// struct tags so that a new field needs no change here.
var profileKeys = func() map[string]keyKind {
	keys := map[string]keyKind{}
	t := reflect.TypeFor[Profile]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		var k keyKind
		switch {
		case ft == reflect.TypeFor[[]MountSpec]():
			k = kindMounts
		case ft.Kind() == reflect.String:
			k = kindString
		case ft.Kind() == reflect.Int || ft.Kind() == reflect.Int64:
			k = kindInt
		case ft.Kind() == reflect.Float64:
			k = kindNumber
		case ft.Kind() == reflect.Bool:
			k = kindBool
		case ft == reflect.TypeFor[[]string]():
			k = kindStringList
		case ft == reflect.TypeFor[map[string]string]():
			k = kindStringMap
		default:
			panic(fmt.Sprintf("runtime: Profile field %s has a type profiles.go does not know", f.Name))
		}
		keys[name] = k
	}
	return keys
}()

// mountKeys are the keys of a mount's map form.
var mountKeys = map[string]keyKind{
	"type": kindString, "source": kindString, "target": kindString, "readonly": kindBool,
	"create": kindBool, "optional": kindBool, "options": kindStringList,
}

// walker checks a profile file's AST and records the line of every key.
type walker struct {
	file  string
	lines map[string]map[string]int // profile -> key -> line
}

func (w *walker) errorf(n ast.Node, format string, a ...any) error {
	return badConfigf("%s:%d: %s", w.file, line(n), fmt.Sprintf(format, a...))
}

func (w *walker) walkFile(f *ast.File) error {
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			at := ast.Node(doc)
			if doc.Start != nil {
				at = ast.Node(&ast.StringNode{BaseNode: &ast.BaseNode{}, Token: doc.Start})
			}
			return w.errorf(at, "more than one YAML document: put every profile under one \"profiles:\" key")
		}
		body = doc.Body
	}
	body = unwrap(body)
	if body == nil || isNull(body) {
		return nil
	}
	values, ok := mappingValues(body)
	if !ok {
		return w.errorf(body, "the file must be a mapping with a \"profiles:\" key, not %s", describeNode(body))
	}
	for _, mv := range values {
		key, ok := keyString(mv.Key)
		if !ok {
			return w.errorf(mv, "keys must be plain strings")
		}
		switch {
		case key == "<<" || strings.HasPrefix(key, "x-"):
			continue // x-NAME: a place for YAML anchors, as in Docker Compose
		case key != "profiles":
			return w.errorf(mv, "unknown top-level key %q: profiles go under \"profiles:\" (keys starting with \"x-\" are free for YAML anchors)", key)
		}
		profiles := unwrap(mv.Value)
		if profiles == nil || isNull(profiles) || isAlias(profiles) {
			continue
		}
		pvs, ok := mappingValues(profiles)
		if !ok {
			return w.errorf(profiles, "\"profiles\" must be a mapping of profile names, not %s", describeNode(profiles))
		}
		for _, pv := range pvs {
			name, ok := keyString(pv.Key)
			if !ok {
				return w.errorf(pv, "profile names must be plain strings")
			}
			if name == "<<" {
				continue
			}
			if err := w.profile(name, pv); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) profile(name string, pv *ast.MappingValueNode) error {
	lines := map[string]int{"": line(pv)}
	w.lines[name] = lines
	body := unwrap(pv.Value)
	if body == nil || isNull(body) || isAlias(body) {
		return nil
	}
	values, ok := mappingValues(body)
	if !ok {
		return w.errorf(body, "profile %q must be a mapping of keys such as image, memory or mounts, not %s", name, describeNode(body))
	}
	for _, mv := range values {
		key, ok := keyString(mv.Key)
		if !ok {
			return w.errorf(mv, "keys in profile %q must be plain strings", name)
		}
		if key == "<<" {
			continue
		}
		kind, known := profileKeys[key]
		if !known {
			return w.errorf(mv, "unknown key %q in profile %q%s", key, name, suggestProfileKey(key))
		}
		lines[key] = line(mv)
		v := unwrap(mv.Value)
		if v == nil || isNull(v) || isAlias(v) {
			continue
		}
		what := fmt.Sprintf("%q in profile %q", key, name)
		switch kind {
		case kindStringMap:
			if err := w.stringMap(v, key, what, lines); err != nil {
				return err
			}
		case kindMounts:
			if err := w.mounts(v, what, lines); err != nil {
				return err
			}
		default:
			if err := w.scalar(v, kind, what); err != nil {
				return err
			}
		}
	}
	return nil
}

// scalar checks the shape of a scalar or a list of strings.
func (w *walker) scalar(v ast.Node, kind keyKind, what string) error {
	switch kind {
	case kindString:
		if !isStringy(v, false) {
			return w.errorf(v, "%s must be a string, not %s%s", what, describeNode(v), quoteHint(v))
		}
	case kindInt:
		if _, ok := v.(*ast.IntegerNode); !ok {
			return w.errorf(v, "%s must be an integer, not %s", what, describeNode(v))
		}
	case kindNumber:
		switch v.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
		default:
			return w.errorf(v, "%s must be a number, not %s", what, describeNode(v))
		}
	case kindBool:
		if _, ok := v.(*ast.BoolNode); !ok {
			return w.errorf(v, "%s must be true or false, not %s", what, describeNode(v))
		}
	case kindStringList:
		seq, ok := v.(*ast.SequenceNode)
		if !ok {
			return w.errorf(v, "%s must be a list of strings such as [a, b], not %s", what, describeNode(v))
		}
		for _, item := range seq.Values {
			item = unwrap(item)
			if isAlias(item) {
				continue
			}
			if !isStringy(item, false) {
				return w.errorf(item, "items of %s must be strings, not %s%s", what, describeNode(item), quoteHint(item))
			}
		}
	}
	return nil
}

// stringMap checks env or labels and records the line of each key.
func (w *walker) stringMap(v ast.Node, key, what string, lines map[string]int) error {
	values, ok := mappingValues(v)
	if !ok {
		return w.errorf(v, "%s must be a mapping of NAME: value, not %s", what, describeNode(v))
	}
	for _, mv := range values {
		k, ok := keyString(mv.Key)
		if !ok {
			return w.errorf(mv, "names in %s must be plain strings", what)
		}
		if k == "<<" {
			continue
		}
		lines[key+"."+k] = line(mv)
		val := unwrap(mv.Value)
		if isAlias(val) {
			continue
		}
		if val == nil || isNull(val) {
			return w.errorf(mv, "%s.%s has no value: write %s: \"\" for an empty value", key, k, k)
		}
		if !isStringy(val, true) {
			return w.errorf(val, "%s.%s must be a string, not %s%s", key, k, describeNode(val), quoteHint(val))
		}
	}
	return nil
}

// mounts checks the mount list: each item is the "-v" string form or the
// map form; it records the line of each mount under "mounts.TARGET".
func (w *walker) mounts(v ast.Node, what string, lines map[string]int) error {
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		return w.errorf(v, "%s must be a list of mounts (SRC:DST[:ro] or {source: SRC, target: DST}), not %s", what, describeNode(v))
	}
	for _, item := range seq.Values {
		item = unwrap(item)
		if item == nil || isAlias(item) {
			continue
		}
		if isStringy(item, false) {
			m, err := ParseMountSpec(scalarText(item))
			if err != nil {
				return w.errorf(item, "%v", err)
			}
			lines["mounts."+m.mountKey()] = line(item)
			continue
		}
		values, ok := mappingValues(item)
		if !ok {
			return w.errorf(item, "a mount must be SRC:DST[:ro] or {source: SRC, target: DST}, not %s", describeNode(item))
		}
		target := ""
		for _, mv := range values {
			k, ok := keyString(mv.Key)
			if !ok {
				return w.errorf(mv, "mount keys must be plain strings")
			}
			if k == "<<" {
				continue
			}
			kind, known := mountKeys[k]
			if !known {
				return w.errorf(mv, "unknown mount key %q%s", k, suggest(k, mountKeys))
			}
			val := unwrap(mv.Value)
			if val == nil || isNull(val) || isAlias(val) {
				continue
			}
			if err := w.scalar(val, kind, fmt.Sprintf("mount key %q", k)); err != nil {
				return err
			}
			if k == "target" {
				target = scalarText(val)
			}
		}
		if target != "" {
			lines["mounts."+MountSpec{Target: target}.mountKey()] = line(item)
		}
	}
	return nil
}

// unwrap looks through anchors and tags to the value node.
func unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			if t.Start != nil && t.Start.Value == "!!str" {
				return t // a string, whatever it looks like
			}
			n = t.Value
		default:
			return n
		}
	}
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return ok
}

func isAlias(n ast.Node) bool {
	_, ok := n.(*ast.AliasNode)
	return ok
}

// isStringy reports whether a node decodes to a string without loss: a
// string, an integer, or (for env and labels values) a boolean. Floats are
// refused, since 1.10 would become "1.1".
func isStringy(n ast.Node, allowBool bool) bool {
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode, *ast.IntegerNode, *ast.TagNode:
		return true
	case *ast.BoolNode:
		return allowBool
	}
	return false
}

// quoteHint suggests quotes for a scalar that YAML read as something else.
func quoteHint(n ast.Node) string {
	switch n.(type) {
	case *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return fmt.Sprintf(": write it in quotes, as \"%s\"", n.GetToken().Value)
	}
	return ""
}

// scalarText is the string a stringy node decodes to.
func scalarText(n ast.Node) string {
	switch t := n.(type) {
	case *ast.StringNode:
		return t.Value
	case *ast.LiteralNode:
		return t.Value.Value
	case *ast.TagNode:
		if t.Value != nil {
			return scalarText(t.Value)
		}
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// mappingValues returns the entries of a mapping node.
func mappingValues(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch t := n.(type) {
	case *ast.MappingNode:
		return t.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{t}, true
	}
	return nil, false
}

// keyString is a mapping key's text; "<<" for a merge key.
func keyString(k ast.MapKeyNode) (string, bool) {
	switch t := k.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.MergeKeyNode:
		return "<<", true
	case *ast.IntegerNode, *ast.BoolNode, *ast.FloatNode, *ast.NullNode:
		if tk := t.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

// describeNode names a node's YAML type for error messages.
func describeNode(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "null"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// line is the line a node starts on.
func line(n ast.Node) int {
	if mv, ok := n.(*ast.MappingValueNode); ok && mv.Key != nil {
		n = mv.Key
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
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
