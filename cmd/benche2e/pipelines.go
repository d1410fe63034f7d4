package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/bench"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// topicRun is one preloaded topic and what every pipeline on it shares.
type topicRun struct {
	cfg        config
	k          *bench.Kafka
	ch         *bench.ClickHouse
	runID      string
	logDir     string
	topic      string
	partitions int
	// dbPrefix starts the names of the run's databases (per mode).
	dbPrefix   string
	start, end bench.Offsets
	exp        *loadgen.Expected
}

func (t *topicRun) name(pipeline string) (db, group string) {
	db = fmt.Sprintf("%s%s_p%d_%s", t.dbPrefix, t.runID, t.partitions, pipeline)
	return db, t.topic + "-" + pipeline
}

func (t *topicRun) logPath(pipeline string) string {
	return filepath.Join(t.logDir, fmt.Sprintf("p%d-%s.log", t.partitions, pipeline))
}

// measured is what a pipeline's run hands to finish.
type measured struct {
	elapsed     time.Duration
	consumerCPU float64
	hasConsumer bool
	chCPU       float64
	hasCH       bool
	// chIdle is the ClickHouse server's CPU rate (CPU-seconds per second)
	// just before the run, when no pipeline of the benchmark was running:
	// what other clients of the shared server add to chCPU.
	chIdle float64
	// memory is the process's resident set at catch-up.
	memory bench.Memory
}

// timed runs start, then waits for group to catch up, measuring wall time
// and CPU of the ClickHouse server and of the process (pid from start; 0 for
// none). It stops early if the process exits.
func (t *topicRun) timed(ctx context.Context, group string, start func() (*bench.Process, error)) (measured, *bench.Process, error) {
	var m measured
	chCPU := bench.StartCPU(t.cfg.clickhousePID)
	begin := time.Now()
	p, err := start()
	if err != nil {
		return m, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.timeout)
	defer cancel()
	if p != nil {
		go func() {
			select {
			case <-p.Exited():
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	waitErr := t.k.WaitCaughtUp(ctx, group, t.topic, t.end)
	m.elapsed = time.Since(begin)
	if p != nil {
		select {
		case <-p.Exited():
			return m, p, fmt.Errorf("process exited before catching up (%v); log: %s", p.Err(), t.logDir)
		default:
		}
		if m.consumerCPU, err = bench.CPUSeconds(p.Pid()); err != nil {
			return m, p, err
		}
		if m.memory, err = bench.ReadMemory(p.Pid()); err != nil {
			return m, p, err
		}
		m.hasConsumer = true
	}
	if waitErr != nil {
		return m, p, waitErr
	}
	m.chCPU, m.hasCH, err = chCPU.Stop()
	return m, p, err
}

// finish measures the stored results of a pipeline and builds its Result.
func (t *topicRun) finish(ctx context.Context, pipeline, db string, m measured, windows []bench.Window) (bench.Result, error) {
	r := bench.Result{
		Pipeline: pipeline, Partitions: t.partitions, Events: t.end.Total() - t.start.Total(),
		Elapsed: m.elapsed, ConsumerCPU: m.consumerCPU, HasConsumer: m.hasConsumer,
		ClickHouseCPU: m.chCPU, HasClickHouse: m.hasCH, ClickHouseIdle: m.chIdle,
		WantRequests: t.exp.Overall.Requests,
		Memory:       m.memory, HasMemory: m.hasConsumer,
	}
	// Rows and query times are read at rest, after the merges the run
	// started: more reproducible than whatever moment catch-up happened at.
	if _, err := t.ch.WaitMerges(ctx, t.dbPrefix); err != nil {
		return r, err
	}
	var err error
	if r.Windows, r.Problems, err = bench.Measure(ctx, t.ch, windows, t.cfg.queryRuns, t.exp); err != nil {
		return r, err
	}
	if r.DiskBytes, err = t.ch.DiskBytes(ctx, db); err != nil {
		return r, err
	}
	logf("p=%d %s: %d events in %s (%.0f/s), exact: %t, RSS at catch-up %.1f MiB (peak %.1f MiB)", t.partitions, pipeline, r.Events,
		r.Elapsed.Round(time.Millisecond), float64(r.Events)/r.Elapsed.Seconds(), len(r.Problems) == 0,
		float64(r.Memory.RSS)/(1<<20), float64(r.Memory.Peak)/(1<<20))
	return r, nil
}

func (t *topicRun) runRollup(ctx context.Context) (bench.Result, error) {
	db, group := t.name(keyRollup)
	addr, err := bench.FreeAddr()
	if err != nil {
		return bench.Result{}, err
	}
	r := bench.Rollup{
		Binary: t.cfg.consumer, Brokers: t.cfg.brokers, ClickHouse: t.cfg.clickhouse,
		Database: db, Topic: t.topic, Group: group, Env: t.cfg.consumerEnv, MetricsAddr: addr,
	}
	if t.cfg.cpuProfile > 0 {
		r.Env = append(slices.Clone(r.Env), "DEBUG_PPROF=true")
	}
	if t.cfg.compact {
		// Idle partitions are sealed soon after catch-up, so compaction can
		// fold every piece (the service's default is off).
		r.Env = append(slices.Clone(r.Env), "SEAL_IDLE_AFTER="+bench.SealIdleAfter.String())
	}
	begin := time.Now()
	if err := r.Migrate(ctx); err != nil {
		return bench.Result{}, err
	}
	logf("p=%d usage-rollup: migrations applied in %s", t.partitions, time.Since(begin).Round(time.Millisecond))
	idle, err := t.settle(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	// While the consumer runs: the groups gauge every second, and the CPU
	// profile when asked for. Both goroutines are waited for below.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	profileCtx, stopProfile := context.WithCancel(ctx)
	defer stopProfile()
	var (
		sampling    sync.WaitGroup
		maxGauges   = map[string]float64{}
		profileDone chan error // nil: no profile running
	)
	keepMax := func(g map[string]float64) {
		for k, v := range g {
			maxGauges[k] = max(maxGauges[k], v)
		}
	}
	m, p, err := t.timed(ctx, group, func() (*bench.Process, error) {
		p, err := r.Start(t.logPath(keyRollup))
		if err != nil {
			return nil, err
		}
		sampling.Go(func() {
			for bench.SleepUntil(sampleCtx, time.Now().Add(time.Second)) == nil {
				if g, err := bench.Gauges(sampleCtx, addr, memoryGauges...); err == nil {
					keepMax(g)
				}
			}
		})
		if t.cfg.cpuProfile > 0 {
			profileDone = make(chan error, 1)
			started := time.Now()
			go func() { profileDone <- t.profile(profileCtx, addr, started) }()
		}
		return p, nil
	})
	stopSampling()
	sampling.Wait()
	var gauges map[string]float64
	if err == nil {
		if g, gerr := bench.Gauges(ctx, addr, memoryGauges...); gerr == nil {
			gauges = g
			keepMax(g)
		}
	}
	if profileDone != nil {
		// Caught up: let the profile finish, stopping the consumer would cut
		// it off. Failed: cut it off.
		if err != nil {
			stopProfile()
		} else {
			logf("p=%d usage-rollup: caught up; waiting for the CPU profile to end", t.partitions)
		}
		if perr := <-profileDone; err == nil {
			err = perr
		}
	}
	windows := r.Windows()
	if err == nil && t.cfg.compact {
		// The consumer keeps running until its idle partitions closed the
		// last windows; compaction then runs with the consumer stopped.
		begin := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err = r.WaitClosed(wctx, t.ch, t.exp.MaxEventTime.Truncate(time.Hour).Add(time.Hour))
		if err == nil {
			err = r.WaitSealed(wctx, t.ch, t.partitions)
		}
		cancel()
		logf("p=%d usage-rollup: every window closed and every partition sealed %s after catch-up", t.partitions,
			time.Since(begin).Round(time.Second))
	}
	err = t.stop(p, err, "consumer", keyRollup)
	if err != nil {
		return bench.Result{}, fmt.Errorf("usage-rollup: %w", err)
	}
	m.chIdle = idle
	if t.cfg.compact {
		st, err := r.Compact(ctx, t.logPath(keyRollup+"-compact"))
		if err != nil {
			return bench.Result{}, fmt.Errorf("usage-rollup: %w", err)
		}
		logf("p=%d usage-rollup: %d compaction runs in %s: %d windows compacted, %d raw rows folded, %d deleted",
			t.partitions, st.Runs, st.Took.Round(time.Second), st.Compacted, st.Folded, st.Deleted)
		windows = r.CompactedWindows()
	}
	res, err := t.finish(ctx, bench.PipelineRollup, db, m, windows)
	res.Gauges, res.MaxGauges = gauges, maxGauges
	for _, name := range memoryGauges {
		logf("p=%d usage-rollup: %s %.0f at catch-up, at most %.0f", t.partitions, name, gauges[name], maxGauges[name])
	}
	return res, err
}

// memoryGauges are the consumer's metrics the batch mode reports with its
// RSS: rollup groups and their estimated bytes, and the Go heap.
var memoryGauges = []string{"usage_rollup_groups_in_memory", "usage_rollup_state_bytes", "go_memstats_heap_inuse_bytes"}

// profile fetches a CPU profile of cfg.cpuProfile from the consumer at addr
// (started at started), as soon as its HTTP server answers, into the run's
// log directory.
func (t *topicRun) profile(ctx context.Context, addr string, started time.Time) error {
	if err := bench.WaitOK(ctx, addr, "/livez"); err != nil {
		return err
	}
	path := filepath.Join(t.logDir, fmt.Sprintf("p%d-%s.cpu.pprof", t.partitions, keyRollup))
	logf("p=%d usage-rollup: CPU profile of %s starts %s after the consumer", t.partitions, t.cfg.cpuProfile,
		time.Since(started).Round(time.Millisecond))
	if err := bench.CPUProfile(ctx, addr, t.cfg.cpuProfile, path); err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	logf("p=%d usage-rollup: CPU profile in %s", t.partitions, path)
	return nil
}

func (t *topicRun) runEngine(ctx context.Context) (bench.Result, error) {
	db, group := t.name(keyEngine)
	e := bench.Engine{
		Database: db, Topic: t.topic, Group: group, Brokers: t.cfg.brokers, Consumers: t.cfg.engineConsumers,
	}
	begin := time.Now()
	if err := e.Setup(ctx, t.ch, t.k, t.start, t.end); err != nil {
		return bench.Result{}, fmt.Errorf("kafka engine setup: %w", err)
	}
	logf("p=%d Kafka engine: tables, views and group rewind in %s", t.partitions, time.Since(begin).Round(time.Millisecond))
	idle, err := t.settle(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	m, _, err := t.timed(ctx, group, func() (*bench.Process, error) { return nil, e.Start(ctx, t.ch) })
	// Stop polling the broker whatever happened: the next pipeline's
	// ClickHouse CPU must not include this one's consumers.
	if serr := e.Stop(ctx, t.ch); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return bench.Result{}, fmt.Errorf("kafka engine: %w", err)
	}
	m.chIdle = idle
	return t.finish(ctx, bench.PipelineEngine, db, m, e.Windows())
}

func (t *topicRun) runRaw(ctx context.Context) (bench.Result, error) {
	db, group := t.name(keyRaw)
	s := bench.RawSink{
		Brokers: t.cfg.brokers, Topic: t.topic, Group: group, ClickHouse: t.cfg.clickhouse,
		Database: db, BatchRows: t.cfg.rawBatch,
	}
	if err := s.Setup(ctx, t.ch); err != nil {
		return bench.Result{}, err
	}
	idle, err := t.settle(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return bench.Result{}, err
	}
	args := []string{rawSinkCommand, "-brokers", strings.Join(s.Brokers, ","), "-topic", s.Topic, "-group", s.Group,
		"-clickhouse", s.ClickHouse, "-database", s.Database, "-batch", strconv.Itoa(s.BatchRows)}
	m, p, err := t.timed(ctx, group, func() (*bench.Process, error) {
		return bench.StartProcess(t.logPath(keyRaw), bench.BaseEnv(), self, args...)
	})
	err = t.stop(p, err, "raw sink", keyRaw)
	if err != nil {
		return bench.Result{}, fmt.Errorf("raw sink: %w", err)
	}
	m.chIdle = idle
	return t.finish(ctx, bench.PipelineRaw, db, m, s.Windows())
}

// stop sends SIGTERM to p, when it started, and returns err or, if err is
// nil, p's failure to exit cleanly, naming who and the log of key.
func (t *topicRun) stop(p *bench.Process, err error, who, key string) error {
	if p == nil {
		return err
	}
	if serr := p.Stop(); serr != nil && err == nil {
		err = fmt.Errorf("%s exit after SIGTERM: %w (log: %s)", who, serr, t.logPath(key))
	}
	return err
}

// idleSample is how long settle samples the ClickHouse server's CPU rate
// with no pipeline running.
const idleSample = 2 * time.Second

// settle waits for background merges of earlier pipelines to finish, so
// that their CPU is not charged to the next one, then samples the server's
// CPU rate for idleSample: the share of the next figure that other clients
// of the shared server cause.
func (t *topicRun) settle(ctx context.Context) (idle float64, err error) {
	begin := time.Now()
	ok, err := t.ch.WaitMerges(ctx, t.dbPrefix)
	if err != nil {
		return 0, err
	}
	if !ok {
		logf("merges still running after the settle bound; the next ClickHouse CPU figure includes them")
	}
	m := bench.StartCPU(t.cfg.clickhousePID)
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(idleSample):
	}
	sec, _, err := m.Stop()
	logf("settled in %s; ClickHouse CPU with no pipeline running: %.2f CPU-s/s", time.Since(begin).Round(time.Millisecond), sec/idleSample.Seconds())
	return sec / idleSample.Seconds(), err
}
