package events

import (
	"encoding/binary"
	"math/bits"
)

// This file and str.go hold the JSON grammar of the single-pass decoder:
// RFC 8259 exactly, plus the contract's two limits (nesting depth and
// unpaired UTF-16 surrogate escapes). Scanning functions take the message and
// an index and return the index after what they scanned, or -1 after
// recording a syntax error with Decoder.syntax; callers return -1 up the
// stack at once.

// maxDepth bounds nesting: the top-level value is at depth 1, a member of it
// at depth 2, and a value deeper than maxDepth is invalid_json. It bounds the
// recursion of skipValue, and it is the limit of the parser the decoder used
// to be built on (fastjson.MaxDepth), so the contract's "nesting deeper than
// 300" keeps its meaning.
const maxDepth = 300

// Details of invalid_json. Constants, so a syntax error allocates only the
// RejectError and its formatted detail.
const (
	synEOF         = "unexpected end of input"
	synValue       = "want a JSON value"
	synLiteral     = "invalid literal"
	synNumber      = "invalid number"
	synLeadingZero = "number with a leading zero"
	synKeyOpen     = `want '"' to open an object key`
	synColon       = "want ':' after object key"
	synObjectSep   = "want ',' or '}' after object value"
	synArraySep    = "want ',' or ']' after array value"
	synControl     = "raw control character in string"
	synEscape      = "invalid escape sequence in string"
	synSurrogate   = "unpaired UTF-16 surrogate escape in string"
	synDepth       = "nesting deeper than 300"
	synTrailing    = "data after the top-level value"
)

// syntax records a syntax error at byte pos and returns -1 for the caller to
// pass up. Only the first is kept, though the scan stops at it anyway.
func (d *Decoder) syntax(pos int, msg string) int {
	if d.synMsg == "" {
		d.synMsg, d.synPos = msg, pos
	}
	return -1
}

// skipWS returns the index of the first byte at or after i that is not JSON
// whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanNumber scans the JSON number at i and returns the index after it and
// whether it has a fraction or exponent. The caller knows b[i] is '-' or a
// digit.
func (d *Decoder) scanNumber(b []byte, i int) (int, bool) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return d.syntax(i, synEOF), false
	case b[i] == '0':
		i++
		if i < len(b) && b[i] >= '0' && b[i] <= '9' {
			return d.syntax(start, synLeadingZero), false
		}
	case b[i] >= '1' && b[i] <= '9':
		i++
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return d.syntax(start, synNumber), false
	}
	if i >= len(b) || (b[i] != '.' && b[i] != 'e' && b[i] != 'E') {
		return i, false
	}
	if b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return d.syntax(start, synNumber), false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return d.syntax(start, synNumber), false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i, true
}

// scanLiteral scans true, false or null at i, whose first byte the caller
// matched, and returns the index after it.
func (d *Decoder) scanLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return d.syntax(i, synLiteral)
	}
	return i + len(lit)
}

// skipValue scans the value at i, at nesting depth depth, for syntax only.
func (d *Decoder) skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return d.syntax(i, synEOF)
	}
	if depth > maxDepth {
		return d.syntax(i, synDepth)
	}
	switch c := b[i]; {
	case c == '"':
		i, _ = d.scanString(b, i+1)
		return i
	case c == '{':
		return d.skipObject(b, i+1, depth)
	case c == '[':
		return d.skipArray(b, i+1, depth)
	case c == '-' || (c >= '0' && c <= '9'):
		i, _ = d.scanNumber(b, i)
		return i
	case c == 't':
		return d.scanLiteral(b, i, "true")
	case c == 'f':
		return d.scanLiteral(b, i, "false")
	case c == 'n':
		return d.scanLiteral(b, i, "null")
	}
	return d.syntax(i, synValue)
}

// skipObject scans the members of an object whose '{' is at i-1 and which is
// at depth depth, and returns the index after its '}'.
func (d *Decoder) skipObject(b []byte, i, depth int) int {
	i = skipWS(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) {
			return d.syntax(i, synEOF)
		}
		if b[i] != '"' {
			return d.syntax(i, synKeyOpen)
		}
		if i, _ = d.scanString(b, i+1); i < 0 {
			return -1
		}
		if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
			return d.syntax(i, synColon)
		}
		if i = d.skipValue(b, skipWS(b, i+1), depth+1); i < 0 {
			return -1
		}
		var more bool
		if i, more = d.objectSep(b, i); !more {
			return i
		}
	}
}

// objectSep scans what follows an object member at i: after a ',' it returns
// the index of the next key and more; after the closing '}' the index after
// it. A syntax error returns -1 and not more.
func (d *Decoder) objectSep(b []byte, i int) (next int, more bool) {
	i = skipWS(b, i)
	if i >= len(b) {
		return d.syntax(i, synEOF), false
	}
	switch b[i] {
	case ',':
		return skipWS(b, i+1), true
	case '}':
		return i + 1, false
	}
	return d.syntax(i, synObjectSep), false
}

// skipArray scans the elements of an array whose '[' is at i-1 and which is
// at depth depth, and returns the index after its ']'.
func (d *Decoder) skipArray(b []byte, i, depth int) int {
	i = skipWS(b, i)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		if i = d.skipValue(b, i, depth+1); i < 0 {
			return -1
		}
		if i = skipWS(b, i); i >= len(b) {
			return d.syntax(i, synEOF)
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1
		default:
			return d.syntax(i, synArraySep)
		}
	}
}

// typeName names the JSON type of the value starting with c, in the words of
// the wrong_type details.
func typeName(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't':
		return "true"
	case c == 'f':
		return "false"
	case c == 'n':
		return "null"
	}
	return "number"
}

// fastCount reads a plain JSON integer of one to seven digits at i, the
// shape of nearly every count in real messages, without a loop: the digits
// are found and combined eight bytes at a time. ok is false for anything else
// (a sign, fraction, exponent, leading zero, eight or more digits, fewer than
// eight bytes left), which the caller then reads the general way.
func fastCount(b []byte, i int) (end int, n uint64, ok bool) {
	if i+8 > len(b) {
		return 0, 0, false
	}
	x := binary.LittleEndian.Uint64(b[i:]) - '0'*ones
	// Bit 7 of a byte is set where the byte is not a digit (a byte borrows
	// only from the ones above it, so the lowest flag is exact).
	nonDigit := (x | (x + (0x80-10)*ones)) & highs
	k := bits.TrailingZeros64(nonDigit) >> 3 // leading digits, 8 if all are
	if k == 0 || k == 8 || (k > 1 && x&0xFF == 0) {
		return 0, 0, false
	}
	if c := b[i+k]; c == '.' || c == 'e' || c == 'E' {
		return 0, 0, false
	}
	// Move the k digits to the top bytes (zeros below them are leading
	// zeros), then add pairs, quadruples and the two halves: the
	// eight-digit SWAR conversion (Wojciech Muła, "SWAR parsing of
	// numbers", http://0x80.pl/notesen/2014-10-12-parsing-decimal-numbers-part-1-swar.html).
	x <<= 8 * (8 - k)
	x = x*10 + x>>8
	x = ((x&0x000000FF000000FF)*(100+1000000<<32) + (x>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
	return i + k, x, true
}
