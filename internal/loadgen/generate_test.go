package loadgen

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type message struct{ key, value []byte }

// generate runs Generate and collects its messages.
func generate(t *testing.T, cfg Config) ([]message, Expected) {
	t.Helper()
	var msgs []message
	exp, err := Generate(cfg, func(k, v []byte) error {
		msgs = append(msgs, message{k, v})
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(msgs) != cfg.Count || exp.Sent != cfg.Count {
		t.Fatalf("emitted %d messages, Expected.Sent %d, want %d", len(msgs), exp.Sent, cfg.Count)
	}
	return msgs, exp
}

// testConfig is a stream with every variant frequent enough to count.
func testConfig(seed int64, count int) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Count = count
	cfg.Start = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	cfg.DuplicateRatio = 0.05
	cfg.LateRatio = 0.1
	cfg.MalformedRatio = 0.05
	cfg.CamelRatio = 0.3
	cfg.ChatRatio = 0.4
	return cfg
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := testConfig(42, 5000)
	a, expA := generate(t, cfg)
	b, expB := generate(t, cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different messages")
	}
	if !reflect.DeepEqual(expA, expB) {
		t.Fatalf("same seed, different Expected:\n%+v\n%+v", expA, expB)
	}
	cfg.Seed = 43
	c, _ := generate(t, cfg)
	if bytes.Equal(a[0].value, c[0].value) || bytes.Equal(a[0].key, c[0].key) {
		t.Fatal("different seeds, same first message")
	}
}

// TestGenerateMatchesDecode recomputes Expected from the emitted bytes with an
// independent decoder: totals count each id once, and every malformed message
// is rejected for the reason the generator claims.
func TestGenerateMatchesDecode(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			msgs, exp := generate(t, testConfig(seed, 10000))
			got := newExpected(seed)
			got.Sent = len(msgs)
			seen := map[string]bool{}
			for _, m := range msgs {
				d, reason := decodeEvent(m.value)
				if reason != "" {
					got.Malformed++
					got.MalformedByKind[reason]++
					continue
				}
				if seen[d.id] {
					got.Duplicates++
					continue
				}
				seen[d.id] = true
				got.Accepted++
				got.Overall.Add(d.totals)
				if got.ByWorkspaceModel[d.workspace] == nil {
					got.ByWorkspaceModel[d.workspace] = map[string]Totals{}
				}
				sum := got.ByWorkspaceModel[d.workspace][d.model]
				sum.Add(d.totals)
				got.ByWorkspaceModel[d.workspace][d.model] = sum
			}
			for _, c := range []struct {
				name      string
				got, want any
			}{
				{"Sent", got.Sent, exp.Sent},
				{"Accepted", got.Accepted, exp.Accepted},
				{"Duplicates", got.Duplicates, exp.Duplicates},
				{"Malformed", got.Malformed, exp.Malformed},
				{"MalformedByKind", got.MalformedByKind, exp.MalformedByKind},
				{"Overall", got.Overall, exp.Overall},
				{"ByWorkspaceModel", got.ByWorkspaceModel, exp.ByWorkspaceModel},
			} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s: decoded %+v, Expected %+v", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestGenerateRatios(t *testing.T) {
	cfg := testConfig(7, 40000)
	msgs, exp := generate(t, cfg)
	// Count shapes over first occurrences, independently of Expected.Mix.
	var chatEligible, chatStyle, camel int
	seen := map[string]bool{}
	for _, m := range msgs {
		d, reason := decodeEvent(m.value)
		if reason != "" || seen[d.id] {
			continue
		}
		seen[d.id] = true
		if d.camel {
			camel++
		}
		if d.endpoint != "images.generations" {
			chatEligible++
			if d.chat {
				chatStyle++
			}
		}
	}
	fresh := exp.Sent - exp.Duplicates
	cases := []struct {
		name      string
		num, den  int
		wantRatio float64
	}{
		{"duplicates/sent", exp.Duplicates, exp.Sent, cfg.DuplicateRatio},
		{"malformed/fresh", exp.Malformed, fresh, cfg.MalformedRatio},
		{"late/accepted", exp.Mix.Late, exp.Accepted, cfg.LateRatio},
		{"camel/accepted", exp.Mix.Camel, exp.Accepted, cfg.CamelRatio},
		{"camel decoded/accepted", camel, exp.Accepted, cfg.CamelRatio},
		{"chat/eligible", chatStyle, chatEligible, cfg.ChatRatio},
		{"errors/accepted", int(exp.Overall.Errors), exp.Accepted, errorShare},
		{"epoch/accepted", exp.Mix.EpochMs, exp.Accepted, epochShare},
	}
	for _, c := range cases {
		got := float64(c.num) / float64(c.den)
		// Five binomial standard deviations: never flaky for a fixed seed, and
		// still tight enough to catch a ratio applied to the wrong population.
		tol := 5 * math.Sqrt(c.wantRatio*(1-c.wantRatio)/float64(c.den))
		if math.Abs(got-c.wantRatio) > tol {
			t.Errorf("%s = %d/%d = %.4f, want %.4f ± %.4f", c.name, c.num, c.den, got, c.wantRatio, tol)
		}
	}
	for _, k := range MalformedKinds {
		if exp.MalformedByKind[k] == 0 {
			t.Errorf("no %s message in %d malformed", k, exp.Malformed)
		}
	}
}

func TestDuplicatesNearOriginal(t *testing.T) {
	msgs, exp := generate(t, testConfig(11, 20000))
	first := map[string]int{}
	dups := 0
	for i, m := range msgs {
		j, ok := first[string(m.key)]
		if !ok {
			first[string(m.key)] = i
			continue
		}
		dups++
		if i-j > DuplicateMaxDistance+1 {
			t.Errorf("message %d duplicates message %d, %d messages apart", i, j, i-j)
		}
		if !bytes.Equal(m.value, msgs[j].value) {
			t.Errorf("message %d: duplicate of %d with different bytes", i, j)
		}
		if _, reason := decodeEvent(m.value); reason != "" {
			t.Errorf("message %d: duplicate of a malformed message (%s)", i, reason)
		}
	}
	if dups != exp.Duplicates {
		t.Errorf("found %d repeated keys, Expected.Duplicates = %d", dups, exp.Duplicates)
	}
}

func TestGenerateTimestamps(t *testing.T) {
	now := time.Now()
	cfg := testConfig(5, 10000)
	cfg.Start = now.Add(-cfg.Span())
	msgs, exp := generate(t, cfg)
	for i, m := range msgs {
		d, reason := decodeEvent(m.value)
		if reason != "" {
			continue
		}
		if d.ts.After(now.Add(MaxFutureSkew)) {
			t.Errorf("message %d: timestamp %s is more than %s ahead", i, d.ts, MaxFutureSkew)
		}
		if d.ts.Before(exp.MinEventTime) || d.ts.After(exp.MaxEventTime) {
			t.Errorf("message %d: timestamp %s outside [%s, %s]", i, d.ts, exp.MinEventTime, exp.MaxEventTime)
		}
	}
	if exp.Mix.Late == 0 || exp.MaxEventTime.Sub(exp.MinEventTime) < lateMin {
		t.Errorf("late events missing: %d late, event times %s .. %s", exp.Mix.Late, exp.MinEventTime, exp.MaxEventTime)
	}

	cfg.Start = now.Add(2 * time.Hour)
	if _, err := Generate(cfg, func(_, _ []byte) error { return nil }); err == nil {
		t.Error("Generate accepted a stream starting 2h in the future")
	}
}

func TestConfigValidate(t *testing.T) {
	valid := testConfig(1, 10)
	cases := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"negative count", func(c *Config) { c.Count = -1 }, false},
		{"negative rate", func(c *Config) { c.Rate = -1 }, false},
		{"no start", func(c *Config) { c.Start = time.Time{} }, false},
		{"ratio above 1", func(c *Config) { c.LateRatio = 1.5 }, false},
		{"NaN ratio", func(c *Config) { c.ChatRatio = math.NaN() }, false},
		{"negative interval", func(c *Config) { c.EventInterval = -time.Second }, false},
	}
	for _, c := range cases {
		cfg := valid
		c.mutate(&cfg)
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
