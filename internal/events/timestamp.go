package events

// The accepted event-time range is what a ClickHouse DateTime (UInt32 seconds)
// can store, rounded down to a whole year: 1970-01-01T00:00:00Z up to
// 2105-12-31T23:59:59.999999999Z. Anything outside would be silently wrapped
// or clamped by ClickHouse, so it is rejected here instead.
const (
	// maxTimeSec is 2106-01-01T00:00:00Z, the first second that is rejected.
	maxTimeSec = 4_291_747_200
	// maxTimeMs is the same bound in milliseconds, for epoch-ms timestamps.
	maxTimeMs = maxTimeSec * 1000
	// minYear and maxYear: RFC 3339 offsets are at most ±23:59, so a local date
	// is at most one day away from its UTC date and years outside
	// [1969, 2106] can be rejected before any arithmetic.
	minYear, maxYear = 1969, 2106
)

// Details for invalid_timestamp. Constants, so the reject path for timestamps
// allocates only the RejectError itself.
const (
	detailTimeSyntax   = "not an RFC 3339 date-time such as 2026-11-27T10:15:30.123Z"
	detailTimeField    = "date or time component out of range"
	detailTimeRange    = "outside 1970-01-01T00:00:00Z .. 2105-12-31T23:59:59Z"
	detailEpochInteger = "epoch milliseconds must be a JSON integer"
)

// parseRFC3339 parses an RFC 3339 date-time (section 5.6) into Unix
// nanoseconds. It accepts 'T' or 't', 'Z' or 'z', any numeric offset and any
// number of fraction digits (digits beyond nanoseconds are truncated). It
// rejects leap second 60, as time.Parse does, because ClickHouse cannot store it.
// It is hand-written rather than time.Parse so that offsets other than Z do not
// allocate and so that the accepted grammar is exactly the documented one.
// The detail is empty on success.
func parseRFC3339(b []byte) (ns int64, detail string) {
	// "2006-01-02T15:04:05" is 19 bytes; at least one zone byte follows.
	if len(b) < 20 ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') ||
		b[13] != ':' || b[16] != ':' {
		return 0, detailTimeSyntax
	}
	b = b[:len(b):len(b)]
	_ = b[19] // one bounds check for the fixed part
	century, ok1 := digit2(b[0], b[1])
	yy, ok2 := digit2(b[2], b[3])
	month, ok3 := digit2(b[5], b[6])
	day, ok4 := digit2(b[8], b[9])
	hour, ok5 := digit2(b[11], b[12])
	minute, ok6 := digit2(b[14], b[15])
	sec, ok7 := digit2(b[17], b[18])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return 0, detailTimeSyntax
	}
	year := century*100 + yy

	rest := b[19:]
	var frac int64 // nanoseconds
	if rest[0] == '.' {
		i, scale := 1, int64(1e8)
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			frac += int64(rest[i]-'0') * scale
			scale /= 10 // reaches 0 after nine digits: further digits are truncated
		}
		if i == 1 {
			return 0, detailTimeSyntax
		}
		rest = rest[i:]
	}

	var offset int64 // seconds east of UTC
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm {
			return 0, detailTimeSyntax
		}
		if oh > 23 || om > 59 {
			return 0, detailTimeField
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, detailTimeSyntax
	}

	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, detailTimeField
	}
	if year < minYear || year > maxYear {
		return 0, detailTimeRange
	}
	unix := daysFromCivil(year, month, day)*86400 + hour*3600 + minute*60 + sec - offset
	if unix < 0 || unix >= maxTimeSec {
		return 0, detailTimeRange
	}
	return unix*1e9 + frac, ""
}

// parseEpochMs converts the raw text of a JSON number (already checked against
// the JSON grammar) holding Unix epoch milliseconds into Unix nanoseconds.
func parseEpochMs(num []byte) (ns int64, detail string) {
	if num[0] == '-' {
		return 0, detailTimeRange
	}
	for _, c := range num {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, detailEpochInteger
		}
	}
	// maxTimeMs has 13 digits; a longer integer is out of range and would
	// overflow the accumulator below.
	if len(num) > 13 {
		return 0, detailTimeRange
	}
	ms, _ := digits(num)
	if ms >= maxTimeMs {
		return 0, detailTimeRange
	}
	return ms * 1e6, ""
}

// digit2 parses the two ASCII digits hi and lo; ok is false unless both are
// digits. The fixed-width fields of a date-time are read with it, without
// the loop of digits.
func digit2(hi, lo byte) (n int64, ok bool) {
	h, l := hi-'0', lo-'0' // a byte below '0' wraps above 9
	return int64(h)*10 + int64(l), h <= 9 && l <= 9
}

// digits parses a short run of ASCII decimal digits (at most 18, so it cannot
// overflow). ok is false if b is empty or holds anything but digits.
func digits(b []byte) (n int64, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// daysIn returns the number of days in month m of year y (proleptic Gregorian).
func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// daysFromCivil returns days since 1970-01-01 for a valid date with y >= 1.
// Algorithm from Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms"
// (https://howardhinnant.github.io/date_algorithms.html#days_from_civil).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 0 here, so truncation is floor
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
