// Package sfv parses and serializes HTTP Structured Field Values (RFC 8941):
// Items, Lists and Dictionaries with their Parameters, Inner Lists and the
// bare item types Integer, Decimal, String, Token, Byte Sequence and Boolean.
//
// Parsing follows the algorithms of RFC 8941 Section 4.2 and fails on any
// input they reject; serialization is the strict form of Section 4.1, which
// RFC 9421 signature bases rely on. Decimals are held exactly, as an integer
// count of thousandths. The package uses the standard library only.
package sfv
