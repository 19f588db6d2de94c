package config

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard"
)

// SchemeNone is the scheme of a route that proxies without verifying or
// storing anything: health checks of the upstream, CORS preflight.
const SchemeNone = "none"

// Route is one entry of routes: the requests it matches, where they go,
// and the fields in which it differs from the top level. Its sections
// (hmac, jwt, rfc9421, timestamp, nonce, idempotency) merge field by field
// over the top level's; lists replace. keys never merge: a route lists its
// own or uses the top level's, and must list its own when its scheme
// differs from the top level's. A route cannot name a store: every route
// shares the top level's stores, each named route in a scope of its own.
type Route struct {
	// Name names the route in logs and metrics, and its scope in the
	// stores: renaming a route empties its scope.
	Name string `yaml:"name"`
	// Match selects the requests of the route.
	Match RouteMatch `yaml:"match"`
	// Upstream is where the route's accepted requests go. Default the
	// top level's.
	Upstream string `yaml:"upstream"`
	// Scheme is the route's signature scheme, or "none". Default the top
	// level's.
	Scheme string `yaml:"scheme"`
	// Keys are the route's keys. Default the top level's, when the
	// scheme is the top level's.
	Keys []replayguard.KeyConfig `yaml:"keys"`
	// MaxBodyBytes bounds the route's request bodies. Default the top
	// level's.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`

	// The sections, as written; merged over the top level's by Parse.
	HMAC        Section[replayguard.HMACConfig]        `yaml:"hmac"`
	JWT         Section[replayguard.JWTConfig]         `yaml:"jwt"`
	RFC9421     Section[replayguard.RFC9421Config]     `yaml:"rfc9421"`
	Timestamp   Section[replayguard.TimestampConfig]   `yaml:"timestamp"`
	Nonce       Section[replayguard.NonceConfig]       `yaml:"nonce"`
	Idempotency Section[replayguard.IdempotencyConfig] `yaml:"idempotency"`

	// Config is the route's effective configuration, defaults filled
	// in: set by Parse.
	Config replayguard.Config `yaml:"-"`
}

// Section is a route's section as written: checked as a T when the file
// is read, then merged field by field over the top level's T.
type Section[T any] struct{ Node yaml.Node }

// UnmarshalYAML keeps the section's node.
func (s *Section[T]) UnmarshalYAML(n *yaml.Node) error {
	s.Node = *n
	return nil
}

// MarshalYAML writes the section as it was written.
func (s Section[T]) MarshalYAML() (any, error) {
	if s.Node.Kind == 0 {
		return nil, nil
	}
	return &s.Node, nil
}

// checkedAs is the type the file's checker holds the section to.
func (Section[T]) checkedAs() reflect.Type { return reflect.TypeFor[T]() }

// RouteMatch selects requests; an empty field matches every request.
type RouteMatch struct {
	// Host matches the request's host, case-insensitively, its port
	// ignored.
	Host string `yaml:"host"`
	// PathPrefix matches whole path segments of the request-target as
	// sent: /v1 and /v1/ match /v1 and /v1/charges, not /v10.
	PathPrefix string `yaml:"path_prefix"`
}

// storeFields are the section fields a route cannot set: every route
// shares the top level's stores.
var storeFields = map[string]bool{
	"nonce.store": true, "nonce.max_entries": true, "nonce.key_share": true,
	"idempotency.store": true, "idempotency.memory_max_bytes": true, "idempotency.key_share": true,
}

// resolveRoutes checks the routes and sets each one's Config: the top
// level's (c, defaults filled in) with the route's fields over it.
func (f *File) resolveRoutes() error {
	var errs []error
	names := map[string]bool{}
	for i := range f.Routes {
		r := &f.Routes[i]
		at := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			errs = append(errs, fieldErr(at+".name", "required: it names the route in logs, metrics and the stores"))
		case !validRouteName(r.Name):
			errs = append(errs, fieldErr(at+".name", "%q: want letters, digits, '.', '_' or '-'", r.Name))
		case names[r.Name]:
			errs = append(errs, fieldErr(at+".name", "%q names another route too", r.Name))
		}
		names[r.Name] = true
		errs = append(errs, r.Match.validate(at+".match"))
		if r.Upstream == "" && f.AuthListen == "" {
			r.Upstream = f.Upstream
			if r.Upstream == "" {
				errs = append(errs, fieldErr(at+".upstream", "required: no top-level upstream to inherit"))
			}
		} else if r.Upstream == "" {
			r.Upstream = f.Upstream
		}
		if r.Upstream != "" {
			errs = append(errs, validUpstream(at+".upstream", r.Upstream))
		}
		c, err := r.merge(f.Config, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Config = c
		if c.Scheme == SchemeNone {
			continue
		}
		if err := c.Validate(); err != nil {
			errs = append(errs, prefixFields(at, err))
		}
	}
	return errors.Join(errs...)
}

// merge returns top with r's fields over it, defaults filled in.
func (r *Route) merge(top replayguard.Config, at string) (replayguard.Config, error) {
	c := top
	// The pointers are top's own: decoding into them would change it.
	c.Idempotency.Enabled = clonePtr(top.Idempotency.Enabled)
	c.Idempotency.Required = clonePtr(top.Idempotency.Required)
	if r.Scheme != "" {
		c.Scheme = r.Scheme
	}
	switch {
	case r.Keys != nil:
		c.Keys = r.Keys
	case c.Scheme != top.Scheme && c.Scheme != SchemeNone:
		return c, fieldErr(at+".keys", "required: the route's scheme %q differs from the top level's %q, whose keys it must not accept", c.Scheme, top.Scheme)
	}
	if r.MaxBodyBytes != 0 {
		c.MaxBodyBytes = r.MaxBodyBytes
	}
	var errs []error
	for _, s := range []struct {
		name string
		node *yaml.Node
		into any
	}{
		{"hmac", &r.HMAC.Node, &c.HMAC}, {"jwt", &r.JWT.Node, &c.JWT}, {"rfc9421", &r.RFC9421.Node, &c.RFC9421},
		{"timestamp", &r.Timestamp.Node, &c.Timestamp}, {"nonce", &r.Nonce.Node, &c.Nonce}, {"idempotency", &r.Idempotency.Node, &c.Idempotency},
	} {
		if s.node.Kind == 0 {
			continue
		}
		if err := checkSection(at+"."+s.name, s.name, s.node, reflect.TypeOf(s.into).Elem()); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.node.Decode(s.into); err != nil {
			errs = append(errs, fieldErr(at+"."+s.name, "%v", err))
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c.WithDefaults(), nil
}

// checkSection refuses, in a route's section node, a field the section
// does not have and a store field.
func checkSection(at, section string, n *yaml.Node, t reflect.Type) error {
	if n.Kind != yaml.MappingNode {
		return fieldErr(at, "want a mapping (line %d)", n.Line)
	}
	known := map[string]bool{}
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			known[tag] = true
		}
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case storeFields[section+"."+k.Value]:
			errs = append(errs, fieldErr(at+"."+k.Value, "a route cannot set a store's settings: every route shares the top level's stores (line %d)", k.Line))
		case !known[k.Value]:
			errs = append(errs, fieldErr(at+"."+k.Value, "unknown field (line %d)", k.Line))
		}
	}
	return errors.Join(errs...)
}

func (m RouteMatch) validate(at string) error {
	var errs []error
	if m.PathPrefix != "" {
		if m.PathPrefix[0] != '/' {
			errs = append(errs, fieldErr(at+".path_prefix", "%q: want a path starting with /", m.PathPrefix))
		} else if AmbiguousPath(m.PathPrefix) {
			errs = append(errs, fieldErr(at+".path_prefix", "%q: no dot-segments, %%2F or %%2E", m.PathPrefix))
		}
	}
	if strings.ContainsAny(m.Host, "/ ") {
		errs = append(errs, fieldErr(at+".host", "%q: want a host name", m.Host))
	}
	return errors.Join(errs...)
}

// AmbiguousPath reports a path that servers read in more than one way: a
// dot-segment ("." or ".."), or an encoded slash or dot (%2F, %2E), which
// some upstreams decode before routing. Routes refuse such a target
// rather than match it.
func AmbiguousPath(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	lower := strings.ToLower(p)
	return strings.Contains(lower, "%2f") || strings.Contains(lower, "%2e")
}

func validRouteName(s string) bool {
	for _, c := range s {
		switch {
		case c == '.', c == '_', c == '-', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return s != ""
}

func validUpstream(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(field, "want an http:// or https:// URL, got %q", s)
	}
	return nil
}

// prefixFields puts at before the field of every FieldError in err.
func prefixFields(at string, err error) error {
	var errs []error
	for _, e := range unjoin(err) {
		var fe *replayguard.FieldError
		if errors.As(e, &fe) {
			errs = append(errs, &replayguard.FieldError{Field: at + "." + fe.Field, Err: fe.Err})
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", at, e))
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// StoreConfig is the configuration the stores are opened with: the top
// level's, with every route's key entries (for the shares of bounded
// stores: each route's key entry is an entry of its own), and idempotency
// on when any route turns it on.
func (f File) StoreConfig() replayguard.Config {
	c := f.Config
	if len(f.Routes) == 0 {
		return c
	}
	c.Keys = nil
	enabled := false
	for _, r := range f.Routes {
		if r.Config.Scheme == SchemeNone {
			continue
		}
		c.Keys = append(c.Keys, r.Config.Keys...)
		enabled = enabled || *r.Config.Idempotency.Enabled
	}
	c.Idempotency.Enabled = &enabled
	return c
}
