//go:build faults

package faults

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// F15's shape: many partitions of large events, and a memory limit the
// backlog exceeds.
const (
	// largePartitions is the partition count of F15's topic: every partition
	// has a fetch loop of its own, and the old per-partition queues were
	// multiplied by it.
	largePartitions = 24
	// largeEventBytes is the size of every F15 event: a valid event padded
	// to about 1 MB, below MAX_MESSAGE_BYTES (default 1 MiB) and below
	// largeTopicMaxBytes, so the consumer accepts every one of them.
	largeEventBytes = 1_000_000
	// largeTopicMaxBytes is the topic's max.message.bytes, set explicitly so
	// the case does not depend on the broker's default (1 MiB, too small for
	// an event plus its record batch framing).
	largeTopicMaxBytes = 2 << 20
	// largeMemoryLimit is F15's GOMEMLIMIT: below the suite's 256 MiB so the
	// short form's backlog (312 MB) is 1.5 times the limit. The fetch
	// budget (KAFKA_FETCH_BUFFER_BYTES, default) is a quarter of it, 48 MiB.
	largeMemoryLimit = 192 << 20
	// rssInterval is how often F15 samples the consumer's RSS; every
	// metricsEvery-th sample also reads its /metrics.
	rssInterval  = 200 * time.Millisecond
	metricsEvery = 5
)

// largeMetrics are the consumer's gauges whose peaks F15 reports, to tell
// where the memory goes: the aggregation state, the Go heap, what the Go
// runtime took from the OS, and the heap size the GC aims for.
var largeMetrics = []string{
	"usage_rollup_state_bytes",
	"go_memstats_heap_inuse_bytes",
	"go_memstats_sys_bytes",
	"go_memstats_next_gc_bytes",
}

// TestF15LargeEventBacklogDuringOutage fills all 24 partitions with ~1 MB
// events (312 MB in the short form, 960 MB in the full one: 1.5 and 4.8
// times the consumer's GOMEMLIMIT of 192 MiB), starts a consumer and
// blackholes ClickHouse as soon as its start-up steps are done, before it
// fetches anything. While ClickHouse stays away the consumer's RSS, sampled
// every 200 ms, must stay below GOMEMLIMIT (I8); after the heal it must
// catch up with exact sums.
//
// The case fails against the kafka-go Reader the consumer used before
// internal/partitionlog: that Reader fetched ahead into a queue of up to 100
// messages per partition, whatever their size, so with 24 partitions of
// 1 MB events it would hold up to 2.4 GB; here the whole backlog (13 or 40
// messages a partition) would sit in its queues, live and out of the GC's
// reach, while the writes were retried: at least 312 MB against a 192 MiB
// limit. The consumer must instead bound everything it keeps of fetched
// data, over all partitions, by its fetch budget (KAFKA_FETCH_BUFFER_BYTES,
// by default a quarter of GOMEMLIMIT) and leave the rest of the backlog in
// Kafka.
func TestF15LargeEventBacklogDuringOutage(t *testing.T) {
	perPartition := pick(13, 40)
	outage := pick(20*time.Second, 40*time.Second)
	want := int64(largePartitions*perPartition) * largeEventBytes
	s := newScenario(t, "F15", fmt.Sprintf("ClickHouse blackholed as a consumer starts on %d partitions holding %d MB of 1 MB events (%.1fx GOMEMLIMIT=%dMiB)",
		largePartitions, want/1e6, float64(want)/largeMemoryLimit, largeMemoryLimit>>20), largePartitions,
		scenarioOpt{topicConfigs: map[string]string{"max.message.bytes": strconv.Itoa(largeTopicMaxBytes)}})
	// Later entries win: this replaces the suite's GOMEMLIMIT.
	s.env = append(s.env, fmt.Sprintf("GOMEMLIMIT=%dMiB", largeMemoryLimit>>20))
	cfg := genConfig(115, largePartitions*perPartition, 0)
	cfg.MalformedRatio = 0 // padding would change how some malformed messages are rejected
	exp, backlog, err := s.produceLarge(cfg)
	if err != nil {
		t.Fatalf("produce large events: %v", err)
	}
	s.addExpected(&exp)

	// The consumer does not start without ClickHouse (its start-up steps
	// retry), so the outage begins right after them, before the consumer
	// joins the group and fetches anything.
	px := s.chProxy()
	c := s.start("CLICKHOUSE_ADDR=" + px.Addr())
	waitOutput(t, c, servingMsg, 30*time.Second)
	px.Blackhole()
	cutAt := time.Now()
	mem := sampleMemory(t, c)
	waitAssigned(t, c, largePartitions, 60*time.Second)
	if limit, ok, err := c.metric("go_gc_gomemlimit_bytes"); err == nil && ok && int64(limit) != largeMemoryLimit {
		t.Fatalf("the consumer runs with a memory limit of %.0f bytes, want %d", limit, int64(largeMemoryLimit))
	}
	time.Sleep(time.Until(cutAt.Add(outage)))
	lag := s.totalLag()
	read, _, _ := c.metric("usage_rollup_consumed_bytes_total")
	rss, peaks := mem.finish()
	px.Heal()
	s.markHealed()

	if len(rss) < 4 {
		t.Fatalf("only %d RSS samples of the consumer during the outage", len(rss))
	}
	var diffs []string
	if lag >= 0 && lag < int64(exp.Sent) {
		diffs = append(diffs, fmt.Sprintf("only %d of %d messages uncommitted at the outage's end: the consumer wrote before the cut", lag, exp.Sent))
	}
	first, second := slices.Max(rss[:len(rss)/2]), slices.Max(rss[len(rss)/2:])
	peak := max(first, second)
	if peak >= largeMemoryLimit {
		diffs = append(diffs, fmt.Sprintf("RSS peaked at %.1f MiB, GOMEMLIMIT %d MiB", mib(peak), largeMemoryLimit>>20))
	}
	s.res.check(t, "I8 memory bounded", diffs, fmt.Sprintf(
		"peak RSS %.1f MiB, GOMEMLIMIT %d MiB (first half %.1f, second half %.1f, %d samples every %s) during a %s outage; "+
			"backlog %d MB (%d events of %d bytes, %.1fx GOMEMLIMIT), %d messages uncommitted at the outage's end",
		mib(peak), largeMemoryLimit>>20, mib(first), mib(second), len(rss), rssInterval,
		outage, backlog/1e6, exp.Sent, largeEventBytes, float64(backlog)/largeMemoryLimit, lag))
	s.res.note(t, "during the outage the consumer read %.0f MB of record values (fetch budget a quarter of GOMEMLIMIT, %d MiB)",
		read/1e6, largeMemoryLimit>>22)
	s.res.note(t, "peaks from /metrics during the outage: usage_rollup_state_bytes %.1f MiB, go_memstats_heap_inuse_bytes %.1f MiB, go_memstats_sys_bytes %.1f MiB, go_memstats_next_gc_bytes %.1f MiB",
		peaks[largeMetrics[0]]/(1<<20), peaks[largeMetrics[1]]/(1<<20), peaks[largeMetrics[2]]/(1<<20), peaks[largeMetrics[3]]/(1<<20))

	s.waitCaughtUp(recoveryBound)
	s.verify(verifyOpts{})
	s.stopAll(c)
}

// servingMsg is the consumer's log message once its start-up steps that
// need ClickHouse (connect, migrate, record the topic's layout) are done and
// it is about to join the group.
const servingMsg = `"message":"serving /metrics`

// waitOutput waits until c's output contains s.
func waitOutput(t *testing.T, c *consumer, s string, limit time.Duration) {
	t.Helper()
	for start := time.Now(); !strings.Contains(c.out.String(), s); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > limit || !c.alive() {
			t.Fatalf("%s did not log %s within %s", c.name, s, limit)
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// produceLarge writes the generated stream with every event padded to
// largeEventBytes, one round of largePartitions messages at a time so the
// test does not hold the backlog itself. It returns the generator's totals
// and the bytes of record values written.
func (s *scenario) produceLarge(cfg loadgen.Config) (loadgen.Expected, int64, error) {
	w := &kafka.Writer{
		// Its own transport: the shared default one caches metadata for 6 s
		// and would not know a topic created just now.
		Transport: &kafka.Transport{ClientID: "usage-rollup-faults"},
		Addr:      kafka.TCP(s.svc.Brokers...), Topic: s.topic, Balancer: &keyRoundRobin{seen: map[string]int{}},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond,
		// One event per record batch: two could exceed the topic's
		// max.message.bytes, which bounds a batch, not a record.
		BatchBytes: largeEventBytes + 64<<10,
	}
	defer w.Close()
	var buf []kafka.Message
	var written int64
	flush := func() error {
		err := writeRetrying(s.ctx, w, buf)
		buf = buf[:0]
		return err
	}
	exp, err := loadgen.Generate(cfg, func(key, value []byte) error {
		padded, err := padEvent(value, largeEventBytes)
		if err != nil {
			return err
		}
		buf = append(buf, kafka.Message{Key: key, Value: padded})
		written += int64(len(padded))
		if len(buf) < largePartitions {
			return nil
		}
		return flush()
	})
	if err == nil && len(buf) > 0 {
		err = flush()
	}
	return exp, written, err
}

// padEvent returns a copy of a valid event padded to size bytes with a field
// the decoder does not know and therefore ignores (docs/event-contract.md,
// "Unknown fields, at any level, are ignored").
func padEvent(value []byte, size int) ([]byte, error) {
	const open, closeField = `{"padding":"`, `",`
	n := size - len(value) - len(open) - len(closeField) + 1 // value's own '{' is replaced
	if len(value) < 2 || value[0] != '{' || n < 0 {
		return nil, fmt.Errorf("cannot pad %q to %d bytes", value, size)
	}
	out := make([]byte, 0, size)
	out = append(out, open...)
	out = append(out, bytes.Repeat([]byte{'x'}, n)...)
	out = append(out, closeField...)
	return append(out, value[1:]...), nil
}

// keyRoundRobin sends each new key to the next partition in turn and a key
// seen before to that key's partition: every partition gets the same number
// of new events, and a duplicate (loadgen re-sends an event with its key)
// lands with its original, as with a key hash.
type keyRoundRobin struct {
	mu   sync.Mutex
	next int
	seen map[string]int
}

func (b *keyRoundRobin) Balance(msg kafka.Message, partitions ...int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.seen[string(msg.Key)]; ok && slices.Contains(partitions, p) {
		return p
	}
	p := partitions[b.next%len(partitions)]
	b.next++
	b.seen[string(msg.Key)] = p
	return p
}

// memorySampler samples a consumer's RSS every rssInterval and, every
// metricsEvery-th time, the peaks of largeMetrics on its /metrics.
type memorySampler struct {
	stop, done chan struct{}
	once       sync.Once
	rss        []int64
	peaks      map[string]float64
}

// sampleMemory starts sampling c; the test's cleanup stops it if the case
// ends before finish.
func sampleMemory(t *testing.T, c *consumer) *memorySampler {
	m := &memorySampler{stop: make(chan struct{}), done: make(chan struct{}), peaks: map[string]float64{}}
	go m.run(c)
	t.Cleanup(func() { m.finish() })
	return m
}

func (m *memorySampler) run(c *consumer) {
	defer close(m.done)
	tick := time.NewTicker(rssInterval)
	defer tick.Stop()
	for i := 0; ; i++ {
		if v, err := rssBytes(c.pid()); err == nil {
			m.rss = append(m.rss, v)
		}
		if i%metricsEvery == 0 {
			for _, name := range largeMetrics {
				if v, ok, err := c.metric(name); err == nil && ok {
					m.peaks[name] = max(m.peaks[name], v)
				}
			}
		}
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
	}
}

// finish stops sampling and returns the RSS samples and the metrics' peaks.
func (m *memorySampler) finish() ([]int64, map[string]float64) {
	m.once.Do(func() { close(m.stop) })
	<-m.done
	return m.rss, m.peaks
}
