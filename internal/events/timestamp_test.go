package events

import (
	"math/rand/v2"
	"testing"
	"time"
)

// utc parses a reference instant with the standard library, for tables.
func utc(s string) int64 {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return tm.UnixNano()
}

func TestParseRFC3339(t *testing.T) {
	tests := []struct {
		in     string
		want   int64 // Unix ns; 0 when in is invalid
		detail string
	}{
		{"2026-11-27T10:15:30.123Z", utc("2026-11-27T10:15:30.123Z"), ""},
		{"2026-11-27t10:15:30.123z", utc("2026-11-27T10:15:30.123Z"), ""},
		{"2026-11-27T10:15:30Z", utc("2026-11-27T10:15:30Z"), ""},
		{"2026-11-27T10:15:30.1Z", utc("2026-11-27T10:15:30.1Z"), ""},
		{"2026-11-27T10:15:30.123456789Z", utc("2026-11-27T10:15:30.123456789Z"), ""},
		{"2026-11-27T10:15:30.1234567891234Z", utc("2026-11-27T10:15:30.123456789Z"), ""},
		{"2026-11-27T15:45:30.5+05:30", utc("2026-11-27T10:15:30.5Z"), ""},
		{"2026-11-27T02:15:30-08:00", utc("2026-11-27T10:15:30Z"), ""},
		{"2026-11-27T10:15:30+00:00", utc("2026-11-27T10:15:30Z"), ""},
		{"2026-11-27T10:15:30-00:00", utc("2026-11-27T10:15:30Z"), ""},
		{"2026-01-01T00:30:00+23:59", utc("2025-12-31T00:31:00Z"), ""},
		{"2028-02-29T12:00:00Z", utc("2028-02-29T12:00:00Z"), ""},
		{"2000-02-29T12:00:00Z", utc("2000-02-29T12:00:00Z"), ""},
		{"1970-01-01T00:00:00Z", utc("1970-01-01T00:00:00Z"), ""},
		{"1969-12-31T23:00:00-01:00", utc("1970-01-01T00:00:00Z"), ""},
		{"2105-12-31T23:59:59.999999999Z", utc("2105-12-31T23:59:59.999999999Z"), ""},
		{"2106-01-01T00:30:00+01:00", utc("2105-12-31T23:30:00Z"), ""},

		{"", 0, detailTimeSyntax},
		{"2026-11-27", 0, detailTimeSyntax},
		{"2026-11-27T10:15:30", 0, detailTimeSyntax},
		{"2026-11-27 10:15:30Z", 0, detailTimeSyntax},
		{"2026-11-27T10:15:30.Z", 0, detailTimeSyntax},
		{"2026-11-27T10:15:30+0530", 0, detailTimeSyntax},
		{"2026-11-27T10:15:30+05", 0, detailTimeSyntax},
		{"2026-11-27T10:15:30ZZ", 0, detailTimeSyntax},
		{"2026-11-27T10:15:30 Z", 0, detailTimeSyntax},
		{"2026-1-27T10:15:30Z", 0, detailTimeSyntax},
		{"+2026-11-27T10:15:30Z", 0, detailTimeSyntax},
		{"2026-11-27T10:15:3aZ", 0, detailTimeSyntax},
		{"２026-11-27T10:15:30Z", 0, detailTimeSyntax},
		{"2026-00-27T10:15:30Z", 0, detailTimeField},
		{"2026-11-00T10:15:30Z", 0, detailTimeField},
		{"2026-11-31T10:15:30Z", 0, detailTimeField},
		{"2027-02-29T10:15:30Z", 0, detailTimeField},
		{"2100-02-29T10:15:30Z", 0, detailTimeField},
		{"2026-11-27T24:00:00Z", 0, detailTimeField},
		{"2026-11-27T10:60:00Z", 0, detailTimeField},
		{"2026-12-31T23:59:60Z", 0, detailTimeField},
		{"2026-11-27T10:15:30+24:00", 0, detailTimeField},
		{"2026-11-27T10:15:30+05:60", 0, detailTimeField},
		{"1969-12-31T23:59:59.999999999Z", 0, detailTimeRange},
		{"1970-01-01T00:59:59+01:00", 0, detailTimeRange},
		{"0001-01-01T00:00:00Z", 0, detailTimeRange},
		{"2106-01-01T00:00:00Z", 0, detailTimeRange},
		{"9999-12-31T23:59:59Z", 0, detailTimeRange},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ns, detail := parseRFC3339([]byte(tt.in))
			if detail != tt.detail {
				t.Fatalf("detail = %q, want %q", detail, tt.detail)
			}
			if ns != tt.want {
				t.Errorf("ns = %d (%s), want %d (%s)", ns, time.Unix(0, ns).UTC(), tt.want, time.Unix(0, tt.want).UTC())
			}
		})
	}
}

// TestParseRFC3339MatchesTime compares with time.Parse on random instants in
// the accepted range, printed in random zones and precisions.
func TestParseRFC3339MatchesTime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	layouts := []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00"}
	for range 100_000 {
		ns := r.Int64N(maxTimeSec * 1e9)
		zone := time.FixedZone("", (r.IntN(47*60)-23*60)*60)
		s := time.Unix(0, ns).In(zone).Format(layouts[r.IntN(len(layouts))])
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, detail := parseRFC3339([]byte(s))
		if detail != "" || got != want.UnixNano() {
			t.Fatalf("parseRFC3339(%q) = %d, %q; time.Parse gives %d", s, got, detail, want.UnixNano())
		}
	}
}

func TestDaysFromCivil(t *testing.T) {
	for d := time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() <= maxYear; d = d.AddDate(0, 0, 1) {
		got := daysFromCivil(int64(d.Year()), int64(d.Month()), int64(d.Day()))
		if want := d.Unix() / 86400; got != want {
			t.Fatalf("daysFromCivil(%s) = %d, want %d", d.Format(time.DateOnly), got, want)
		}
	}
}

func TestParseEpochMs(t *testing.T) {
	tests := []struct {
		in     string
		want   int64
		detail string
	}{
		{"0", 0, ""},
		{"1795774530123", 1795774530123 * 1e6, ""},
		{"4291747199999", 4291747199999 * 1e6, ""},
		{"4291747200000", 0, detailTimeRange},
		{"99999999999999999999999", 0, detailTimeRange},
		{"-1", 0, detailTimeRange},
		{"1795774530123.0", 0, detailEpochInteger},
		{"1.795774530123e12", 0, detailEpochInteger},
		{"1795774530123E0", 0, detailEpochInteger},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, detail := parseEpochMs([]byte(tt.in))
			if got != tt.want || detail != tt.detail {
				t.Errorf("parseEpochMs(%s) = %d, %q, want %d, %q", tt.in, got, detail, tt.want, tt.detail)
			}
		})
	}
}

func TestCheckSurrogates(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"a":"\ud83d\ude80"}`, true},
		{`{"a":"\uD83D\uDE80x\u00e9"}`, true},
		{`{"a":"\\ud83d"}`, true}, // an escaped backslash, then plain text
		{`{"a":"\\\ud83d\ude80"}`, true},
		{`{"a":"\ud83d"}`, false},
		{`{"a":"\ud83dx"}`, false},
		{`{"a":"\ud83d\n"}`, false},
		{`{"a":"\ud83d\u0041"}`, false},
		{`{"a":"\ud83d\ud83d"}`, false},
		{`{"a":"\ude80"}`, false},
		{`{"\ude80":1}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := checkSurrogates([]byte(tt.in)) == ""; got != tt.ok {
				t.Errorf("checkSurrogates(%s) ok = %v, want %v", tt.in, got, tt.ok)
			}
		})
	}
}
