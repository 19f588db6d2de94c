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

// headers returns the standard hop-by-hop header names.
func headers() []string {
	return []string{
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	}
}

// Remove deletes from h the headers of one connection.
func Remove(h http.Header) {
	for _, c := range h.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range headers() {
		h.Del(name)
	}
}
