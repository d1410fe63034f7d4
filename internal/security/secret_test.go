package security

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/secrettest"
)

// TestSecretNeverPrinted formats, encodes and logs a Secret, alone and inside
// the containers a config puts it in, every way a caller plausibly would.
func TestSecretNeverPrinted(t *testing.T) {
	s := Secret(secrettest.Password)
	type config struct {
		User     string
		Password Secret
	}
	type outer struct{ Config config }
	values := map[string]any{
		"Secret": s, "*Secret": &s, "struct": config{"u", s}, "*struct": &config{"u", s},
		"nested": outer{config{"u", s}}, "slice": []Secret{s}, "map": map[string]Secret{"p": s},
	}
	for name, v := range values {
		for verb, out := range secrettest.Formatted(v) {
			if secrettest.Leaks(out) {
				t.Errorf("Sprintf(%q, %s) reveals the secret: %s", verb, name, out)
			}
			if !strings.Contains(out, redacted) {
				t.Errorf("Sprintf(%q, %s) = %s, want %s in it", verb, name, out, redacted)
			}
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		if secrettest.Leaks(string(js)) || !strings.Contains(string(js), redacted) {
			t.Errorf("json.Marshal(%s) = %s, want the secret redacted", name, js)
		}
		var logs bytes.Buffer
		log := zerolog.New(&logs)
		log.Info().Interface("v", v).Any("any", v).Msg("settings")
		if secrettest.Leaks(logs.String()) || !strings.Contains(logs.String(), redacted) {
			t.Errorf("zerolog of %s = %s, want the secret redacted", name, logs.String())
		}
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	log.Info().Stringer("s", s).Msg("secret")
	if secrettest.Leaks(logs.String()) {
		t.Errorf("zerolog Stringer reveals the secret: %s", logs.String())
	}
	if got := s.Reveal(); got != secrettest.Password {
		t.Errorf("Reveal() = %q, want the credential", got)
	}
}
