package main

import (
	"fmt"
	"strings"
)

// resolveEnvFlag reads one -e value as Docker does: KEY=VALUE sets KEY to
// VALUE, and a bare KEY takes its value from lookup (the host's
// environment); ok is false when lookup has no KEY, which then sets
// nothing. A KEY that is empty or holds a blank is an error.
func resolveEnvFlag(kv string, lookup func(string) (string, bool)) (key, value string, ok bool, err error) {
	key, value, hasValue := strings.Cut(kv, "=")
	if key == "" || strings.ContainsAny(key, " \t") {
		return "", "", false, fmt.Errorf("invalid -e %q: use KEY=VALUE or KEY", kv)
	}
	if !hasValue {
		value, ok = lookup(key)
		return key, value, ok, nil
	}
	return key, value, true, nil
}
