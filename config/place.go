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
	switch e := err.(type) {
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

// ---- paths

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
			path = path[end+1:]
			if strings.HasPrefix(path, ".") {
				path = path[1:]
			}
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
		path = path[end:]
		if strings.HasPrefix(path, ".") {
			path = path[1:]
		}
	}
	return steps, len(steps) > 0
}

// ---- locating a field

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

// ---- checking the tree against the File's fields

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
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(yamlUnmarshalerType):
		c.decode(n, at, t, path)
	case pt.Implements(textUnmarshalerType):
		if n.Kind != yaml.ScalarNode {
			c.r.fail(at, n, path, wrongKind(t, n, path), nil)
			return
		}
		c.decode(n, at, t, path)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.r.fail(at, n, path, wrongKind(t, n, path), nil)
			return
		}
		c.mapping(n, t, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		if n.Kind != yaml.SequenceNode {
			c.r.fail(at, n, path, wrongKind(t, n, path), nil)
			return
		}
		for i, e := range n.Content {
			c.value(e, e, t.Elem(), index(path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.r.fail(at, n, path, wrongKind(t, n, path), nil)
			return
		}
		c.decode(n, at, t, path)
	case t.Kind() == reflect.Interface:
		c.decode(n, at, t, path)
	default:
		if n.Kind != yaml.ScalarNode {
			c.r.fail(at, n, path, wrongKind(t, n, path), nil)
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
			c.r.at(k, path, "a field name must be text, got "+describe(name, false), nil)
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
			c.r.fail(s, s, join(path, "<<"), "want a mapping to merge, got "+describe(m, false), nil)
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
		c.r.fail(at, n, path, wrongKind(t, n, path), err)
	case errors.As(err, &te) && n.Kind == yaml.ScalarNode:
		c.r.fail(at, n, path, wrongKind(t, n, path), err)
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		c.r.fail(at, n, path, fmt.Sprintf("got %s: %s", describe(n, isSecret(path)), err), err)
	case errors.As(err, &te):
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = typeErrorLine.ReplaceAllString(m, "")
		}
		c.r.fail(at, n, path, oneLine(strings.Join(msgs, "; ")), err)
	default:
		c.r.fail(at, n, path, oneLine(strings.TrimPrefix(err.Error(), "yaml: ")), err)
	}
}

// typeErrorLine is the line a message of the decoder starts with; the
// error is placed at its node instead.
var typeErrorLine = regexp.MustCompile(`^line \d+: `)

// wrongKind says what the field at path takes, and what it got.
func wrongKind(t reflect.Type, n *yaml.Node, path string) string {
	return "want " + kindOf(t) + ", got " + describe(n, isSecret(path))
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

// describe names what node n holds; the value itself unless secret.
func describe(n *yaml.Node, secret bool) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of fields"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if secret {
		return "a value (not shown: a secret)"
	}
	v := n.Value
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

// ---- secrets and ${VAR}

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
