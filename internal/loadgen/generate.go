package loadgen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// MalformedKind names one way a message is made invalid. The values match the
// rejection reasons of internal/events, so expected and observed rejection
// counts can be compared key by key.
type MalformedKind string

// Malformed kinds. Each malformed message has exactly one fault.
const (
	MalformedInvalidJSON       MalformedKind = "invalid_json"       // truncated object
	MalformedNotObject         MalformedKind = "not_object"         // the event wrapped in an array
	MalformedMissingField      MalformedKind = "missing_field"      // no id, timestamp or workspace id
	MalformedWrongType         MalformedKind = "wrong_type"         // numeric workspace id or quoted token count
	MalformedNegativeCount     MalformedKind = "negative_count"     // output tokens < 0
	MalformedNonInteger        MalformedKind = "non_integer"        // output tokens with a fraction
	MalformedConflictingFields MalformedKind = "conflicting_fields" // workspace_id != workspaceId or input_tokens != inputTokens
	MalformedInvalidTimestamp  MalformedKind = "invalid_timestamp"  // neither RFC3339 nor epoch milliseconds
)

// MalformedKinds lists every kind; the generator picks uniformly among them.
var MalformedKinds = []MalformedKind{
	MalformedInvalidJSON, MalformedNotObject, MalformedMissingField, MalformedWrongType,
	MalformedNegativeCount, MalformedNonInteger, MalformedConflictingFields, MalformedInvalidTimestamp,
}

// dupCandidates is how many recent valid messages may be re-sent. It only
// needs to cover DuplicateMaxDistance; originals older than that are skipped.
const dupCandidates = 32

// maxJitter is how far an on-time event's timestamp may trail the stream
// clock: gateways batch and retry, so arrival order is only roughly time order.
const maxJitter = 2 * time.Second

// Late events trail the stream clock by lateMin to lateMax.
const (
	lateMin = time.Hour
	lateMax = 3 * time.Hour
)

type sent struct {
	index      int
	key, value []byte
}

// Generate emits cfg.Count messages, in order, and returns the totals a correct
// consumer computes from them. Given the same cfg it emits the same bytes.
//
// emit receives the Kafka key (the event id) and value of each message. It may
// keep both slices but must not modify them: a duplicate re-sends the same
// slices. If emit fails, Generate stops and returns the error with Expected
// covering the messages emitted so far.
//
// Generate fails before emitting anything if cfg is invalid, and stops with an
// error if an event time would be more than MaxFutureSkew past the time the
// message is sent (now, plus the pacing delay when cfg.Rate > 0).
func Generate(cfg Config, emit func(key, value []byte) error) (Expected, error) {
	exp := newExpected(cfg.Seed)
	if err := cfg.Validate(); err != nil {
		return exp, err
	}
	g := generator{
		r:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0x75736167652d726f)), // "usage-ro"
		cfg:      cfg,
		interval: cfg.Interval(),
		clock:    cfg.Start.UTC().Truncate(time.Millisecond),
		idPrefix: "evt_" + base32(splitmix(uint64(cfg.Seed))),
	}
	notAfter := time.Now().Add(MaxFutureSkew)
	recent := make([]sent, 0, dupCandidates)
	for i := range cfg.Count {
		if d, ok := g.duplicate(i, recent); ok {
			if err := emit(d.key, d.value); err != nil {
				return exp, fmt.Errorf("emit message %d: %w", i, err)
			}
			exp.Sent++
			exp.Duplicates++
			continue
		}
		var e event
		g.next(i, &e)
		limit := notAfter
		if cfg.Rate > 0 {
			limit = notAfter.Add(sendOffset(i, cfg.Rate))
		}
		if e.ts.After(limit) {
			return exp, fmt.Errorf("message %d: event time %s is more than %s ahead of its send time; move Start back",
				i, e.ts.Format(time.RFC3339), MaxFutureSkew)
		}
		var fault MalformedKind
		variant := 0
		if g.r.Float64() < cfg.MalformedRatio {
			fault = MalformedKinds[g.r.IntN(len(MalformedKinds))]
			variant = g.r.IntN(6) // divisible by the 2 and 3 variants of the kinds
			if fault == MalformedConflictingFields {
				e.chat = false
			}
		}
		key := []byte(e.id)
		value := appendEvent(make([]byte, 0, 512), &e, fault, variant)
		if err := emit(key, value); err != nil {
			return exp, fmt.Errorf("emit message %d: %w", i, err)
		}
		exp.Sent++
		if fault != "" {
			exp.Malformed++
			exp.MalformedByKind[fault]++
			continue
		}
		exp.add(&e)
		if len(recent) == dupCandidates {
			copy(recent, recent[1:])
			recent = recent[:dupCandidates-1]
		}
		recent = append(recent, sent{i, key, value})
	}
	return exp, nil
}

type generator struct {
	r        *rand.Rand
	cfg      Config
	interval time.Duration
	clock    time.Time // the stream's event clock, advanced per new event
	idPrefix string
}

// duplicate decides whether message i re-sends a recent valid message.
func (g *generator) duplicate(i int, recent []sent) (sent, bool) {
	if len(recent) == 0 || g.r.Float64() >= g.cfg.DuplicateRatio {
		return sent{}, false
	}
	// recent is in send order; keep only originals within DuplicateMaxDistance.
	first := 0
	for first < len(recent) && i-recent[first].index > DuplicateMaxDistance {
		first++
	}
	if first == len(recent) {
		return sent{}, false
	}
	return recent[first+g.r.IntN(len(recent)-first)], true
}

// next draws the event for message i.
func (g *generator) next(i int, e *event) {
	r := g.r
	g.clock = g.clock.Add(time.Duration((0.5 + r.Float64()) * float64(g.interval)))
	e.id = g.idPrefix + base32(uint64(i))
	e.ts = g.clock.Add(-time.Duration(r.Int64N(int64(maxJitter))))
	if r.Float64() < g.cfg.LateRatio {
		e.late = true
		e.ts = g.clock.Add(-lateMin - time.Duration(r.Int64N(int64(lateMax-lateMin))))
	}
	e.ts = e.ts.Truncate(time.Millisecond)

	ws := &workspaces[pick(r, workspaceCDF)]
	p := &ws.projects[r.IntN(len(ws.projects))]
	e.workspace, e.project, e.apiKey = ws.id, p.id, p.keys[r.IntN(len(p.keys))]
	e.model = &models[pick(r, modelCDF)]

	e.camel = r.Float64() < g.cfg.CamelRatio
	e.chat = e.model.kind != usageImage && r.Float64() < g.cfg.ChatRatio
	switch x := r.Float64(); {
	case x < epochShare:
		e.epochMs = true
	case x < epochShare+offsetShare:
		offsets := [...]int{-300, 60, 330, 540} // New York, Berlin, India, Tokyo
		e.tzOffset = offsets[r.IntN(len(offsets))]
	}
	e.omitTotal = r.Float64() < missingTotalShare

	if r.Float64() < errorShare {
		e.status = errorStatuses[r.IntN(len(errorStatuses))]
		e.latencyMs = logUniform(r, 3, 2000)
		if r.Float64() < errorWithUsage {
			e.usage.text = logUniform(r, 5, 2000)
			e.usage.input = e.usage.text
			e.usage.total = e.usage.input
		}
		return
	}
	e.status = 200
	e.omitStatus = r.Float64() < missingStatusShare
	e.latencyMs = logUniform(r, e.model.latencyLo, e.model.latencyHi)
	fillUsage(r, e.model, &e.usage)
}

// splitmix spreads a seed over 64 bits (SplitMix64 finalizer), so nearby seeds
// get unrelated id prefixes.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// base32 renders x as 13 Crockford base32 digits (the ULID alphabet).
func base32(x uint64) string {
	const digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [13]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[x&31]
		x >>= 5
	}
	return string(b[:])
}
