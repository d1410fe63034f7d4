package events_test

import (
	"math/rand/v2"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// TestDecodeRejectsRawControlBeforeEscape: RFC 8259 forbids a raw control
// character anywhere in a string, and the contract makes it invalid_json.
// The decoder built on fastjson checked only the part of a string after its
// last escape, so it accepted these; encoding/json, the fuzz oracle, rejects
// them.
func TestDecodeRejectsRawControlBeforeEscape(t *testing.T) {
	for _, in := range []string{
		obj(req, "\"x\":\"a\tb\\n\""),
		obj(req, "\"project_id\":\"a\tb\\n\""),
		obj(req, "\"a\tb\\n\":1"),
		obj(req, "\"usage\":{\"x\":\"\x1f\\\\\"}"),
	} {
		_, rej, err := decode([]byte(in))
		if rej != (rejection{events.ReasonInvalidJSON, ""}) {
			t.Errorf("Decode(%q) = %v, want invalid_json", in, err)
		}
	}
}

// TestDecodeOrderIndependent feeds one Decoder every golden payload and
// reject case in shuffled orders and compares each result with a fresh
// Decoder's: the key prediction the Decoder learns from earlier messages must
// never change a result.
func TestDecodeOrderIndependent(t *testing.T) {
	var inputs [][]byte
	for _, dir := range []string{"valid", "invalid"} {
		for _, path := range payloads(t, dir) {
			inputs = append(inputs, readFile(t, path))
		}
	}
	for _, tt := range rejectCases {
		inputs = append(inputs, []byte(tt.in))
	}
	type result struct {
		v view
		r rejection
	}
	want := make([]result, len(inputs))
	for i, in := range inputs {
		v, r, _ := decode(in)
		want[i] = result{v, r}
	}
	d := events.NewDecoder(events.DefaultConfig())
	r := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		for _, i := range r.Perm(len(inputs)) {
			var ev events.Event
			got := result{r: rejectionOf(d.Decode(inputs[i], recordTime, &ev))}
			got.v = viewOf(&ev)
			if got != want[i] {
				t.Fatalf("Decode(%.100q) after other messages = %+v, fresh Decoder %+v", inputs[i], got, want[i])
			}
		}
	}
}
