package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/events golden files from the decoder's output")

// goldenDir holds the payloads shared with docs and the fuzz seed corpus.
const goldenDir = "../../testdata/events"

// payloads lists the message files in dir, skipping the golden files.
func payloads(t testing.TB, dir string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(goldenDir, dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range all {
		if !strings.HasSuffix(p, ".golden.json") {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no payloads in %s/%s", goldenDir, dir)
	}
	return out
}

// checkGolden compares got, as indented JSON, with the golden file next to
// path, or rewrites it under -update.
func checkGolden(t *testing.T, path string, got any) {
	t.Helper()
	want, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	golden := strings.TrimSuffix(path, ".json") + ".golden.json"
	if *update {
		if err := os.WriteFile(golden, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(have, want) {
		t.Errorf("%s differs from decoder output:\n%s\nwant (golden):\n%s", golden, want, have)
	}
}

// TestGoldenValid decodes every testdata/events/valid payload and compares the
// event with its .golden.json.
func TestGoldenValid(t *testing.T) {
	for _, path := range payloads(t, "valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			got, _, err := decode(readFile(t, path))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkGolden(t, path, got)
		})
	}
}

// TestGoldenInvalid decodes every testdata/events/invalid payload and compares
// the rejection (reason and field) with its .golden.json.
func TestGoldenInvalid(t *testing.T) {
	for _, path := range payloads(t, "invalid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, got, err := decode(readFile(t, path))
			if got.Reason == "" {
				t.Fatalf("Decode = %v, want a *RejectError", err)
			}
			checkGolden(t, path, got)
		})
	}
}
