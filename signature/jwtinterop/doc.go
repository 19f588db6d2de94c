// Package jwtinterop holds the jwt scheme's tests against other
// implementations: tokens and DPoP proofs minted by go-jose verify with
// package signature, tokens minted by package signature verify with
// go-jose, and the scheme runs under the Yaegi interpreter as Traefik loads
// it. It is a module of its own so that go-jose and Yaegi stay out of the
// core module's dependencies.
package jwtinterop
