package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard"
)

// report gathers the errors of one file, placed in its node tree.
type report struct {
	file    string
	errs    Errors
	secrets secrets
	// failed are the paths whose value could not be read (see repeats).
	failed []string
}

// at records an error about the field at path, held by node n (nil: no
// line holds it).
func (r *report) at(n *yaml.Node, path, msg string, cause error) {
	e := &Error{File: r.file, Field: path, Message: msg, Err: cause}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	r.errs = append(r.errs, e)
}

// fail records, at node at, that the value n at path cannot be read, and
// empties n so that the rest of the file can still be decoded and
// validated.
func (r *report) fail(at, n *yaml.Node, path, msg string, cause error) {
	r.at(at, path, msg, cause)
	r.failed = append(r.failed, path)
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

// repeats reports whether an error about path only follows from a value
// that could not be read: one about that field, a field inside it, or a
// section holding it (a key whose one secret is unreadable has no secret).
func (r *report) repeats(path string) bool {
	within := func(inner, outer string) bool {
		return inner == outer || strings.HasPrefix(inner, outer+".") || strings.HasPrefix(inner, outer+"[")
	}
	for _, p := range r.failed {
		if p == "" || within(path, p) || within(p, path) {
			return true
		}
	}
	return false
}

// result returns the errors, sorted and with every secret scrubbed; nil
// when there are none.
func (r *report) result() error {
	if len(r.errs) == 0 {
		return nil
	}
	for _, e := range r.errs {
		e.Message = r.secrets.scrub(e.Message)
	}
	r.errs.sortByLine()
	return r.errs
}

// validation places the errors of File.Validate (or of building what the
// file describes) in the tree below doc: each error naming a field is put
// at the line of that field, or, for a field the file leaves out, at its
// nearest enclosing section.
func (r *report) validation(doc *yaml.Node, err error) {
	for _, e := range flatten(err) {
		var fe *replayguard.FieldError
		if !errors.As(e, &fe) {
			r.at(nil, "", oneLine(e.Error()), e)
			continue
		}
		if r.repeats(fe.Field) {
			continue
		}
		pe := &Error{File: r.file, Field: fe.Field, Message: oneLine(fe.Err.Error()), Err: e}
		n, section, found := locate(doc, fe.Field)
		pe.Unset, pe.Section = !found, section
		if n != nil {
			pe.Line, pe.Column = n.Line, n.Column
		}
		r.errs = append(r.errs, pe)
	}
}

// flatten returns the errors err joins, each on its own, also where a
// wrapping error holds them (the fields they name say where they are).
func flatten(err error) []error {
	switch e := err.(type) { //nolint:errorlint // walks the chain itself, to split the joins in it
	case nil:
		return nil
	case interface{ Unwrap() []error }:
		var out []error
		for _, c := range e.Unwrap() {
			out = append(out, flatten(c)...)
		}
		return out
	case *replayguard.FieldError:
		return []error{err}
	case interface{ Unwrap() error }:
		if inner := flatten(e.Unwrap()); len(inner) > 1 {
			return inner
		}
	}
	return []error{err}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// yamlLine reads the line of a syntax error of the YAML parser.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a syntax error of the YAML parser, at its line.
func (r *report) syntax(err error) {
	msg := err.Error()
	e := &Error{File: r.file, Message: strings.TrimPrefix(msg, "yaml: "), Err: err}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Message = m[2]
	}
	r.errs = append(r.errs, e)
}

// join appends the field name to path, quoted when it is not a plain name
// (so that a path is always one line and reads back the same).
func join(path, name string) string {
	if !plainName(name) {
		name = strconv.Quote(name)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && c != '-' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// step is one step of a field path: a field name, or an index in a list.
type step struct {
	name  string
	index int
}

// parsePath splits a field path such as "keys[1].secrets[0]" into its
// steps; false when it is not one.
func parsePath(path string) ([]step, bool) {
	var steps []step
	for path != "" {
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return nil, false
			}
			i, err := strconv.Atoi(path[1:end])
			if err != nil || i < 0 {
				return nil, false
			}
			steps = append(steps, step{index: i})
			path = strings.TrimPrefix(path[end+1:], ".")
			continue
		}
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		if end == 0 {
			return nil, false
		}
		steps = append(steps, step{name: path[:end]})
		path = strings.TrimPrefix(path[end:], ".")
	}
	return steps, len(steps) > 0
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isMerge reports a "<<" merge key.
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.Tag == "!!merge" || k.Tag == "tag:yaml.org,2002:merge")
}

// lookup finds the field name in mapping m: its own keys first, then
// those it merges.
func lookup(m *yaml.Node, name string) (key, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); !isMerge(m.Content[i]) && k.Kind == yaml.ScalarNode && k.Value == name {
			return m.Content[i], m.Content[i+1]
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMerge(m.Content[i]) {
			continue
		}
		merged := resolve(m.Content[i+1])
		sources := []*yaml.Node{merged}
		if merged.Kind == yaml.SequenceNode {
			sources = merged.Content
		}
		for _, s := range sources {
			if s = resolve(s); s.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(s.Content); j += 2 {
					if k := resolve(s.Content[j]); k.Kind == yaml.ScalarNode && k.Value == name {
						return s.Content[j], s.Content[j+1]
					}
				}
			}
		}
	}
	return nil, nil
}

// place returns the node whose position names a field: its value when
// that is a scalar or written inline ([a, b], {a: b}), else its key.
func place(key, value *yaml.Node) *yaml.Node {
	v := resolve(value)
	if key == nil || v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0 {
		return value
	}
	return key
}

// locate finds the field at path in the tree below doc. found reports
// whether the file has it; when it does not, n is the nearest enclosing
// section the file has, section that section's path (nil and "" when the
// file has none of it).
func locate(doc *yaml.Node, path string) (n *yaml.Node, section string, found bool) {
	steps, ok := parsePath(path)
	if !ok || doc == nil || len(doc.Content) == 0 {
		return nil, "", false
	}
	cur := doc.Content[0]
	at := ""
	for _, s := range steps {
		c := resolve(cur)
		var key, value *yaml.Node
		next := at
		switch {
		case s.name != "" && c.Kind == yaml.MappingNode:
			key, value = lookup(c, s.name)
			next = join(at, s.name)
		case s.name == "" && c.Kind == yaml.SequenceNode && s.index < len(c.Content):
			value = c.Content[s.index]
			next = index(at, s.index)
		}
		if value == nil {
			return n, at, false
		}
		n, cur, at = place(key, value), value, next
	}
	return n, "", true
}

// collectSecrets records the value of every field below n that holds a
// secret (isSecret), following aliases only where they stand for one.
func collectSecrets(n *yaml.Node, path string, s *secrets) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			collectSecrets(c, path, s)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if isMerge(n.Content[i]) {
				collectSecrets(resolve(n.Content[i+1]), path, s)
				continue
			}
			collectSecrets(n.Content[i+1], join(path, k.Value), s)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			collectSecrets(c, index(path, i), s)
		}
	case yaml.ScalarNode:
		if isSecret(path) {
			s.add(n.Value)
		}
	case yaml.AliasNode:
		if isSecret(path) && n.Alias != nil {
			allScalars(n.Alias, s, map[*yaml.Node]bool{})
		}
	}
}

// allScalars records every scalar below n as a secret.
func allScalars(n *yaml.Node, s *secrets, seen map[*yaml.Node]bool) {
	if seen[n] {
		return
	}
	seen[n] = true
	if n.Kind == yaml.ScalarNode {
		s.add(n.Value)
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		allScalars(n.Alias, s, seen)
	}
	for _, c := range n.Content {
		allScalars(c, s, seen)
	}
}

// expand expands ${VAR} in every scalar value below n (never in field
// names), reporting each reference it cannot resolve at its line.
func (r *report) expand(n *yaml.Node, path string, lookup func(string) (string, bool)) {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := Expand(n.Value, lookup)
		if err != nil {
			r.fail(n, n, path, err.Error(), err)
			return
		}
		if v != n.Value {
			// The expanded text is re-resolved as a plain scalar, so
			// "db: ${DB}" can become an int; string fields take the text
			// as it is whatever it resolves to. The one exception: text
			// that YAML reads as null ("null", "~", "") would empty a
			// string field, so it is tagged a string and stays that
			// literal text.
			n.Value = v
			n.Tag = ""
			n.Style = 0
			if resolvesToNull(v) {
				n.Tag = "!!str"
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := path
			if !isMerge(n.Content[i]) {
				p = join(path, resolve(n.Content[i]).Value)
			}
			r.expand(n.Content[i+1], p, lookup)
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			r.expand(c, path, lookup)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			r.expand(c, index(path, i), lookup)
		}
	}
}
