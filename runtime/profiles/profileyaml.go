package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Profile files are read with go.yaml.in/yaml/v3, the YAML library CDI and
// nvcdi already link: first as nodes, which a walker checks for shape,
// unknown keys (with "did you mean" hints) and the line of every key, then
// decoded into the structs. Every error is one line, "FILE:LINE: message".

// profileName is what a profile may be called: it must not look like an
// image reference (no "/" or ":").
var profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// parseProfileFile decodes one profile file strictly: a mapping with the
// key "profiles" and any keys starting with "x-" (ignored: a place for YAML
// anchors). The nodes are walked first, for key lines, unknown keys and
// scalar types with messages naming the profile; yaml/v3 then fills the
// structs; values are checked last.
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
	var root yaml.Node
	err := guardYAML(file, func() error {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&root); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		return badConfigf("%s:%d: more than one YAML document: put every profile under one \"profiles:\" key", file, next.Line)
	})
	if err != nil {
		return nil, err
	}
	if expandedSize(&root, map[*yaml.Node]int{}) > maxExpandedNodes {
		return nil, badConfigf("%s: more than %d values once YAML aliases are expanded: simplify the file", file, maxExpandedNodes)
	}
	w := &walker{file: file, lines: map[string]map[string]int{}}
	if err := w.walkFile(&root); err != nil {
		return nil, err
	}

	var doc struct {
		Profiles map[string]*Profile `yaml:"profiles"`
	}
	if root.Kind != 0 {
		if err := guardYAML(file, func() error { return root.Decode(&doc) }); err != nil {
			return nil, err
		}
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
// early past maxExpandedNodes. sizes memoizes each anchored node's size, so
// the count itself stays linear in the file.
func expandedSize(n *yaml.Node, sizes map[*yaml.Node]int) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		if s, ok := sizes[n.Alias]; ok {
			return s
		}
		sizes[n.Alias] = maxExpandedNodes + 1 // a cycle counts as too big
		s := expandedSize(n.Alias, sizes)
		sizes[n.Alias] = s
		return s
	}
	total := 1
	for _, c := range n.Content {
		total += expandedSize(c, sizes)
		if total > maxExpandedNodes {
			return maxExpandedNodes + 1
		}
	}
	return total
}

// guardYAML runs a yaml/v3 call, turning its errors into "FILE:LINE:
// message" and a panic inside it into an error: a parser bug must not take
// sbxrun down with a stack trace.
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

// yamlLine matches the "line N: " yaml/v3 puts in its messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml/v3 error into "FILE:LINE: message".
func yamlError(file string, err error) error {
	var ce configError
	if errors.As(err, &ce) {
		return err // already ours
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.ReplaceAll(msg, "\n", "; ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return badConfigf("%s:%s: %s", file, m[1], m[2])
	}
	return badConfigf("%s: %s", file, strings.TrimPrefix(msg, "yaml: "))
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
			panic(fmt.Sprintf("runtime: Profile field %s has a type profileyaml.go does not know", f.Name))
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

// walker checks a profile file's nodes and records the line of every key.
type walker struct {
	file  string
	lines map[string]map[string]int // profile -> key -> line
}

func (w *walker) errorf(n *yaml.Node, format string, a ...any) error {
	return badConfigf("%s:%d: %s", w.file, n.Line, fmt.Sprintf(format, a...))
}

// entry is one key: value of a mapping, merge keys ("<<") expanded.
type entry struct {
	key   string
	k, v  *yaml.Node
	isKey bool // k is a plain scalar key
	// merged marks a pair a merge key brought in.
	merged bool
}

// entries lists a mapping's key/value pairs. The pairs a merge key brings
// in come first (a key written in the mapping itself wins, as YAML says).
// Merged pairs are checked like the mapping's own.
func entries(m *yaml.Node) []entry {
	var merged, own []entry
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && (k.Tag == "!!merge" || k.ShortTag() == "!!merge") {
			for _, src := range mergeSources(v) {
				for _, e := range entries(src) {
					e.merged = true
					merged = append(merged, e)
				}
			}
			continue
		}
		own = append(own, entry{key: k.Value, k: k, v: v, isKey: k.Kind == yaml.ScalarNode})
	}
	return append(merged, own...)
}

// mergeSources are the mappings a merge key's value names: one alias or
// mapping, or a list of them.
func mergeSources(v *yaml.Node) []*yaml.Node {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, c := range v.Content {
			if c = deref(c); c.Kind == yaml.MappingNode {
				out = append(out, c)
			}
		}
		return out
	}
	return nil
}

// deref follows aliases to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func (w *walker) walkFile(root *yaml.Node) error {
	body := root
	if body.Kind == yaml.DocumentNode {
		if len(body.Content) == 0 {
			return nil
		}
		body = body.Content[0]
	}
	if body.Kind == 0 || isNull(body) {
		return nil
	}
	body = deref(body)
	if body.Kind != yaml.MappingNode {
		return w.errorf(body, "the file must be a mapping with a \"profiles:\" key, not %s", describeNode(body))
	}
	for _, e := range entries(body) {
		if !e.isKey {
			return w.errorf(e.k, "keys must be plain strings")
		}
		switch {
		case strings.HasPrefix(e.key, "x-"):
			continue // x-NAME: a place for YAML anchors, as in Docker Compose
		case e.key == PublishAddressKey:
			if err := w.checkPublishAddress(deref(e.v)); err != nil {
				return err
			}
			continue
		case e.key != "profiles":
			return w.errorf(e.k, "unknown top-level key %q: profiles go under \"profiles:\" (keys starting with \"x-\" are free for YAML anchors)", e.key)
		}
		profiles := deref(e.v)
		if isNull(profiles) {
			continue
		}
		if profiles.Kind != yaml.MappingNode {
			return w.errorf(profiles, "\"profiles\" must be a mapping of profile names, not %s", describeNode(profiles))
		}
		seen := map[string]int{}
		for _, pe := range entries(profiles) {
			if !pe.isKey {
				return w.errorf(pe.k, "profile names must be plain strings")
			}
			if prev, ok := seen[pe.key]; ok && prev != pe.k.Line {
				return w.errorf(pe.k, "profile %q already defined at line %d: keep one", pe.key, prev)
			}
			seen[pe.key] = pe.k.Line
			if err := w.profile(pe.key, pe.k, pe.v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) profile(name string, k, v *yaml.Node) error {
	lines := map[string]int{"": k.Line}
	w.lines[name] = lines
	aliased := v.Kind == yaml.AliasNode
	body := deref(v)
	if isNull(body) {
		return nil
	}
	if body.Kind != yaml.MappingNode {
		return w.errorf(body, "profile %q must be a mapping of keys such as image, memory or mounts, not %s", name, describeNode(body))
	}
	seen := map[string]*yaml.Node{}
	for _, e := range entries(body) {
		if !e.isKey {
			return w.errorf(e.k, "keys in profile %q must be plain strings", name)
		}
		merged := e.merged || aliased
		kind, known := profileKeys[e.key]
		if !known {
			if merged {
				return w.errorf(e.k, "unknown field %q in profile %q%s", e.key, name, suggestProfileKey(e.key))
			}
			return w.errorf(e.k, "unknown key %q in profile %q%s", e.key, name, suggestProfileKey(e.key))
		}
		if prev, ok := seen[e.key]; ok && !merged && prev.Line >= k.Line {
			return w.errorf(e.k, "mapping key %q already defined at line %d: keep one", e.key, prev.Line)
		}
		seen[e.key] = e.k
		if !merged {
			lines[e.key] = e.k.Line
		}
		val := e.v
		if isNull(deref(val)) {
			continue
		}
		what := fmt.Sprintf("%q in profile %q", e.key, name)
		var err error
		switch kind {
		case kindStringMap:
			err = w.stringMap(val, e.key, what, lines)
		case kindMounts:
			err = w.mounts(val, what, lines)
		default:
			err = w.scalar(val, kind, what)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// wrongType is the message for a value reached through an alias whose
// anchored node has the wrong shape: the anchor's line is where to fix it.
func (w *walker) wrongType(v *yaml.Node, want string) error {
	return w.errorf(v, "wrong type: %s where %s is expected", describeNode(v), want)
}

// scalar checks the shape of a scalar or a list of strings.
func (w *walker) scalar(n *yaml.Node, kind keyKind, what string) error {
	aliased := n.Kind == yaml.AliasNode
	v := deref(n)
	fail := func(want, format string, a ...any) error {
		if aliased {
			return w.wrongType(v, want)
		}
		return w.errorf(v, format, a...)
	}
	switch kind {
	case kindString:
		if !isStringy(v, false) {
			return fail("a string", "%s must be a string, not %s%s", what, describeNode(v), quoteHint(v))
		}
	case kindInt:
		if !isTag(v, "!!int") {
			return fail("an integer", "%s must be an integer, not %s", what, describeNode(v))
		}
	case kindNumber:
		if !isTag(v, "!!int") && !isTag(v, "!!float") {
			return fail("a number", "%s must be a number, not %s", what, describeNode(v))
		}
	case kindBool:
		if !isTag(v, "!!bool") {
			return fail("a boolean", "%s must be true or false, not %s", what, describeNode(v))
		}
	case kindStringList:
		if v.Kind != yaml.SequenceNode {
			return fail("a list", "%s must be a list of strings such as [a, b], not %s", what, describeNode(v))
		}
		for _, item := range v.Content {
			itemAliased := item.Kind == yaml.AliasNode
			item = deref(item)
			if !isStringy(item, false) {
				if itemAliased {
					return w.wrongType(item, "a string")
				}
				return w.errorf(item, "items of %s must be strings, not %s%s", what, describeNode(item), quoteHint(item))
			}
		}
	}
	return nil
}

// stringMap checks env or labels and records the line of each key.
func (w *walker) stringMap(n *yaml.Node, key, what string, lines map[string]int) error {
	v := deref(n)
	if v.Kind != yaml.MappingNode {
		if n.Kind == yaml.AliasNode {
			return w.wrongType(v, "a mapping")
		}
		return w.errorf(v, "%s must be a mapping of NAME: value, not %s", what, describeNode(v))
	}
	for _, e := range entries(v) {
		if !e.isKey {
			return w.errorf(e.k, "names in %s must be plain strings", what)
		}
		lines[key+"."+e.key] = e.k.Line
		val := deref(e.v)
		if isNull(val) {
			return w.errorf(e.k, "%s.%s has no value: write %s: \"\" for an empty value", key, e.key, e.key)
		}
		if !isStringy(val, true) {
			if e.v.Kind == yaml.AliasNode {
				return w.wrongType(val, "a string")
			}
			return w.errorf(val, "%s.%s must be a string, not %s%s", key, e.key, describeNode(val), quoteHint(val))
		}
	}
	return nil
}

// mounts checks the mount list: each item is the "-v" string form or the
// map form; it records the line of each mount under "mounts.TARGET".
func (w *walker) mounts(n *yaml.Node, what string, lines map[string]int) error {
	v := deref(n)
	if v.Kind != yaml.SequenceNode {
		if n.Kind == yaml.AliasNode {
			return w.wrongType(v, "a list")
		}
		return w.errorf(v, "%s must be a list of mounts (SRC:DST[:ro] or {source: SRC, target: DST}), not %s", what, describeNode(v))
	}
	for _, item := range v.Content {
		item = deref(item)
		if isNull(item) {
			continue
		}
		if isStringy(item, false) {
			m, err := ParseMountSpec(item.Value)
			if err != nil {
				return w.errorf(item, "%v", err)
			}
			lines["mounts."+m.mountKey()] = item.Line
			continue
		}
		if item.Kind != yaml.MappingNode {
			return w.errorf(item, "a mount must be SRC:DST[:ro] or {source: SRC, target: DST}, not %s", describeNode(item))
		}
		target, err := w.mountMap(item)
		if err != nil {
			return err
		}
		if target != "" {
			lines["mounts."+MountSpec{Target: target}.mountKey()] = item.Line
		}
	}
	return nil
}

// mountMap checks a mount's map form and returns its target.
func (w *walker) mountMap(item *yaml.Node) (string, error) {
	target := ""
	for _, e := range entries(item) {
		if !e.isKey {
			return "", w.errorf(e.k, "mount keys must be plain strings")
		}
		kind, known := mountKeys[e.key]
		if !known {
			return "", w.errorf(e.k, "unknown mount key %q%s", e.key, suggest(e.key, mountKeys))
		}
		if isNull(deref(e.v)) {
			continue
		}
		if err := w.scalar(e.v, kind, fmt.Sprintf("mount key %q", e.key)); err != nil {
			return "", err
		}
		if e.key == "target" {
			target = deref(e.v).Value
		}
	}
	return target, nil
}

// isTag reports whether n is a scalar of the given (resolved) tag.
func isTag(n *yaml.Node, tag string) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == tag
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || isTag(n, "!!null")
}

// isStringy reports whether a node decodes to a string without loss: a
// string, an integer, or (for env and labels values) a boolean. Floats are
// refused, since 1.10 would become "1.1".
func isStringy(n *yaml.Node, allowBool bool) bool {
	if n == nil || n.Kind != yaml.ScalarNode {
		return false
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!timestamp":
		return true
	case "!!bool":
		return allowBool
	}
	return false
}

// quoteHint suggests quotes for a scalar that YAML read as something else.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!float", "!!bool":
			return fmt.Sprintf(": write it in quotes, as \"%s\"", n.Value)
		}
	}
	return ""
}

// describeNode names a node's YAML type for error messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return describeNode(deref(n))
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!binary", "!!timestamp":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
	}
	return "a value"
}
