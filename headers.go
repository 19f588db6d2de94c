package replayguard

import (
	"net/http"
	"strings"

	"github.com/replayguard/replayguard/internal/hop"

	"github.com/replayguard/replayguard/signature"
)

// Headers the gateway sets on the request it passes on. Whatever a client
// sent under these names, or under any name that could be read as one of
// the gateway's, is removed first.
const (
	// HeaderKeyID carries the verified identity: the id of the configured
	// key entry whose key verified the request.
	HeaderKeyID = "X-Replayguard-Key-Id"
	// HeaderSubject carries the subject within that key (a JWT's sub),
	// when the request has one.
	HeaderSubject = "X-Replayguard-Subject"
)

// gatewayPrefix is what every gateway header name starts with, lowercase.
const gatewayPrefix = "x-replayguard-"

// gatewayFold maps A-Z to a-z and '_' to '-'.
var gatewayFold = strings.NewReplacer(
	"A", "a", "B", "b", "C", "c", "D", "d", "E", "e", "F", "f", "G", "g", "H", "h", "I", "i",
	"J", "j", "K", "k", "L", "l", "M", "m", "N", "n", "O", "o", "P", "p", "Q", "q", "R", "r",
	"S", "s", "T", "t", "U", "u", "V", "v", "W", "w", "X", "x", "Y", "y", "Z", "z", "_", "-")

// IsGatewayHeader reports whether a header named name could be read as one
// the gateway sets: after case-folding, and reading '_' as '-' (as CGI,
// WSGI and PHP upstreams do), it starts with "X-Replayguard-".
func IsGatewayHeader(name string) bool {
	// The standard library folds the prefix: under the Yaegi interpreter
	// (the Traefik plugin) a loop over its bytes costs a microsecond each.
	return len(name) >= len(gatewayPrefix) && name[0]|0x20 == 'x' &&
		gatewayFold.Replace(name[:len(gatewayPrefix)]) == gatewayPrefix
}

// hasGatewayHeader reports whether h holds a header IsGatewayHeader names.
func hasGatewayHeader(h http.Header) bool {
	for name := range h {
		// Most names are shorter than the prefix: no call for them.
		if len(name) >= len(gatewayPrefix) && IsGatewayHeader(name) {
			return true
		}
	}
	return false
}

// StripGatewayHeaders deletes from h every header IsGatewayHeader names.
func StripGatewayHeaders(h http.Header) {
	for name := range h {
		if len(name) >= len(gatewayPrefix) && IsGatewayHeader(name) {
			delete(h, name)
		}
	}
}

// SetIdentityHeaders strips every gateway header from h, then sets
// HeaderKeyID to v's key id and, when v has a subject, HeaderSubject.
// The names are in canonical form, so they are set without Header.Set
// canonicalizing them for every request.
func SetIdentityHeaders(h http.Header, v signature.Verified) {
	StripGatewayHeaders(h)
	h[HeaderKeyID] = []string{v.KeyID}
	if v.Subject != "" {
		h[HeaderSubject] = []string{v.Subject}
	}
}

// RemoveHopByHop deletes from h the headers of one connection: those the
// Connection header names, then the standard hop-by-hop ones.
func RemoveHopByHop(h http.Header) { hop.Remove(h) }
