//go:build faults

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// poisonPrefix marks the keys of hand-made poison messages: the key says
// which rejection reason the message must get.
const poisonPrefix = "poison/"

// poisonKinds are the hand-made poison messages and the reason each must be
// rejected with (docs/event-contract.md).
var poisonKinds = []struct {
	reason string
	value  func(now time.Time) []byte
}{
	{"invalid_json", func(now time.Time) []byte { return []byte(`{"id":"p","timestamp":"` + now.Format(time.RFC3339)) }},
	{"invalid_json", func(time.Time) []byte { return []byte{0xff, 0xfe, 0x00, 'g', 'a', 'r', 'b', 'a', 'g', 'e'} }},
	{"wrong_type", func(now time.Time) []byte {
		return bytes.Replace(validEvent(now, "p-type"), []byte(`"workspace_id":"ws_poison"`), []byte(`"workspace_id":4711`), 1)
	}},
	{"wrong_type", func(now time.Time) []byte {
		return bytes.Replace(validEvent(now, "p-type2"), []byte(`"output_tokens":5`), []byte(`"output_tokens":"5"`), 1)
	}},
	{"negative_count", func(now time.Time) []byte {
		return bytes.Replace(validEvent(now, "p-neg"), []byte(`"output_tokens":5`), []byte(`"output_tokens":-5`), 1)
	}},
	{"future_timestamp", func(now time.Time) []byte { return validEvent(now.Add(72*time.Hour), "p-future") }},
	{"conflicting_fields", func(now time.Time) []byte {
		return bytes.Replace(validEvent(now, "p-conflict"), []byte(`"workspace_id":"ws_poison"`),
			[]byte(`"workspace_id":"ws_poison","workspaceId":"ws_other"`), 1)
	}},
	{"conflicting_fields", func(now time.Time) []byte {
		return bytes.Replace(validEvent(now, "p-conflict2"), []byte(`"output_tokens":5`),
			[]byte(`"output_tokens":5,"outputTokens":6`), 1)
	}},
	// 5 MB: above MAX_MESSAGE_BYTES (1 MiB), below the topic's max.message.bytes.
	{"oversized", func(now time.Time) []byte {
		return bytes.Replace(validEvent(now, "p-big"), []byte(`"proj_poison"`),
			[]byte(`"`+strings.Repeat("x", 5<<20)+`"`), 1)
	}},
}

// validEvent is a well-formed event that the poison kinds break in one place.
func validEvent(ts time.Time, id string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"timestamp":%q,"workspace_id":"ws_poison","project_id":"proj_poison",`+
		`"api_key_id":"key_poison","provider":"openai","model":"gpt-4o","endpoint":"chat.completions","status_code":200,`+
		`"latency_ms":100,"usage":{"input_tokens":10,"output_tokens":5,"total_tokens":15}}`, id, ts.UTC().Format(time.RFC3339Nano)))
}

// produceCustom writes a generated stream with its own writer: bal picks the
// partitions, and inject(i) may add messages after generated message i. It
// returns the generator's expected totals and how many messages were injected.
func (s *scenario) produceCustom(cfg loadgen.Config, bal kafka.Balancer, inject func(i int) []kafka.Message) (loadgen.Expected, int, error) {
	w := &kafka.Writer{
		// Its own transport: kafka-go's shared default one caches cluster
		// metadata for 6 s and would not know a topic created just now.
		Transport: &kafka.Transport{ClientID: "usage-rollup-faults"},
		Addr:      kafka.TCP(s.svc.Brokers...), Topic: s.topic, Balancer: bal,
		RequiredAcks: kafka.RequireAll, BatchSize: 500, BatchTimeout: 2 * time.Millisecond,
		// Room for the 5 MB poison message (kafka-go's default batch limit is 1 MB).
		BatchBytes: 16 << 20,
	}
	defer w.Close()
	var buf []kafka.Message
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := writeRetrying(s.ctx, w, buf)
		buf = buf[:0]
		return err
	}
	i, injected := 0, 0
	exp, err := loadgen.Generate(cfg, func(key, value []byte) error {
		buf = append(buf, kafka.Message{Key: key, Value: value})
		if inject != nil {
			extra := inject(i)
			injected += len(extra)
			buf = append(buf, extra...)
		}
		i++
		if len(buf) >= 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return exp, injected, err
}

// writeRetrying writes msgs and retries, a few times, only the messages that
// failed with a retriable error: right after a topic is created the writer's
// first metadata may not know it yet (UNKNOWN_TOPIC_OR_PARTITION).
func writeRetrying(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) error {
	for attempt := 0; ; attempt++ {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil || attempt == 20 {
			return err
		}
		var werrs kafka.WriteErrors
		if !errors.As(err, &werrs) {
			// The whole call failed before any message was sent (the
			// writer's topic lookup): retry all of them.
			var ke kafka.Error
			if !errors.As(err, &ke) || !ke.Temporary() {
				return err
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		var retry []kafka.Message
		for i, e := range werrs {
			if e == nil {
				continue
			}
			var ke kafka.Error
			if !errors.As(e, &ke) || !ke.Temporary() {
				return err
			}
			retry = append(retry, msgs[i])
		}
		msgs = retry
		time.Sleep(500 * time.Millisecond)
	}
}

// poisonFromLog finds the hand-made poison messages in the log read back,
// reason per offset key, and fails the test unless there are injected.
func (s *scenario) poisonFromLog(injected int) map[offsetKey]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	ends, err := s.adm.endOffsets(ctx, s.topic, int(s.partitions.Load()))
	if err != nil {
		s.t.Fatalf("read the log back for poison: %v", err)
	}
	log, err := s.adm.readLog(ctx, s.topic, ends)
	if err != nil {
		s.t.Fatalf("read the log back for poison: %v", err)
	}
	out := map[offsetKey]string{}
	for p, recs := range log {
		for _, r := range recs {
			if k, ok := strings.CutPrefix(string(r.key), poisonPrefix); ok {
				out[offsetKey{p, r.offset}] = strings.Split(k, "/")[0]
			}
		}
	}
	if len(out) != injected {
		s.t.Fatalf("found %d poison messages in the log, injected %d", len(out), injected)
	}
	return out
}

// TestF09PoisonMessages mixes hand-made poison into the stream: bad JSON,
// binary garbage, wrong types, negative counts, a 5 MB payload (the topic
// allows 8 MB messages), far-future timestamps and both spellings of a field
// in conflict. A consumer is killed mid-stream so poison is re-read too.
func TestF09PoisonMessages(t *testing.T) {
	s := newScenario(t, "F9", "poison messages: bad JSON, wrong types, negative counts, 5 MB, far future, conflicting spellings", 6,
		scenarioOpt{topicConfigs: map[string]string{"max.message.bytes": "8388608"}})
	reps := pick(2, 5)
	a, b := s.start(), s.start()
	now := time.Now()
	cfg := genConfig(109, pick(8_000, 24_000), 0)
	every := cfg.Count / (reps*len(poisonKinds) + 1)
	next := 0
	inject := func(i int) []kafka.Message {
		if i == 0 || i%every != 0 || next >= reps*len(poisonKinds) {
			return nil
		}
		k := poisonKinds[next%len(poisonKinds)]
		next++
		return []kafka.Message{{Key: []byte(fmt.Sprintf("%s%s/%d", poisonPrefix, k.reason, next)), Value: k.value(now)}}
	}
	done := make(chan struct{})
	var exp loadgen.Expected
	var injected int
	var perr error
	go func() {
		defer close(done)
		exp, injected, perr = s.produceCustom(cfg, &kafka.Hash{}, inject)
	}()
	time.Sleep(2 * time.Second)
	a.kill9()
	a = s.start()
	<-done
	if perr != nil {
		t.Fatalf("produce with poison (a broker refusing the 5 MB message would show here): %v", perr)
	}
	s.addExpected(&exp)
	s.markHealed()
	s.res.note(t, "%d poison messages injected (%d kinds x %d), incl. %d of 5 MB accepted by the broker (topic max.message.bytes=8388608)",
		injected, len(poisonKinds), reps, reps)
	s.waitCaughtUp(recoveryBound)
	s.verify(verifyOpts{poison: s.poisonFromLog(injected), extraRejected: injected})
	s.stopAll(a, b)
}

// skipPartition balances over every partition but one, which stays idle.
type skipPartition struct {
	inner kafka.Balancer
	idle  int
}

func (b skipPartition) Balance(msg kafka.Message, partitions ...int) int {
	use := make([]int, 0, len(partitions))
	for _, p := range partitions {
		if p != b.idle {
			use = append(use, p)
		}
	}
	return b.inner.Balance(msg, use...)
}

// TestF11OutOfOrderAndIdlePartition sends a quarter of the events 1-3 hours
// behind the stream (well past ALLOWED_LATENESS=10m), the rest with seconds
// of jitter, and leaves one partition without any record. Late events must
// land in their true windows and be counted as late exactly (I6); the idle
// partition must not hold anything back.
func TestF11OutOfOrderAndIdlePartition(t *testing.T) {
	const partitions, idle = 4, 3
	s := newScenario(t, "F11", "out-of-order events up to 3h late (lateness 10m), one idle partition", partitions)
	a := s.start("IDLE_PARTITION_TIMEOUT=5s")
	cfg := genConfig(111, pick(8_000, 24_000), 0)
	cfg.LateRatio = 0.25
	exp, _, err := s.produceCustom(cfg, skipPartition{inner: &kafka.Hash{}, idle: idle}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.addExpected(&exp)
	s.markHealed()
	s.waitCaughtUp(recoveryBound)
	v := s.verify(verifyOpts{})
	// One consumer that never restarted: the metric counts each event once.
	// The consumer exposes it from the start, so not reading it fails too.
	late, ok, err := a.metric("usage_rollup_events_late_total")
	switch {
	case err != nil || !ok:
		s.res.fail(t, "I6 late metric", fmt.Sprintf("usage_rollup_events_late_total not read from %s (exposed %v, error %v)", a.name, ok, err))
	case uint64(late) != v.tr.late:
		s.res.fail(t, "I6 late metric", fmt.Sprintf("usage_rollup_events_late_total = %.0f, log has %d late events", late, v.tr.late))
	default:
		s.res.pass("I6 late metric", fmt.Sprintf("usage_rollup_events_late_total = %d", v.tr.late))
	}
	s.res.note(t, "%d of %d accepted events were generated 1-3h late; the log-derived watermark rule finds %d late",
		exp.Mix.Late, exp.Accepted, v.tr.late)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if ok, _ := s.ch.hasColumn(ctx, "usage_progress", "idle"); ok {
		var closed time.Time
		var isIdle uint8
		err := s.ch.conn.QueryRow(ctx, "SELECT closed_through, idle FROM "+s.db+".usage_progress WHERE topic = ? AND `partition` = ?",
			s.topic, int32(idle)).Scan(&closed, &isIdle)
		if err != nil {
			s.res.note(t, "usage_progress has no row for the idle partition %d: %v", idle, err)
		} else {
			s.res.note(t, "usage_progress of idle partition %d: idle=%d, closed_through %s (%.0fs behind now)",
				idle, isIdle, closed.UTC().Format(time.RFC3339), time.Since(closed).Seconds())
		}
	}
	s.stopAll(a)
}

// deadLetterBound is how long F14 gives the consumer to reach the log end:
// the stream takes seconds, so only a stall (a dead letter retried forever)
// runs into it.
const deadLetterBound = 60 * time.Second

// TestF14DeadLetterTopicRefuses runs the consumer against a dead-letter topic
// that takes at most 1 MB per record batch (max.message.bytes) while the
// source topic takes 8 MB. Among the rejected messages are 5 MB of random
// bytes, which no codec shrinks under 1 MB, and 10 MB of JSON the producer
// compressed (gzip) to fit the source topic, which fits the dead-letter topic
// again only compressed; the rest (bad JSON, the generator's malformed
// messages) fit as they are. Before the fix, writeDeadLetters retried the
// refused writes forever and the partitions holding them stalled. Now the
// consumer must reach the log end, every rejected message must have one dead
// letter (one consumer, no replay), the 5 MB one truncated with its headers,
// and the truncated counter must say so.
func TestF14DeadLetterTopicRefuses(t *testing.T) {
	const sourceMax, deadLetterMax = 8 << 20, 1 << 20
	s := newScenario(t, "F14", "dead-letter topic refuses messages (its max.message.bytes 1 MB, the source's 8 MB): 5 MB random, 10 MB gzip-compressed, bad JSON", 3,
		scenarioOpt{
			topicConfigs:      map[string]string{"max.message.bytes": strconv.Itoa(sourceMax)},
			deadLetterConfigs: map[string]string{"max.message.bytes": strconv.Itoa(deadLetterMax)},
		})
	// Fetch more than the source topic allows, reject anything above 1 MiB.
	a := s.start(fmt.Sprintf("MAX_MESSAGE_BYTES=%d", 1<<20), fmt.Sprintf("KAFKA_FETCH_MAX_BYTES=%d", 16<<20))
	now := time.Now()
	random := make([]byte, 5<<20)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	compressible := bytes.Replace(validEvent(now, "p-zip"), []byte(`"proj_poison"`),
		[]byte(`"`+strings.Repeat("x", 10<<20)+`"`), 1)
	const randomKey, compressedKey = poisonPrefix + "oversized/random", poisonPrefix + "oversized/compressed"
	poison := []kafka.Message{{Key: []byte(randomKey), Value: random}}
	for i := range 6 {
		poison = append(poison, kafka.Message{Key: []byte(fmt.Sprintf("%sinvalid_json/%d", poisonPrefix, i)), Value: poisonKinds[i%2].value(now)})
	}
	cfg := genConfig(114, pick(3_000, 10_000), 0)
	every, next := cfg.Count/(len(poison)+1), 0
	inject := func(i int) []kafka.Message {
		if i == 0 || i%every != 0 || next >= len(poison) {
			return nil
		}
		next++
		return poison[next-1 : next]
	}
	exp, injected, err := s.produceCustom(cfg, &kafka.Hash{}, inject)
	if err != nil {
		t.Fatalf("produce with poison: %v", err)
	}
	if err := s.produceCompressed(kafka.Message{Key: []byte(compressedKey), Value: compressible}); err != nil {
		t.Fatalf("produce the compressed message: %v", err)
	}
	injected++
	s.addExpected(&exp)
	s.markHealed()
	s.res.note(t, "%d hand-made rejected messages: %d bytes random, %d bytes gzip-compressed by the producer, %d bad JSON; dead-letter topic max.message.bytes=%d, source %d",
		injected, len(random), len(compressible), injected-2, deadLetterMax, sourceMax)
	s.waitCaughtUp(deadLetterBound)

	v := s.verify(verifyOpts{poison: s.poisonFromLog(injected), extraRejected: injected})
	var diffs []string
	for k := range v.tr.rejected {
		recs := v.deadLetters[k]
		if len(recs) != 1 {
			diffs = append(diffs, fmt.Sprintf("partition %d offset %d: %d dead letters, want 1", k.partition, k.offset, len(recs)))
			continue
		}
		h := headerMap(recs[0].headers)
		switch string(recs[0].key) {
		case randomKey:
			if h[hdrTruncated] != "true" || h[hdrOriginalSize] != strconv.Itoa(len(random)) || len(recs[0].value) != aggregate.MaxRejectedPayload {
				diffs = append(diffs, fmt.Sprintf("the 5 MB random message: dead letter of %d bytes, truncated=%q, original size %q; want it truncated",
					len(recs[0].value), h[hdrTruncated], h[hdrOriginalSize]))
			}
		default:
			if h[hdrTruncated] != "" {
				diffs = append(diffs, fmt.Sprintf("partition %d offset %d (key %q): truncated, want it whole", k.partition, k.offset, recs[0].key))
			}
		}
	}
	s.res.check(t, "one dead letter per rejected message", diffs, fmt.Sprintf(
		"%d rejected messages, one dead letter each; the random one truncated to %d bytes, the compressed one whole (%d bytes)",
		len(v.tr.rejected), aggregate.MaxRejectedPayload, len(compressible)))

	var mdiffs []string
	for name, want := range map[string]float64{"usage_rollup_dead_letters_truncated_total": 1, "usage_rollup_dead_letters_dropped_total": 0} {
		got, ok, err := a.metric(name)
		if err != nil || !ok || got != want {
			mdiffs = append(mdiffs, fmt.Sprintf("%s = %v (exposed %v, err %v), want %v", name, got, ok, err, want))
		}
	}
	perm, _, _ := a.metric(`usage_rollup_dead_letter_errors_total{class="permanent"}`)
	s.res.check(t, "truncated counter", mdiffs, fmt.Sprintf("usage_rollup_dead_letters_truncated_total = 1, dropped = 0, permanent dead-letter errors = %.0f", perm))
	s.stopAll(a)
}

// produceCompressed writes msgs gzip-compressed, as a producer whose message
// fits the source topic only compressed.
func (s *scenario) produceCompressed(msgs ...kafka.Message) error {
	w := &kafka.Writer{
		Transport: &kafka.Transport{ClientID: "usage-rollup-faults"},
		Addr:      kafka.TCP(s.svc.Brokers...), Topic: s.topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond,
		Compression: kafka.Gzip,
		// kafka-go checks BatchBytes against the uncompressed size.
		BatchBytes: 16 << 20,
	}
	defer w.Close()
	return writeRetrying(s.ctx, w, msgs)
}
