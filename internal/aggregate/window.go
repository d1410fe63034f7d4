package aggregate

import (
	"regexp"

	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// Window is one tumbling window size. Windows are aligned to the Unix epoch in
// UTC, so every size that divides a day starts at midnight UTC.
type Window struct {
	Size time.Duration
	// Name is the canonical spelling used in table names: "1m" -> usage_1m.
	Name string
}

// day is the largest alignment unit: a window must divide it so that windows
// never straddle midnight UTC and hourly/daily re-aggregation stays exact.
const day = 24 * time.Hour

// ParseWindows parses a comma list such as "1m,1h" into canonical windows,
// sorted as given. Accepted units: s, m, h, d. Sizes must divide 24h evenly.
func ParseWindows(s string) ([]Window, error) {
	var out []Window
	seen := map[time.Duration]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		w, err := ParseWindow(part)
		if err != nil {
			return nil, err
		}
		if seen[w.Size] {
			return nil, fmt.Errorf("window %q listed twice", part)
		}
		seen[w.Size] = true
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no window sizes in %q", s)
	}
	return out, nil
}

// ParseWindow parses one size like "5m" or "1d".
func ParseWindow(s string) (Window, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v <= 0 {
			return Window{}, fmt.Errorf("invalid window size %q", s)
		}
		d = time.Duration(v) * day
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return Window{}, fmt.Errorf("invalid window size %q: %w", s, err)
		}
	}
	if d < time.Second || d%time.Second != 0 {
		return Window{}, fmt.Errorf("window size %q must be a whole number of seconds >= 1s", s)
	}
	if d > day && d%day != 0 || d <= day && day%d != 0 {
		return Window{}, fmt.Errorf("window size %q must divide 24h evenly (or be whole days)", s)
	}
	return Window{Size: d, Name: windowName(d)}, nil
}

func windowName(d time.Duration) string {
	switch {
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	default:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
}

// Start returns the window start (Unix seconds) holding event time ms.
func (w Window) Start(ms int64) int64 {
	sec := ms / 1000
	if ms < 0 && ms%1000 != 0 {
		sec--
	}
	size := int64(w.Size / time.Second)
	start := sec - sec%size
	if sec < 0 && sec%size != 0 {
		start -= size
	}
	return start
}

// canonicalName matches the names ParseWindow produces; they become part of
// table and view names, so nothing else may pass.
var canonicalName = regexp.MustCompile(`^[0-9]+[smhd]$`)

// IsWindowName reports whether name is a canonical window name, such as 1m or
// 1h: safe to splice into a table or view name.
func IsWindowName(name string) bool { return canonicalName.MatchString(name) }

// CheckWindows reports, as a *fielderr.Error on field "Windows", an empty
// list, a name that is not canonical, or a window listed twice. The writer
// and the schema, which turn names into table names, both check with it.
func CheckWindows(ws []Window) error {
	if len(ws) == 0 {
		return fielderr.New("Windows", "must list at least one window size")
	}
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		if !IsWindowName(w.Name) {
			return fielderr.New("Windows", "name %q is not canonical (like 1m or 1h)", w.Name)
		}
		if seen[w.Name] {
			return fielderr.New("Windows", "lists %s twice", w.Name)
		}
		seen[w.Name] = true
	}
	return nil
}
