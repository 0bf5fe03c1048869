package oci

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	units "github.com/docker/go-units"
)

// propagations are the mount propagation modes Docker accepts for binds.
var propagations = map[string]bool{
	"private": true, "rprivate": true,
	"shared": true, "rshared": true,
	"slave": true, "rslave": true,
}

// ParseSize parses a Docker size such as 512m, 8g or 1073741824 into bytes,
// with go-units' RAMInBytes (binary units: 1k = 1024). Empty and negative
// sizes are refused.
func ParseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil || n < 0 || n == math.MaxInt64 {
		// RAMInBytes converts an out-of-range float to int64, which gives
		// MinInt64 on amd64 and MaxInt64 on arm64.
		return 0, invalidf("invalid size %q: use a number with an optional unit, such as 512m or 8g", s)
	}
	return n, nil
}

// ParseSwap parses --memory-swap: a size as ParseSize, or -1 for unlimited
// swap (Docker's MemSwapBytes).
func ParseSwap(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, invalidf("invalid memory-swap %q: use a size such as 1g, or -1 for unlimited swap", s)
	}
	return n, nil
}

// ParseVolume parses the -v form SRC:DST[:OPTS] into a bind mount. OPTS is a
// comma-separated list of ro, rw, z or Z (accepted and ignored: no SELinux
// relabeling), consistent, cached or delegated (ignored, as on Linux Docker)
// one propagation mode (private, rprivate, shared, rshared, slave, rslave),
// and suid or dev (binds are nosuid,nodev unless they ask), which land in
// Options. Source is returned as written: the caller
// expands "~" and relative paths. Named volumes are not supported yet.
func ParseVolume(spec string) (Mount, error) {
	parts := strings.Split(spec, ":")
	if len(parts) == 1 {
		return Mount{}, invalidf("invalid volume %q: anonymous volumes are not supported yet: use SRC:DST[:ro] with a host path", spec)
	}
	if len(parts) > 3 {
		return Mount{}, invalidf("invalid volume %q: too many colons: use SRC:DST[:OPTS]", spec)
	}
	src, dst := parts[0], parts[1]
	if src == "" {
		return Mount{}, invalidf("invalid volume %q: empty source: use SRC:DST[:OPTS] with a host path", spec)
	}
	if dst == "" {
		return Mount{}, invalidf("invalid volume %q: empty destination: use SRC:DST[:OPTS]", spec)
	}
	if isVolumeName(src) {
		return Mount{}, invalidf("invalid volume %q: named volumes are not supported yet: use an absolute or relative host path such as ./%s or /srv/%s", spec, src, src)
	}
	if !path.IsAbs(dst) {
		return Mount{}, invalidf("invalid volume %q: destination %q is not an absolute path: use a path such as /data", spec, dst)
	}
	m := Mount{Type: "bind", Source: src, Destination: dst}
	if len(parts) == 3 {
		var rw, propagation string
		var lift []string
		for _, o := range strings.Split(parts[2], ",") {
			switch {
			case o == "suid" || o == "dev":
				// Binds are nosuid,nodev; these lift that (as podman's).
				if !slices.Contains(lift, o) {
					lift = append(lift, o)
				}
			case o == "nosuid" || o == "nodev":
				// The default already.
			case o == "ro" || o == "rw":
				if rw != "" && rw != o {
					return Mount{}, invalidf("invalid volume %q: both ro and rw given: keep one", spec)
				}
				rw = o
			case o == "z" || o == "Z", o == "consistent" || o == "cached" || o == "delegated":
				// Accepted for Docker compatibility; nothing to do.
			case propagations[o]:
				if propagation != "" && propagation != o {
					return Mount{}, invalidf("invalid volume %q: two propagation modes %q and %q: keep one", spec, propagation, o)
				}
				propagation = o
			default:
				return Mount{}, invalidf("invalid volume %q: unknown option %q: use ro, rw, suid, dev or a propagation mode such as rprivate", spec, o)
			}
		}
		m.ReadOnly = rw == "ro"
		if propagation != "" {
			m.Options = []string{propagation}
		}
		m.Options = append(m.Options, lift...)
	}
	return m, nil
}

// isVolumeName reports whether a -v source names a Docker volume rather
// than a host path (no slash, and not "."-, or "~"-relative).
func isVolumeName(src string) bool {
	return !strings.Contains(src, "/") && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "~")
}

// mountKeys maps each key of --mount, under every name it has, to its
// canonical name.
var mountKeys = map[string]string{
	"type": "type", "source": "source", "src": "source",
	"target": "target", "destination": "target", "dst": "target",
	"readonly": "readonly", "ro": "readonly", "bind-propagation": "bind-propagation",
	"tmpfs-size": "tmpfs-size", "tmpfs-mode": "tmpfs-mode",
}

// ParseMountFlag parses Docker's --mount form, comma-separated key=value pairs
// (CSV, so a value may be quoted):
//
//	type=bind|tmpfs, source|src=SRC, target|destination|dst=DST,
//	readonly|ro[=true|false], bind-propagation=MODE,
//	tmpfs-size=SIZE, tmpfs-mode=OCTAL
//
// Keys are case-insensitive. Unknown keys, unknown types, keys that do not
// fit the type and a key given twice (under any of its names: src and
// source are one key) are errors naming the key. The bind source is
// returned as written.
func ParseMountFlag(spec string) (Mount, error) {
	r := csv.NewReader(strings.NewReader(spec))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	fields, err := r.Read()
	if err != nil {
		return Mount{}, invalidf("invalid mount %q: %v: use type=bind,source=SRC,target=DST", spec, err)
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		return Mount{}, invalidf("invalid mount %q: more than one line: give one mount per --mount", spec)
	}

	var (
		typ, src, dst         string
		srcSet                bool
		readonly              bool
		propagation           string
		tmpfsSize             int64
		tmpfsMode             uint64
		tmpfsSizeSet, modeSet bool
		bindKeys, tmpfsKeys   []string
		fail                  = func(format string, a ...any) error {
			return invalidf("invalid mount %q: "+format, append([]any{spec}, a...)...)
		}
		given = map[string]string{} // canonical key -> the name it was given as
	)
	for _, field := range fields {
		k, v, hasValue := strings.Cut(field, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if !hasValue && key != "readonly" && key != "ro" {
			if key == "" {
				continue // tolerate "type=bind,,target=/x" and a trailing comma
			}
			return Mount{}, fail("key %q needs a value: use %s=VALUE", key, key)
		}
		if canon, known := mountKeys[key]; known {
			if prev, dup := given[canon]; dup {
				if prev == key {
					return Mount{}, fail("key %q given twice: keep one", key)
				}
				return Mount{}, fail("keys %q and %q are one key given twice: keep one", prev, key)
			}
			given[canon] = key
		}
		switch key {
		case "type":
			typ = v
		case "source", "src":
			src, srcSet = v, true
		case "target", "destination", "dst":
			dst = v
		case "readonly", "ro":
			if !hasValue {
				readonly = true
				break
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Mount{}, fail("key %q: %q is not a boolean: use %s=true or %s=false", key, v, key, key)
			}
			readonly = b
		case "bind-propagation":
			if !propagations[v] {
				return Mount{}, fail("key %q: unknown mode %q: use rprivate, private, rshared, shared, rslave or slave", key, v)
			}
			propagation = v
			bindKeys = append(bindKeys, key)
		case "tmpfs-size":
			n, err := ParseSize(v)
			if err != nil {
				return Mount{}, fail("key %q: %w", key, err)
			}
			tmpfsSize, tmpfsSizeSet = n, true
			tmpfsKeys = append(tmpfsKeys, key)
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return Mount{}, fail("key %q: %q is not an octal mode: use a mode such as 1777 or 0755", key, v)
			}
			tmpfsMode, modeSet = n, true
			tmpfsKeys = append(tmpfsKeys, key)
		default:
			return Mount{}, fail("unknown key %q: use type, source, target, readonly, bind-propagation, tmpfs-size or tmpfs-mode", key)
		}
	}

	switch typ {
	case "bind":
		if len(tmpfsKeys) > 0 {
			return Mount{}, fail("key %q is only for type=tmpfs", tmpfsKeys[0])
		}
		if src == "" {
			return Mount{}, fail("a bind mount needs source=HOST_PATH")
		}
	case "tmpfs":
		if len(bindKeys) > 0 {
			return Mount{}, fail("key %q is only for type=bind", bindKeys[0])
		}
		if srcSet {
			return Mount{}, fail("a tmpfs mount takes no source: drop source=")
		}
	case "", "volume":
		return Mount{}, fail("type=volume (the default) is not supported yet: use type=bind,source=HOST_PATH,target=PATH or type=tmpfs,target=PATH")
	default:
		return Mount{}, fail("unknown type %q: use type=bind or type=tmpfs", typ)
	}
	if dst == "" {
		return Mount{}, fail("missing target: add target=PATH")
	}
	if !path.IsAbs(dst) {
		return Mount{}, fail("target %q is not an absolute path: use a path such as /data", dst)
	}

	m := Mount{Type: typ, Source: src, Destination: dst, ReadOnly: readonly}
	if propagation != "" {
		m.Options = append(m.Options, propagation)
	}
	if tmpfsSizeSet && tmpfsSize > 0 {
		m.Options = append(m.Options, "size="+strconv.FormatInt(tmpfsSize, 10))
	}
	if modeSet {
		m.Options = append(m.Options, fmt.Sprintf("mode=%o", tmpfsMode))
	}
	return m, nil
}

// maxEnvLine bounds one env-file line (bufio.Scanner's default is 64 KiB).
const maxEnvLine = 1 << 20

// ParseEnvFile reads a Docker env file: KEY=VALUE lines (the value is taken
// literally: no quote stripping, no trimming), # comments, blank lines, and
// bare KEY lines taken from lookup (the host environment) and skipped when it
// has none. Leading whitespace is trimmed; a UTF-8 BOM is dropped; a trailing
// CR is dropped so files saved on Windows work. A key that is empty or holds
// whitespace, and a NUL byte anywhere (which runc would refuse only at
// start), are errors "NAME:LINE: ...", name being the file's name.
func ParseEnvFile(r io.Reader, name string, lookup func(string) (string, bool)) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxEnvLine)
	var env []string
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if n == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		b = bytes.TrimSuffix(b, []byte("\r"))
		if !utf8.Valid(b) {
			return nil, invalidf("%s:%d: invalid UTF-8: save the file as UTF-8", name, n)
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return nil, invalidf("%s:%d: a NUL byte, which no environment variable can hold: remove it", name, n)
		}
		line := strings.TrimLeftFunc(string(b), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, hasValue := strings.Cut(line, "=")
		if key == "" {
			return nil, invalidf("%s:%d: no variable name before \"=\": use KEY=VALUE", name, n)
		}
		if strings.IndexFunc(key, unicode.IsSpace) >= 0 {
			return nil, invalidf("%s:%d: variable %q contains whitespace: use KEY=VALUE with no spaces around the key", name, n, key)
		}
		if hasValue {
			env = append(env, key+"="+value)
			continue
		}
		if lookup == nil {
			continue
		}
		if v, ok := lookup(key); ok {
			env = append(env, key+"="+v)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, invalidf("%s: a line is longer than %d bytes: shorten it", name, maxEnvLine)
		}
		return nil, fmt.Errorf("reading env file %q: %w", name, err)
	}
	return env, nil
}
