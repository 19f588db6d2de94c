package config

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Error is one error of a configuration file, placed at the line that
// holds it. Its message never holds the value of a secret: key secrets,
// the Redis password, the PostgreSQL DSN.
type Error struct {
	// File is the configuration file's path; empty from Parse.
	File string
	// Line and Column place the error in the file, from 1; 0 when no
	// line holds it.
	Line, Column int
	// Field is the field's path, such as "timestamp.tolerance" or
	// "keys[1].secrets[0]"; empty when the error is about no one field
	// (the file is not YAML).
	Field string
	// Unset reports a field the file leaves out (it has its default).
	// Line, when set, is then that of Section, the nearest enclosing
	// section the file has.
	Unset   bool
	Section string
	// Message says what is wrong.
	Message string
	// Err is the cause, for errors.Is and errors.As (a
	// *replayguard.FieldError for an error of validation). Its own text
	// may hold what Message leaves out.
	Err error
}

// Error formats e as "file:line:column: field: message", the form
// editors and terminals link to.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "":
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
	case e.Line > 0:
		fmt.Fprintf(&b, "config: line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	default:
		b.WriteString("config")
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		switch {
		case e.Unset && e.Section != "":
			fmt.Fprintf(&b, " (not set in %s)", e.Section)
		case e.Unset:
			b.WriteString(" (not set)")
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors are every error found in one configuration file, sorted by line;
// Error prints each on its own line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each error, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// sortByLine orders es by line and column, the errors no line holds
// first, keeping the order of errors on one place.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}

// secretField matches the paths of fields that hold secrets: everything
// under a key's secrets, a JWK's private and symmetric members, the Redis
// password and the PostgreSQL DSN.
var secretField = regexp.MustCompile(`(^|\.)keys\[\d+\]\.(secrets|jwk\.(d|p|q|dp|dq|qi|k|oth))([.\[]|$)|^redis\.password$|^postgres\.dsn$`)

// isSecret reports whether the field at path holds a secret.
func isSecret(path string) bool { return secretField.MatchString(path) }

// redacted stands in for a secret in a message.
const redacted = "<redacted>"

// secrets are the secret values of one file, to be kept out of messages.
type secrets []string

// add records the secret value v, and the password a DSN holds.
func (s *secrets) add(v string) {
	if v == "" {
		return
	}
	*s = append(*s, v)
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			*s = append(*s, p)
		}
	}
	for _, m := range dsnPassword.FindAllStringSubmatch(v, -1) {
		p := strings.Trim(m[2], "'")
		if p != "" {
			*s = append(*s, p, m[2])
		}
	}
}

// dsnPassword finds the password of a key=value PostgreSQL DSN.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// scrub returns msg with every secret value replaced: quoted wherever it
// appears, bare when it is long enough not to stand for ordinary words.
func (s secrets) scrub(msg string) string {
	// Longest first, so a secret holding another is replaced whole.
	sorted := append([]string(nil), s...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, v := range sorted {
		msg = strings.ReplaceAll(msg, strconv.Quote(v), redacted)
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, redacted)
		}
	}
	return msg
}
