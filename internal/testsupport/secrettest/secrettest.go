// Package secrettest holds the password that credential tests plant in a
// config and the checks that it never comes out of one: formatted, encoded,
// logged or in an error.
package secrettest

import (
	"fmt"
	"strings"
	"testing"
)

// Password is distinctive so that a leak is unmistakable in any output.
const Password = "hunter2-Zq8vX3-not-for-output"

// Leaks reports whether out holds Password, plainly or hex-encoded (%x or
// %X of a string that was not redacted).
func Leaks(out string) bool {
	return strings.Contains(out, Password) || strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", Password))
}

// Formatted returns v formatted with every fmt verb a caller plausibly
// formats a config with, by verb.
func Formatted(v any) map[string]string {
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	return out
}

// CheckFormatted fails t for each of values, by name, that one of the verbs
// of Formatted reveals Password in.
func CheckFormatted(t testing.TB, values map[string]any) {
	t.Helper()
	for name, v := range values {
		for verb, out := range Formatted(v) {
			if Leaks(out) {
				t.Errorf("Sprintf(%s, %s) reveals the password: %s", verb, name, out)
			}
		}
	}
}
