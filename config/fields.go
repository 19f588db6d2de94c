package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard"
)

// This file checks a configuration file's node tree against the File's
// fields before it is decoded, so that each error is placed at its line.

// fieldSet is the fields of one section: their names and types, and
// whether any name is accepted (an inlined map).
type fieldSet struct {
	types map[string]reflect.Type
	open  bool
}

// fieldsOf returns the YAML fields of struct type t, inlined ones
// flattened, named as go.yaml.in/yaml/v3 names them.
func fieldsOf(t reflect.Type) fieldSet {
	fs := fieldSet{types: map[string]reflect.Type{}}
	fs.collect(t)
	return fs
}

func (fs *fieldSet) collect(t reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.PkgPath != "" && !sf.Anonymous {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if hasOpt(opts, "inline") {
			ft := sf.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				fs.collect(ft)
			case reflect.Map:
				fs.open = true
			}
			continue
		}
		if sf.PkgPath != "" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fs.types[name] = sf.Type
	}
}

func hasOpt(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// names returns the field names, sorted.
func (fs fieldSet) names() []string {
	names := make([]string, 0, len(fs.types))
	for n := range fs.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var (
	durationType        = reflect.TypeOf(replayguard.Duration(0))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	yamlUnmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// checker walks a node tree along a Go type and reports, each at its
// line, what the decoder would refuse or take wrong: unknown fields (with
// the nearest known name), fields set twice, values of the wrong kind.
// Each wrong value is emptied, so the tree then decodes.
type checker struct {
	r *report
	// done are the aliased nodes already checked as a type: an alias is
	// checked once, however often it is used.
	done map[aliasUse]bool
}

type aliasUse struct {
	n *yaml.Node
	t reflect.Type
}

// value checks the value n of the field at path, of type t; errors are
// placed at node at (the field's key, or n).
func (c *checker) value(n, at *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		u := aliasUse{n.Alias, t}
		if c.done[u] {
			return
		}
		c.done[u] = true
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := reflect.Zero(t).Interface().(interface{ checkedAs() reflect.Type }); ok {
		// A route's section: kept as written, checked as its type.
		t = s.checkedAs()
	}
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(yamlUnmarshalerType):
		c.decode(n, at, t, path)
	case pt.Implements(textUnmarshalerType):
		if n.Kind != yaml.ScalarNode {
			c.r.fail(at, n, path, c.wrongKind(t, n, path), nil)
			return
		}
		c.decode(n, at, t, path)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.r.fail(at, n, path, c.wrongKind(t, n, path), nil)
			return
		}
		c.mapping(n, t, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		if n.Kind != yaml.SequenceNode {
			c.r.fail(at, n, path, c.wrongKind(t, n, path), nil)
			return
		}
		for i, e := range n.Content {
			c.value(e, e, t.Elem(), index(path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.r.fail(at, n, path, c.wrongKind(t, n, path), nil)
			return
		}
		c.decode(n, at, t, path)
	case t.Kind() == reflect.Interface:
		c.decode(n, at, t, path)
	default:
		if n.Kind != yaml.ScalarNode {
			c.r.fail(at, n, path, c.wrongKind(t, n, path), nil)
			return
		}
		c.decode(n, at, t, path)
	}
}

// mapping checks the fields of section m against those of struct t.
func (c *checker) mapping(m *yaml.Node, t reflect.Type, path string) {
	fs := fieldsOf(t)
	seen := map[string]int{}
	kept := m.Content[:0:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMerge(k) {
			c.merge(v, t, path)
			kept = append(kept, k, v)
			continue
		}
		name := resolve(k)
		if name.Kind != yaml.ScalarNode {
			c.r.at(k, path, "a field name must be text, got "+c.describe(name, path), nil)
			continue
		}
		p := join(path, name.Value)
		if line, dup := seen[name.Value]; dup {
			c.r.at(k, p, fmt.Sprintf("set twice (first at line %d)", line), nil)
			continue
		}
		seen[name.Value] = k.Line
		ft, ok := fs.types[name.Value]
		if !ok && !fs.open {
			msg := "unknown field"
			if s := nearest(name.Value, fs.names()); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			c.r.at(k, p, msg, nil)
			continue
		}
		if ok {
			c.value(v, place(k, v), ft, p)
		}
		kept = append(kept, k, v)
	}
	m.Content = kept
}

// merge checks what a "<<" key merges into a section of struct t: a
// mapping, or a list of them.
func (c *checker) merge(v *yaml.Node, t reflect.Type, path string) {
	src := resolve(v)
	sources := []*yaml.Node{v}
	if src.Kind == yaml.SequenceNode {
		sources = src.Content
	}
	for _, s := range sources {
		m := resolve(s)
		if m.Kind != yaml.MappingNode {
			c.r.fail(s, s, join(path, "<<"), "want a mapping to merge, got "+c.describe(m, path), nil)
			continue
		}
		u := aliasUse{m, t}
		if s.Kind == yaml.AliasNode {
			if c.done[u] {
				continue
			}
			c.done[u] = true
		}
		c.mapping(m, t, path)
	}
}

// decode decodes n as a t, reporting at node at what the decoder refuses.
func (c *checker) decode(n, at *yaml.Node, t reflect.Type, path string) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	switch {
	case t == durationType:
		c.r.fail(at, n, path, c.wrongKind(t, n, path), err)
	case errors.As(err, &te) && n.Kind == yaml.ScalarNode:
		c.r.fail(at, n, path, c.wrongKind(t, n, path), err)
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		c.r.fail(at, n, path, fmt.Sprintf("got %s: %s", c.describe(n, path), err), err)
	case errors.As(err, &te):
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			// The decoder quotes the start of a value: never a
			// secret's, whatever the field.
			msgs[i] = typeErrorValue.ReplaceAllString(typeErrorLine.ReplaceAllString(m, ""), "")
		}
		c.r.fail(at, n, path, oneLine(strings.Join(msgs, "; ")), err)
	default:
		c.r.fail(at, n, path, oneLine(strings.TrimPrefix(err.Error(), "yaml: ")), err)
	}
}

// typeErrorLine is the line a message of the decoder starts with; the
// error is placed at its node instead.
var typeErrorLine = regexp.MustCompile(`^line \d+: `)

// typeErrorValue is the start of a value the decoder quotes.
var typeErrorValue = regexp.MustCompile(" `[^`]*`")

// wrongKind says what the field at path takes, and what it got.
func (c *checker) wrongKind(t reflect.Type, n *yaml.Node, path string) string {
	return "want " + kindOf(t) + ", got " + c.describe(n, path)
}

// kindOf names what a field of type t takes.
func kindOf(t reflect.Type) string {
	if t == durationType {
		return `a duration such as "300ms", "5m" or "7d"`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "text"
	case reflect.Struct:
		return "a section of fields (name: value)"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a mapping"
	}
	return "a value"
}

// describe names what node n, the value of the field at path, holds: the
// value itself, quoted and cut to a line's length, unless the field holds
// a secret; a secret of another field in it is replaced before it is cut.
func (c *checker) describe(n *yaml.Node, path string) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of fields"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if isSecret(path) {
		return "a value (not shown: a secret)"
	}
	v := c.r.secrets.scrub(n.Value)
	if v == redacted {
		return v
	}
	if len(v) > 64 {
		v = v[:61] + "..."
	}
	return strconv.Quote(v)
}

// nearest returns the name among names closest to s, when close enough to
// be a misspelling of it; "" otherwise.
func nearest(s string, names []string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", -1
	for _, n := range names {
		if d := distance(strings.ToLower(s), n); bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	limit := len(s) / 3
	if limit < 2 {
		limit = 2
	}
	if bestD < 0 || bestD > limit || bestD >= len(s) {
		return ""
	}
	return best
}

// distance is the edit distance between a and b: insertions, deletions,
// substitutions and transpositions of neighbours each count one.
func distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
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
			d := prev[j] + 1
			if v := cur[j-1] + 1; v < d {
				d = v
			}
			if v := prev[j-1] + cost; v < d {
				d = v
			}
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				if v := prev2[j-2] + 1; v < d {
					d = v
				}
			}
			cur[j] = d
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
