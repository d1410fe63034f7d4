package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/usage-rollup/usage-rollup/internal/bench"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// Steady mode: a live stream at a fixed rate instead of a preloaded backlog.
// It measures what the batch mode cannot: how many INSERTs and parts
// ClickHouse gets per second while the consumer keeps up, and how long an
// event takes to become queryable.
const (
	// markerEvery is how often the producer sends a marker event, the
	// freshness samples: 60 in a one-minute window.
	markerEvery = time.Second
	// markerWait bounds the wait, after the window, for its last markers to
	// become visible: a few flush intervals.
	markerWait = 60 * time.Second
	// readyTimeout bounds the consumer's start until /readyz answers 200
	// (group join and assignment of up to 64 partitions).
	readyTimeout = 2 * time.Minute
	// freshnessView is what analysts query; a marker counts as queryable
	// when this view returns it.
	freshnessView = "usage_1m"
)

// steadyConsumer is one consumer binary the steady mode runs.
type steadyConsumer struct {
	key, label, binary string
}

func runSteady(ctx context.Context, cfg config, k *bench.Kafka, ch *bench.ClickHouse, runID, logDir string, stdout io.Writer) error {
	var consumers []steadyConsumer
	if cfg.baseline != "" {
		consumers = append(consumers, steadyConsumer{"base", cfg.baselineLabel, cfg.baseline})
	}
	consumers = append(consumers, steadyConsumer{"new", cfg.consumerLabel, cfg.consumer})
	var results []bench.SteadyResult
	for _, p := range cfg.partitions {
		for _, c := range consumers {
			t := &topicRun{cfg: cfg, k: k, ch: ch, runID: runID, logDir: logDir, partitions: p, dbPrefix: steadyDBPrefix,
				topic: fmt.Sprintf("%s%s-p%d-%s", steadyTopicPrefix, runID, p, c.key)}
			r, err := t.runSteady(ctx, c)
			if err != nil {
				return fmt.Errorf("steady, %s, p=%d: %w", c.label, p, err)
			}
			results = append(results, r)
		}
	}
	path := filepath.Join(cfg.outDir, "steady-"+runID+".md")
	err := publish(ctx, ch, stdout, path, logDir,
		func(w io.Writer) error { return bench.WriteSteadyTable(w, results) },
		func(chVersion string, table []byte) error {
			return writeSteadyReport(path, cfg, consumers, runID, chVersion, table, results)
		})
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Missing > 0 {
			return fmt.Errorf("%s, P=%d: %d markers never became visible in %s; see %s", r.Consumer, r.Partitions, r.Missing, freshnessView, path)
		}
	}
	return nil
}

// runSteady runs one consumer on a fresh topic, group and database while
// producing live, and measures the window after the warm-up.
func (t *topicRun) runSteady(ctx context.Context, c steadyConsumer) (bench.SteadyResult, error) {
	res := bench.SteadyResult{Consumer: c.label, Partitions: t.partitions}
	pipeline := "steady_" + c.key
	db, group := t.name(pipeline)
	logPath := t.logPath(pipeline)
	if _, n, err := loadgen.EnsureTopic(ctx, t.cfg.brokers, t.topic, t.partitions); err != nil {
		return res, err
	} else if n != t.partitions {
		return res, fmt.Errorf("topic %s has %d partitions, want %d", t.topic, n, t.partitions)
	}
	addr, err := bench.FreeAddr()
	if err != nil {
		return res, err
	}
	r := bench.Rollup{
		Binary: c.binary, Brokers: t.cfg.brokers, ClickHouse: t.cfg.clickhouse,
		Database: db, Topic: t.topic, Group: group, Env: t.cfg.consumerEnv, MetricsAddr: addr,
	}
	if err := r.Migrate(ctx); err != nil {
		return res, err
	}
	if err := t.ch.CreateInsertProbe(ctx, db, bench.ProbedTables); err != nil {
		return res, fmt.Errorf("insert probe: %w", err)
	}
	if res.ClickHouseIdle, err = t.settle(ctx); err != nil {
		return res, err
	}
	p, err := r.Start(logPath)
	if err != nil {
		return res, err
	}
	// The consumer's exit ends everything below early; its error is the
	// one to report.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.Exited():
			cancel()
		case <-runCtx.Done():
		}
	}()
	res, err = t.steadyWindow(runCtx, res, p, addr, db, c.key)
	select {
	case <-p.Exited():
		err = errors.Join(err, fmt.Errorf("consumer exited during the run (%v); log: %s", p.Err(), logPath))
	default:
	}
	if serr := p.Stop(); serr != nil && err == nil {
		err = fmt.Errorf("consumer exit after SIGTERM: %w (log: %s)", serr, logPath)
	}
	if err != nil {
		return res, err
	}
	// With the consumer gone, nothing inserts: merging must leave the
	// block numbers where they are.
	if _, err := t.ch.WaitMerges(ctx, t.dbPrefix); err != nil {
		return res, err
	}
	for _, table := range []string{"usage_rollup_1m", "usage_rollup_1h", "usage_chunks"} {
		m, err := t.ch.VerifyMergesKeepBlockNumbers(ctx, db, table)
		if err != nil {
			return res, err
		}
		res.Merges = append(res.Merges, m)
	}
	lat := res.Latencies
	logf("p=%d %s: %.1f events/s; INSERTs/s %.2f (1m) %.2f (all); parts/s %.2f (1m) %.2f (all); freshness p50 %s p99 %s (%d markers, %d missing)",
		t.partitions, c.label, float64(res.Events)/res.Window.Seconds(),
		float64(res.Inserts["usage_rollup_1m"])/res.Window.Seconds(), float64(sumCounts(res.Inserts))/res.Window.Seconds(),
		float64(res.Parts["usage_rollup_1m"])/res.Window.Seconds(), float64(sumCounts(res.Parts))/res.Window.Seconds(),
		bench.Percentile(lat, 0.5).Round(time.Millisecond), bench.Percentile(lat, 0.99).Round(time.Millisecond), len(lat), res.Missing)
	return res, nil
}

// steadyWindow produces for warm-up plus window, measures the window, and
// waits for the window's markers to become visible.
func (t *topicRun) steadyWindow(ctx context.Context, res bench.SteadyResult, p *bench.Process, addr, db, key string) (bench.SteadyResult, error) {
	readyCtx, cancelReady := context.WithTimeout(ctx, readyTimeout)
	begin := time.Now()
	err := bench.WaitOK(readyCtx, addr, "/readyz")
	cancelReady()
	if err != nil {
		return res, err
	}
	logf("p=%d %s: consumer ready in %s", t.partitions, res.Consumer, time.Since(begin).Round(time.Millisecond))

	markers := bench.NewMarkers()
	start := time.Now()
	from, to := start.Add(t.cfg.warmup), start.Add(t.cfg.warmup+t.cfg.duration)
	prod := &bench.Steady{
		Brokers: t.cfg.brokers, Topic: t.topic, Gen: steadyGenerator(t.cfg, start), MarkerEvery: markerEvery,
		MarkerPrefix: fmt.Sprintf("mk_%s_p%d_%s", t.runID, t.partitions, key), Markers: markers,
	}
	g, gctx := errgroup.WithContext(ctx)
	watchCtx, stopWatch := context.WithCancel(gctx)
	defer stopWatch()
	g.Go(func() error { return prod.Run(gctx, to) })
	g.Go(func() error { return markers.Watch(watchCtx, t.ch, quote(db)+"."+freshnessView) })

	measure := func() error {
		if err := bench.SleepUntil(gctx, from); err != nil {
			return err
		}
		before, err := t.snapshot(gctx, db, p.Pid(), prod)
		if err != nil {
			return err
		}
		chCPU := bench.StartCPU(t.cfg.clickhousePID)
		if err := bench.SleepUntil(gctx, to); err != nil {
			return err
		}
		after, err := t.snapshot(gctx, db, p.Pid(), prod)
		if err != nil {
			return err
		}
		if res.ClickHouseCPU, res.HasClickHouse, err = chCPU.Stop(); err != nil {
			return err
		}
		res.Window = after.at.Sub(before.at)
		res.Events = after.events - before.events
		res.Inserts = diff(after.inserts, before.inserts)
		res.Parts = diff(after.blocks, before.blocks)
		res.ConsumerCPU = after.cpu - before.cpu
		res.Memory, err = bench.ReadMemory(p.Pid())
		if err != nil {
			return err
		}
		// The last markers of the window: wait until they are visible.
		deadline := time.Now().Add(markerWait)
		for markers.Pending(from, to) > 0 && time.Now().Before(deadline) {
			if err := bench.SleepUntil(gctx, time.Now().Add(bench.MarkerPoll)); err != nil {
				return err
			}
		}
		stopWatch()
		return nil
	}
	g.Go(measure)
	err = g.Wait()
	res.Latencies, res.Missing = markers.Latencies(from, to)
	return res, err
}

// steadySnapshot is one reading of the counters the window subtracts.
type steadySnapshot struct {
	at      time.Time
	inserts map[string]uint64
	blocks  map[string]uint64
	cpu     float64
	events  int64
}

func (t *topicRun) snapshot(ctx context.Context, db string, pid int, prod *bench.Steady) (steadySnapshot, error) {
	var s steadySnapshot
	var err error
	s.at, s.events = time.Now(), prod.Sent()
	if s.inserts, s.blocks, err = t.ch.Counters(ctx, db); err != nil {
		return s, err
	}
	s.cpu, err = bench.CPUSeconds(pid)
	return s, err
}

// diff is after - before, per key.
func diff(after, before map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// steadyGenerator is the live stream: the batch mode's clean event mix, at
// cfg.rate events per second, with event time following wall time from start.
func steadyGenerator(cfg config, start time.Time) loadgen.Config {
	g := loadgen.DefaultConfig()
	g.Seed, g.Rate, g.Start = cfg.seed, cfg.rate, start
	g.DuplicateRatio, g.LateRatio, g.MalformedRatio, g.CamelRatio, g.ChatRatio = 0, 0, 0, 0, 0
	return g
}

// quote backquotes an identifier.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
