// Package hop removes the headers of one HTTP connection from a header
// set: those a Connection header names, then the standard hop-by-hop ones
// (RFC 9110 §7.6.1, plus the legacy ones proxies still send). The
// forward-auth endpoint drops them from the request it rebuilds, the dedupe
// step from the response it stores.
package hop

import (
	"net/http"
	"strings"
)

// standard are the standard hop-by-hop headers, in canonical form.
var standard = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// Standard reports whether name, in canonical form, is a standard
// hop-by-hop header.
func Standard(name string) bool {
	for _, s := range standard {
		if name == s {
			return true
		}
	}
	return false
}

// DeleteStandard deletes the standard hop-by-hop headers from h.
func DeleteStandard(h http.Header) {
	for _, name := range standard {
		delete(h, name)
	}
}

// Named returns, in canonical form, the header names h's Connection
// header lists.
func Named(h http.Header) []string {
	var names []string
	for _, c := range h["Connection"] {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				names = append(names, http.CanonicalHeaderKey(name))
			}
		}
	}
	return names
}

// Remove deletes from h the headers of one connection.
func Remove(h http.Header) {
	for _, name := range Named(h) {
		delete(h, name)
	}
	for name := range h {
		if Standard(name) {
			delete(h, name)
		}
	}
}
