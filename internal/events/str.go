package events

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// JSON strings: finding their end, checking their escapes, and unescaping
// the few the decoder keeps or matches.

// strPlain[c] is true for bytes that may appear unescaped in a JSON string
// and end nothing: everything but '"', '\\' and control characters (RFC 8259
// section 7). Bytes >= 0x80 are plain to the grammar; UTF-8 validity is the
// contract's own rule, checked only on the strings it keeps.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// String flags, returned by scanString.
const (
	strEscaped  = 1 << iota // the string holds an escape
	strNonASCII             // the string holds a byte >= 0x80
)

// scanString scans a string whose opening quote is at i-1 and returns the
// index after its closing quote and strEscaped and strNonASCII flags. It
// checks escapes, including that every UTF-16 surrogate escape is half of a
// pair (RFC 8259 section 8.2 leaves lone ones undefined, and unescaping would
// change the value), and rejects raw control characters.
//
// Strings of an event (ids, dimensions, keys) are plain and short, so the
// first special byte is looked for sixteen bytes at a time, with one branch
// per block instead of one per byte; it was the largest item of the profile.
func (d *Decoder) scanString(b []byte, i int) (int, uint8) {
	start := i
	var high uint64 // the full blocks passed, ORed: bit 7 of a byte is set if one is >= 0x80
	for i <= len(b) {
		s := b[i:]
		if len(s) < 16 {
			break
		}
		x1 := binary.LittleEndian.Uint64(s)
		x2 := binary.LittleEndian.Uint64(s[8:])
		// The bit index, in the 128 bits, of bit 7 of the first special
		// byte: t1 if the first word has one (t1 < 64), else 64+t2.
		t1 := bits.TrailingZeros64(special(x1))
		t2 := bits.TrailingZeros64(special(x2))
		n := t1 + t2&-(t1>>6)
		if n >= 128 {
			high |= x1 | x2
			i += 16
			continue
		}
		if k := n >> 3 & 15; s[k] == '"' {
			// The same for the first byte >= 0x80: the string is ASCII if
			// none comes before the quote.
			h1 := bits.TrailingZeros64(x1 & highs)
			h2 := bits.TrailingZeros64(x2 & highs)
			var flags uint8
			if h1+h2&-(h1>>6) < n || high&highs != 0 {
				flags = strNonASCII
			}
			return i + k + 1, flags
		}
		break // an escape or a control character: the general loop decides
	}
	return d.scanStringSlow(b, start, i)
}

// scanStringSlow is scanString for long strings, strings with escapes or
// control characters, and strings near the end of the message. The string
// starts at start and is plain up to i.
func (d *Decoder) scanStringSlow(b []byte, start, i int) (int, uint8) {
	var flags uint8
	for {
		if i+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[i:])); m == 0 {
				i += 8
				continue
			} else {
				i += bits.TrailingZeros64(m) >> 3
			}
		} else {
			for i < len(b) && strPlain[b[i]] {
				i++
			}
			if i >= len(b) {
				return d.syntax(i, synEOF), 0
			}
		}
		switch b[i] {
		case '"':
			if !ascii(b[start:i]) {
				flags |= strNonASCII
			}
			return i + 1, flags
		case '\\':
			flags |= strEscaped
			if i = d.scanEscape(b, i); i < 0 {
				return -1, 0
			}
		default:
			return d.syntax(i, synControl), 0
		}
	}
}

// Byte-wise constants for special.
const (
	ones   = 0x0101010101010101
	highs  = 0x8080808080808080
	quotes = '"' * ones
	slashs = '\\' * ones
)

// special returns a word whose lowest set bit is bit 7 of the first byte of x
// (little endian) that is '"', '\\' or below 0x20, and zero if there is none.
// It is the zero-byte test of "Bit Twiddling Hacks" (Sean Eron Anderson,
// https://graphics.stanford.edu/~seander/bithacks.html#ZeroInWord),
// (v-0x01..)&^v&0x80.., applied to v = x^quotes, x^slashs and, for "below
// 0x20", (x-0x20..)&^x. A byte borrows only from the ones above it, so bits
// above the first flagged byte may be wrong but the lowest is exact. The
// three &^v share one &^x: '"', '\\' and 0x20 are below 0x80, so bit 7 of
// every v is bit 7 of x.
func special(x uint64) uint64 {
	q := (x ^ quotes) - ones
	s := (x ^ slashs) - ones
	c := x - 0x20*ones
	return (q | s | c) &^ x & highs
}

// ascii reports whether s holds only bytes below 0x80.
func ascii(s []byte) bool {
	var or uint64
	for len(s) >= 8 {
		or |= binary.LittleEndian.Uint64(s)
		s = s[8:]
	}
	for _, c := range s {
		or |= uint64(c)
	}
	return or&highs == 0
}

// scanEscape checks the escape whose backslash is at i and returns the index
// after it; a high surrogate escape must be followed by a low one, and the
// pair is scanned as one.
func (d *Decoder) scanEscape(b []byte, i int) int {
	if i+1 >= len(b) {
		return d.syntax(len(b), synEOF)
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2
	case 'u':
	default:
		return d.syntax(i, synEscape)
	}
	r, ok := hex4(b, i+2)
	if !ok {
		return d.syntax(i, synEscape)
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return d.syntax(i, synSurrogate)
	case r >= 0xD800 && r <= 0xDBFF:
		j := i + 6
		if j+1 >= len(b) || b[j] != '\\' || b[j+1] != 'u' {
			return d.syntax(i, synSurrogate)
		}
		lo, ok := hex4(b, j+2)
		if !ok {
			return d.syntax(j, synEscape)
		}
		if lo < 0xDC00 || lo > 0xDFFF {
			return d.syntax(i, synSurrogate)
		}
		return j + 6
	}
	return i + 6
}

// hexVal maps a hex digit to its value and every other byte to 0xFF.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	h0, h1, h2, h3 := hexVal[b[i]], hexVal[b[i+1]], hexVal[b[i+2]], hexVal[b[i+3]]
	if (h0|h1|h2|h3)&0xF0 != 0 { // a non-digit is 0xFF
		return 0, false
	}
	return rune(h0)<<12 | rune(h1)<<8 | rune(h2)<<4 | rune(h3), true
}

// appendUnescaped appends the value of the string body raw, already checked
// by scanString, to dst.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			i += 6
			if r >= 0xD800 && r <= 0xDBFF { // scanString checked the low half follows
				lo, _ := hex4(raw, i+2)
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}
