// Package fielderr is how a library package says which field of its typed
// Config is invalid. Only a command knows where a field's value came from
// (an environment variable, a flag, a file), so only the command names that
// source: it maps Field, and the fields a Problem mentions, to its own names.
package fielderr

import (
	"errors"
	"fmt"
	"regexp"
)

// Error is an invalid configuration field.
type Error struct {
	// Field is the invalid field as named in its Config struct; a nested
	// struct's fields are dotted ("TLS.CAFile").
	Field string
	// Problem says what is wrong. Other fields it mentions are written in
	// braces ("{SessionTimeout}") so that a command can rename them too.
	Problem string
	// Err is the cause, if any (e.g. the file a path field names cannot be
	// read); Problem already includes its message.
	Err error
}

// Wrap returns an *Error for field whose problem is err.
func Wrap(field string, err error) *Error {
	return &Error{Field: field, Problem: err.Error(), Err: err}
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error for field; format and args make the Problem.
func New(field, format string, args ...any) *Error {
	return &Error{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Error reads "Field problem", with the braces of mentioned fields removed.
func (e *Error) Error() string {
	return e.Rename(func(f string) string { return f })
}

var mention = regexp.MustCompile(`\{([A-Za-z][A-Za-z0-9.]*)\}`)

// Rename renders the error with every field name (Field and the mentioned
// ones) replaced by name(field).
func (e *Error) Rename(name func(field string) string) string {
	problem := mention.ReplaceAllStringFunc(e.Problem, func(m string) string { return name(m[1 : len(m)-1]) })
	return name(e.Field) + " " + problem
}

// Nest prefixes the fields of err, if it is an *Error, with parent: a
// Config validating a nested struct reports "TLS.CAFile", not "CAFile".
func Nest(parent string, err error) error {
	var fe *Error
	if !errors.As(err, &fe) {
		return err
	}
	nested := &Error{Field: parent + "." + fe.Field, Err: fe.Err}
	nested.Problem = mention.ReplaceAllString(fe.Problem, "{"+parent+".$1}")
	return nested
}
