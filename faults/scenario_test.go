//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/faultproxy"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// Settings every consumer of the suite runs with. Small chunks make every
// case cross many chunk boundaries, so restarts re-read and warm up chunks;
// the Kafka timeouts are the smallest the broker allows, so evictions happen
// within seconds.
const (
	chunkSize       = 400
	allowedLateness = 10 * time.Minute
	memoryCap       = 256 << 20 // GOMEMLIMIT of every consumer, bytes
	sessionTimeout  = 6 * time.Second
)

// short reports whether the CI form runs: fewer messages and repetitions.
func short() bool { return testing.Short() || os.Getenv("FAULTS_SHORT") == "1" }

// pick returns the short or the full value.
func pick[T any](shortV, fullV T) T {
	if short() {
		return shortV
	}
	return fullV
}

// scenarioOpt changes a scenario's defaults.
type scenarioOpt struct {
	topicConfigs map[string]string // topic-level configs at creation
	brokers      []string          // another broker than KAFKA_BROKERS (the suite's own, see ownbroker_test.go)
	// deadLetterConfigs are topic-level configs of the case's dead-letter
	// topic (DEAD_LETTER_TOPIC), e.g. a small max.message.bytes.
	deadLetterConfigs map[string]string
	// noDeadLetter runs the consumers without DEAD_LETTER_TOPIC.
	noDeadLetter bool
}

// scenario is one case's isolated world: its own topic, group and database,
// the consumers it started, and the measurements it reports.
type scenario struct {
	// sealing is set once a consumer runs with SEAL_IDLE_AFTER (startSealing).
	sealing    bool
	t          *testing.T
	ctx        context.Context
	svc        servicetest.Services
	topic      string
	group      string
	db         string
	deadLetter string // DEAD_LETTER_TOPIC of the consumers; empty: none (I9 n/a)
	partitions atomic.Int64
	adm        *admin
	rollups    *audit.Reader
	ch         *chReader
	env        []string
	res        *caseResult
	mon        *offsetMonitor
	healed     time.Time // when the last fault ended
	seq        int       // names consumers
	want       *loadgen.Expected
	producedAt time.Time
	// generatorVoid is set when a generator's write failed mid-batch: its
	// totals no longer describe the log, which stays the truth.
	generatorVoid bool
}

// newScenario creates the topic (with topic configs, if any), the database
// and the base environment, and starts the committed-offset monitor (I4).
func newScenario(t *testing.T, id, fault string, partitions int, o ...scenarioOpt) *scenario {
	t.Helper()
	var opt scenarioOpt
	if len(o) > 0 {
		opt = o[0]
	}
	svc := servicetest.Need(t)
	if opt.brokers != nil {
		svc.Brokers = opt.brokers
	}
	name := fmt.Sprintf("faults_%s_%d_%04d", strings.ToLower(id), time.Now().Unix(), rand.IntN(10_000))
	s := &scenario{
		t: t, ctx: context.Background(), svc: svc,
		topic: name, group: name, db: name,
		adm: newAdmin(svc.Brokers),
		res: register(id, fault),
	}
	t.Cleanup(s.adm.close)
	s.partitions.Store(int64(partitions))
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := s.adm.createTopic(ctx, s.topic, partitions, opt.topicConfigs); err != nil {
		t.Fatal(err)
	}
	if !opt.noDeadLetter {
		// One partition: I9 reads it back in one pass.
		s.deadLetter = name + "_dlq"
		if err := s.adm.createTopic(ctx, s.deadLetter, 1, opt.deadLetterConfigs); err != nil {
			t.Fatal(err)
		}
	}
	cfg := chconn.DefaultConfig()
	cfg.Addr, cfg.Database = []string{svc.ClickHouse}, s.db
	windows, err := aggregate.ParseWindows("1m,1h")
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := schema.Setup(ctx, cfg, schema.Config{Windows: windows}, zerolog.Nop())
	if err != nil {
		t.Fatalf("set up database %s: %v", s.db, err)
	}
	t.Cleanup(func() { conn.Close() })
	s.rollups = audit.New(conn, windows)
	if s.ch, err = openReader(svc.ClickHouse, s.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ch.close)
	s.env = []string{
		"KAFKA_BROKERS=" + strings.Join(svc.Brokers, ","),
		"KAFKA_TOPIC=" + s.topic,
		"KAFKA_GROUP_ID=" + s.group,
		"KAFKA_SESSION_TIMEOUT=" + sessionTimeout.String(),
		"KAFKA_HEARTBEAT_INTERVAL=1s",
		"KAFKA_REBALANCE_TIMEOUT=20s",
		"CLICKHOUSE_ADDR=" + svc.ClickHouse,
		"CLICKHOUSE_DATABASE=" + s.db,
		// Inserts are small; a dropped reply should time out in seconds.
		"CLICKHOUSE_INSERT_TIMEOUT=5s",
		"CLICKHOUSE_DIAL_TIMEOUT=3s",
		fmt.Sprintf("CHUNK_SIZE=%d", chunkSize),
		"FLUSH_INTERVAL=300ms",
		"SHUTDOWN_TIMEOUT=5s", // below KAFKA_SESSION_TIMEOUT
		// Recovery after an outage is measured; keep the retry backoff cap
		// short so it measures the pipeline, not a 30 s sleep.
		"WRITE_RETRY_MAX_BACKOFF=2s",
		"ALLOWED_LATENESS=" + allowedLateness.String(),
		fmt.Sprintf("GOMEMLIMIT=%dMiB", memoryCap>>20),
		"LOG_LEVEL=info",
	}
	if s.deadLetter != "" {
		s.env = append(s.env, "DEAD_LETTER_TOPIC="+s.deadLetter)
	}
	// Cleanups run last-in first-out: consumers (started later) are stopped
	// first, then I4 is recorded, then the case's outcome.
	t.Cleanup(func() { s.res.finish(t) })
	s.mon = startMonitor(s)
	t.Cleanup(s.mon.finish)
	t.Logf("topic/group/database %s, %d partitions", name, partitions)
	return s
}

// start runs a consumer with the scenario's environment plus extra.
func (s *scenario) start(extra ...string) *consumer {
	s.t.Helper()
	s.seq++
	return startConsumer(s.t, fmt.Sprintf("c%02d", s.seq), s.env, extra...)
}

// chProxy starts a fault proxy in front of ClickHouse.
func (s *scenario) chProxy() *faultproxy.Proxy {
	s.t.Helper()
	p, err := faultproxy.New("127.0.0.1:0", s.svc.ClickHouse)
	if err != nil {
		s.t.Fatal(err)
	}
	p.Start()
	s.t.Cleanup(func() { _ = p.Close() })
	return p
}

// production is a generator writing to the scenario's topic.
type production struct {
	done chan struct{}
	exp  loadgen.Expected
	err  error
}

// produce starts writing a seeded stream with loadgen.Produce.
func (s *scenario) produce(cfg loadgen.Config) *production {
	p := &production{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.exp, p.err = loadgen.Produce(s.ctx, s.svc.Brokers, s.topic, cfg)
	}()
	return p
}

// wait waits for the stream to be written and adds it to the case's ground truth.
func (s *scenario) wait(p *production, limit time.Duration) {
	s.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		s.t.Fatalf("producer did not finish within %s", limit)
	}
	if p.err != nil {
		s.t.Fatalf("produce: %v", p.err)
	}
	s.addExpected(&p.exp)
}

func (s *scenario) addExpected(e *loadgen.Expected) {
	s.producedAt = time.Now()
	if s.want == nil {
		w := *e
		w.ByWorkspaceModel = map[string]map[string]loadgen.Totals{}
		w.Sent, w.Accepted, w.Duplicates, w.Malformed = 0, 0, 0, 0
		s.want = &w
	}
	s.want.Sent += e.Sent
	s.want.Accepted += e.Accepted
	s.want.Duplicates += e.Duplicates
	s.want.Malformed += e.Malformed
	s.want.Mix.Late += e.Mix.Late
	for ws, byModel := range e.ByWorkspaceModel {
		if s.want.ByWorkspaceModel[ws] == nil {
			s.want.ByWorkspaceModel[ws] = map[string]loadgen.Totals{}
		}
		for m, tot := range byModel {
			sum := s.want.ByWorkspaceModel[ws][m]
			sum.Add(tot)
			s.want.ByWorkspaceModel[ws][m] = sum
		}
	}
	s.t.Logf("produced %d messages: %d distinct accepted, %d duplicates, %d malformed, %d late",
		e.Sent, e.Accepted, e.Duplicates, e.Malformed, e.Mix.Late)
}

// genConfig is a stream whose event time runs from about two hours ago at
// 50 events per second of event time, so it spans many minute windows and at
// least one hour boundary, with late events 1-3 hours behind.
func genConfig(seed int64, count int, rate float64) loadgen.Config {
	cfg := loadgen.DefaultConfig()
	cfg.Seed, cfg.Count, cfg.Rate = seed, count, rate
	cfg.EventInterval = 20 * time.Millisecond
	cfg.Start = time.Now().Add(-2 * time.Hour).Truncate(time.Minute).Add(-17 * time.Second)
	cfg.MalformedRatio = 0.02
	return cfg
}

// markHealed records that the fault ended now.
func (s *scenario) markHealed() { s.healed = time.Now() }

// lagState reads end offsets, committed offsets and written progress.
func (s *scenario) lagState(ctx context.Context) (string, error) {
	n := int(s.partitions.Load())
	if s.sealing {
		s.waitSealed(time.Minute)
	}
	ends, err := s.adm.endOffsets(ctx, s.topic, n)
	if err != nil {
		return "", err
	}
	committed, err := s.adm.committed(ctx, s.group, s.topic, n)
	if err != nil {
		return "", err
	}
	prog, err := s.ch.progress(ctx, s.topic)
	if err != nil {
		return "", err
	}
	for p := range n {
		if ends[p] == 0 {
			continue
		}
		if committed[p] != ends[p] || prog[p].next < ends[p] {
			return fmt.Sprintf("partition %d: end %d, committed %d, written up to %d", p, ends[p], committed[p], prog[p].next), nil
		}
	}
	return "", nil
}

// waitCaughtUp waits until every partition's committed offset equals its end
// offset and its progress is written up to it (lag zero), then records I5:
// the time from the fault's end (or the producer's, if later) to lag zero.
func (s *scenario) waitCaughtUp(bound time.Duration) time.Duration {
	s.t.Helper()
	from := s.healed
	if s.producedAt.After(from) {
		from = s.producedAt
	}
	if from.IsZero() {
		from = time.Now()
	}
	deadline := from.Add(bound)
	last := ""
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		state, err := s.lagState(ctx)
		cancel()
		if err == nil && state == "" {
			took := time.Since(from)
			s.res.recovery = took
			s.res.pass("I5 lag zero", fmt.Sprintf("lag zero %.1fs after the fault healed (bound %s)", took.Seconds(), bound))
			return took
		}
		if err != nil {
			last = err.Error()
		} else {
			last = state
		}
		if time.Now().After(deadline) {
			s.res.fail(s.t, "I5 lag zero", fmt.Sprintf("lag not zero %s after the fault healed: %s", bound, last))
			s.t.FailNow()
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// verifyOpts says what a case's checks may expect.
type verifyOpts struct {
	// poison are messages the case injected itself: reason per offset key,
	// filled in by the case after reading the log (see poisonFromLog).
	poison map[offsetKey]string
	// extraRejected is how many messages besides the generators' malformed
	// ones must be rejected.
	extraRejected int
	// skipGeneratorCheck skips the per-workspace/model comparison with the
	// generators when the log holds events they did not make.
	skipGeneratorCheck bool
}

// verified is what verify measured, for cases that compare two states.
type verified struct {
	tr     *truth
	groups map[string]map[groupKey]measures
	// deadLetters are the dead-letter topic's records by source offset.
	deadLetters map[offsetKey][]record
}

// verify checks I1, I2, I3, I4 (so far) and I6 against the log, once the
// consumers caught up.
func (s *scenario) verify(o verifyOpts) *verified {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	n := int(s.partitions.Load())
	ends, err := s.adm.endOffsets(ctx, s.topic, n)
	if err != nil {
		s.t.Fatal(err)
	}
	log, err := s.adm.readLog(ctx, s.topic, ends)
	if err != nil {
		s.t.Fatal(err)
	}
	tr := computeTruth(log, chunkSize, allowedLateness, eventsConfig())
	acc, rej, dup := tr.totals()
	s.t.Logf("log: %d records, %d accepted, %d rejected, %d duplicates, %d late", acc+rej+dup, acc, rej, dup, tr.late)
	if s.want != nil && !o.skipGeneratorCheck {
		if d := tr.crossCheck(s.want, o.extraRejected); len(d) > 0 {
			s.t.Fatalf("the log-derived truth disagrees with the generators (test bug):\n%s", summarize(d, 10))
		}
	}
	// The migrations create the late columns: without them I6 fails, it is
	// not a case to skip, and the reads below cannot run.
	if missing := s.missingLateColumns(ctx); len(missing) > 0 {
		s.res.fail(s.t, "I6 late counts", "no column "+strings.Join(missing, ", ")+" although the migrations create it")
		s.t.FailNow()
	}

	// I1: per workspace/model against the generators
	// (internal/testsupport/check), and per window start and full dimension
	// set against the log.
	var i1 []string
	if s.want != nil && !o.skipGeneratorCheck {
		for _, d := range s.checkDiff(ctx) {
			i1 = append(i1, d)
		}
	}
	v := &verified{tr: tr, groups: map[string]map[groupKey]measures{}}
	for w := range windowSizes {
		got, err := s.ch.groups(ctx, w, s.topic)
		if err != nil {
			s.t.Fatal(err)
		}
		v.groups[w] = got
		i1 = append(i1, diffGroups(w, tr.windows[w], got)...)
	}
	groups1m, groups1h := len(tr.windows["1m"]), len(tr.windows["1h"])
	s.res.check(s.t, "I1 exact sums", i1, fmt.Sprintf("%d accepted events in %d 1m and %d 1h groups exact", acc, groups1m, groups1h))

	// I2: per partition, the chunks' counts cover the log without gaps.
	prog, err := s.ch.progress(ctx, s.topic)
	if err != nil {
		s.t.Fatal(err)
	}
	var i2 []string
	for p := range n {
		pt, pr := tr.partitions[p], prog[p]
		got := pr.accepted + pr.rejected + pr.duplicates + pr.seals
		switch {
		case pt.end == 0 && pr.chunks == 0:
		case pr.next != pt.end || int64(got) != pt.end || pr.offsets != pt.end:
			i2 = append(i2, fmt.Sprintf("partition %d: log has offsets [0, %d); progress covers %d offsets up to %d and counts %d",
				p, pt.end, pr.offsets, pr.next, got))
		case pr.accepted != pt.accepted || pr.rejected != pt.rejected || pr.duplicates != pt.duplicates || pr.seals != pt.seals:
			i2 = append(i2, fmt.Sprintf("partition %d: accepted/rejected/duplicates/seals %d/%d/%d/%d, log says %d/%d/%d/%d",
				p, pr.accepted, pr.rejected, pr.duplicates, pr.seals, pt.accepted, pt.rejected, pt.duplicates, pt.seals))
		}
	}
	var seals uint64
	for _, pt := range tr.partitions {
		seals += pt.seals
	}
	i2Detail := fmt.Sprintf("%d offsets in %d partitions = accepted %d + rejected %d + duplicates %d", acc+rej+dup+seals, n, acc, rej, dup)
	if seals > 0 {
		i2Detail += fmt.Sprintf(" + seal records %d", seals)
	}
	s.res.check(s.t, "I2 no offset gaps", i2, i2Detail)

	// I3: one usage_rejected row per rejected offset, with the right reason.
	got, rows, err := s.ch.rejected(ctx, s.topic)
	if err != nil {
		s.t.Fatal(err)
	}
	var i3 []string
	if rows != len(got) {
		i3 = append(i3, fmt.Sprintf("usage_rejected has %d rows for %d offsets", rows, len(got)))
	}
	for k, reason := range tr.rejected {
		if g, ok := got[k]; !ok {
			i3 = append(i3, fmt.Sprintf("partition %d offset %d (%s) not in usage_rejected", k.partition, k.offset, reason))
		} else if g != reason {
			i3 = append(i3, fmt.Sprintf("partition %d offset %d rejected as %s, want %s", k.partition, k.offset, g, reason))
		}
	}
	for k, reason := range got {
		if _, ok := tr.rejected[k]; !ok {
			i3 = append(i3, fmt.Sprintf("partition %d offset %d rejected as %s but valid", k.partition, k.offset, reason))
		}
	}
	for k, reason := range o.poison {
		if got[k] != reason {
			i3 = append(i3, fmt.Sprintf("injected poison at partition %d offset %d: rejected as %q, want %q", k.partition, k.offset, got[k], reason))
		}
	}
	if s.want != nil && !o.skipGeneratorCheck && len(got) != s.want.Malformed+o.extraRejected {
		i3 = append(i3, fmt.Sprintf("%d rejected, generators injected %d", len(got), s.want.Malformed+o.extraRejected))
	}
	detail := fmt.Sprintf("%d rejected offsets = injected set", len(got))
	if len(o.poison) > 0 {
		detail += fmt.Sprintf(" (incl. %d hand-made poison messages)", len(o.poison))
	}
	s.res.check(s.t, "I3 rejected set", i3, detail)

	// I9: every rejected message on the dead-letter topic.
	if s.deadLetter != "" {
		v.deadLetters = s.checkDeadLetters(ctx, log, tr)
	} else {
		s.res.na("I9 dead letters", "consumers run without DEAD_LETTER_TOPIC")
	}

	// I6: late counts.
	var i6 []string
	var chLate uint64
	for _, pr := range prog {
		chLate += pr.late
	}
	if chLate != tr.late {
		i6 = append(i6, fmt.Sprintf("usage_chunk_progress.late sums to %d, log has %d late events", chLate, tr.late))
	}
	for w, groups := range v.groups {
		var sum uint64
		for _, m := range groups {
			sum += m.Late
		}
		if sum != tr.late {
			i6 = append(i6, fmt.Sprintf("usage_%s.late_events sums to %d, log has %d", w, sum, tr.late))
		}
	}
	s.res.check(s.t, "I6 late counts", i6, fmt.Sprintf("%d late events (allowed lateness %s) counted exactly", tr.late, allowedLateness))
	return v
}

// checkDiff compares usage_1m and usage_1h per workspace/model with the
// generators' expected totals, via audit.Reader.TotalsByWorkspaceModel and check.Diff.
func (s *scenario) checkDiff(ctx context.Context) []string {
	var out []string
	for w := range windowSizes {
		got, err := s.rollups.TotalsByWorkspaceModel(ctx, w, s.topic)
		if err != nil {
			return []string{err.Error()}
		}
		for _, d := range checkDiff(s.want, got) {
			out = append(out, "usage_"+w+" "+d)
		}
	}
	return out
}

// missingLateColumns returns the late-count columns I6 reads that the
// case's database lacks, as table.column.
func (s *scenario) missingLateColumns(ctx context.Context) []string {
	columns := [][2]string{{"usage_chunk_progress", "late"}}
	for w := range windowSizes {
		columns = append(columns, [2]string{"usage_" + w, "late_events"})
	}
	var missing []string
	for _, c := range columns {
		ok, err := s.ch.hasColumn(ctx, c[0], c[1])
		if err != nil {
			s.t.Fatalf("look up %s.%s: %v", c[0], c[1], err)
		}
		if !ok {
			missing = append(missing, c[0]+"."+c[1])
		}
	}
	slices.Sort(missing)
	return missing
}

// stopAll sends SIGTERM to every live consumer and requires clean exits.
func (s *scenario) stopAll(cs ...*consumer) {
	s.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		if !c.alive() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Term(40 * time.Second)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			s.t.Error(err)
		}
	}
}
