package events

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkSurrogates reports, for value that is valid JSON apart from its
// escapes, the detail the scanner gives an unpaired UTF-16 surrogate escape
// in it, or "" if it has none. The decoder checks surrogates in the same pass
// as the rest of the grammar; this wrapper lets TestCheckSurrogates pin that
// rule on its own.
func checkSurrogates(value []byte) string {
	var d Decoder
	d.skipValue(value, skipWS(value, 0), 1)
	if d.synMsg == synSurrogate {
		return d.synMsg
	}
	return ""
}

// TestScanDepth pins the nesting limit to the one the decoder always had:
// the top-level value is at depth 1 and any value, even a number, deeper
// than maxDepth is a syntax error.
func TestScanDepth(t *testing.T) {
	nest := func(n int, inner string) []byte {
		return []byte(strings.Repeat("[", n) + inner + strings.Repeat("]", n))
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"300 arrays", nest(maxDepth, ""), true},
		{"301 arrays", nest(maxDepth+1, ""), false},
		{"299 arrays and a number", nest(maxDepth-1, "1"), true},
		{"300 arrays and a number", nest(maxDepth, "1"), false},
		{"object members count", []byte(`{"a":` + string(nest(maxDepth-1, "")) + `}`), true},
		{"object members count, one more", []byte(`{"a":` + string(nest(maxDepth, "")) + `}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			end := d.skipValue(tt.in, 0, 1)
			if ok := end == len(tt.in) && d.synMsg == ""; ok != tt.ok {
				t.Errorf("skipValue = %d, %q; ok = %v, want %v", end, d.synMsg, ok, tt.ok)
			}
		})
	}
}

// TestSpecial compares the word-at-a-time search for '"', '\\' and control
// characters with a byte loop, on random words rich in bytes near the
// boundaries of the test.
func TestSpecial(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	near := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"' - 1, '"', '"' + 1, '\\' - 1, '\\', '\\' + 1, 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	for range 1_000_000 {
		var b [8]byte
		for i := range b {
			if r.IntN(2) == 0 {
				b[i] = near[r.IntN(len(near))]
			} else {
				b[i] = byte(r.Uint32())
			}
		}
		var x uint64
		for i := 7; i >= 0; i-- {
			x = x<<8 | uint64(b[i])
		}
		want := 8
		for i, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				want = i
				break
			}
		}
		if got := bits.TrailingZeros64(special(x)) >> 3; got != want {
			t.Fatalf("special(% x): first special byte %d, want %d", b, got, want)
		}
	}
}

// TestScanString checks string ends and flags across the 16-byte blocks of
// the fast path and the byte loop near the end of the message.
func TestScanString(t *testing.T) {
	for n := range 40 {
		for _, tt := range []struct {
			fill  string
			flags uint8
		}{
			{"a", 0},
			{"é", strNonASCII}, // two bytes >= 0x80
			{`\n`, strEscaped},
			{`\u00e9`, strEscaped},
		} {
			body := strings.Repeat("a", n) + tt.fill
			for _, tail := range []string{"", "}", strings.Repeat(" ", 20)} {
				in := []byte(body + `"` + tail)
				var d Decoder
				end, flags := d.scanString(in, 0)
				if end != len(body)+1 || flags != tt.flags || d.synMsg != "" {
					t.Errorf("scanString(%q) = %d, %b, %q; want %d, %b", in, end, flags, d.synMsg, len(body)+1, tt.flags)
				}
			}
		}
	}
	// Errors, with and without room for the 16-byte blocks.
	for _, in := range []string{"abc", "a\tb\"", `a\qb"`, `a\u12"`, strings.Repeat("a", 20) + "\x01\"", `\ud83d"`, `\ud83d\u0041"`, `\ude80"`} {
		for _, pad := range []string{"", strings.Repeat(" ", 20)} {
			var d Decoder
			if end, _ := d.scanString([]byte(in+pad), 0); end >= 0 || d.synMsg == "" {
				t.Errorf("scanString(%q) = %d, %q; want a syntax error", in+pad, end, d.synMsg)
			}
		}
	}
}

// TestFastCount compares the word-at-a-time integer reader with strconv and
// checks that it declines every shape it does not handle.
func TestFastCount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		n := r.Uint64N(10_000_000)
		s := strconv.FormatUint(n, 10)
		in := []byte(s + `,"abcdefgh"`)
		end, got, ok := fastCount(in, 0)
		if !ok || end != len(s) || got != n {
			t.Fatalf("fastCount(%q) = %d, %d, %v; want %d, %d, true", in, end, got, ok, len(s), n)
		}
	}
	// Declined: the general reader takes these. The last has fewer than
	// eight bytes left in the message.
	for _, s := range []string{"12345678", "0123", "00", "-1", "1.5", "1e3", "1E3", "7.", "x", "", "123"} {
		if _, _, ok := fastCount([]byte(s+"}"), 0); ok {
			t.Errorf("fastCount(%q) ok, want the general reader", s+"}")
		}
	}
}

// TestFuture compares the integer future-skew check with the time.Time
// expression it replaces.
func TestFuture(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	skews := []time.Duration{time.Nanosecond, time.Second, 24 * time.Hour, 36*time.Hour + 999_999_999, 1500 * time.Millisecond}
	for range 200_000 {
		skew := skews[r.IntN(len(skews))]
		d := NewDecoder(Config{MaxMessageBytes: 1, MaxFutureSkew: skew})
		rec := time.Unix(r.Int64N(5e9)-1e9, r.Int64N(1e9))
		ts := rec.Add(skew).UnixNano() + r.Int64N(5) - 2 // around the limit
		if r.IntN(4) == 0 {
			ts = r.Int64N(maxTimeSec * 1e9)
		}
		if ts < 0 {
			ts = 0
		}
		want := time.Unix(0, ts).After(rec.Add(skew))
		if got := d.future(ts, rec); got != want {
			t.Fatalf("future(%d, %s) with skew %s = %v, want %v", ts, rec, skew, got, want)
		}
	}
}

// TestKeyPatterns checks that every spelling has a key, that lookup (the
// switch) agrees with spellings (the table), and that each pattern matches
// its key's text with quotes and colon, and not a longer key.
func TestKeyPatterns(t *testing.T) {
	for s := spellID; s < numSpellings; s++ {
		sp := spellings[s]
		if got := lookup(sp.lvl, []byte(sp.key)); got != s {
			t.Errorf("lookup(%d, %q) = %d, want %d", sp.lvl, sp.key, got, s)
		}
		for lvl := levelTop; lvl <= levelDetails; lvl++ {
			if got := lookup(lvl, []byte(sp.key)); lvl != sp.lvl && got != spellNone {
				t.Errorf("lookup(%d, %q) = %d, want none: the key is at level %d", lvl, sp.key, got, sp.lvl)
			}
		}
		pad := strings.Repeat("x", patternBytes)
		if !matchKey([]byte(`"`+sp.key+`":`+pad), 0, s) || int(patternLen[s]) != len(sp.key)+3 {
			t.Errorf("pattern of %q does not match its own text", sp.key)
		}
		if matchKey([]byte(`"`+sp.key+`x":`+pad), 0, s) || matchKey([]byte(`"`+sp.key+`" :`+pad), 0, s) {
			t.Errorf("pattern of %q matches another text", sp.key)
		}
	}
}
