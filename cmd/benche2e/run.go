package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/bench"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// Name prefixes of everything a run creates. A run first removes whatever
// carries its mode's prefixes: the previous run's topics, groups and
// databases. The steady mode has its own, so that a batch run started
// meanwhile (say from another work tree against the same services) does not
// delete a steady run's topics under it, nor the other way round.
const (
	topicPrefix       = "bench-e2e-"
	dbPrefix          = "bench_e2e_"
	steadyTopicPrefix = "bench-steady-"
	steadyDBPrefix    = "bench_steady_"
)

// eventSpan is the event time the preloaded events cover: two whole hours,
// so 120 one-minute and 2 one-hour windows. The generator's clock advances by
// uniform gaps, so the span ends a little early (spanMargin, > 3 standard
// deviations of the sum of gaps at a million events) to stay inside them.
const (
	eventSpan  = 2 * time.Hour
	spanMargin = time.Minute
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benche2e: %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseConfig(args, os.Stderr)
	if err != nil {
		return err
	}
	runID := time.Now().UTC().Format("20060102t150405")
	logDir := filepath.Join(cfg.outDir, "e2e-"+runID)
	if cfg.mode == modeSteady {
		logDir = filepath.Join(cfg.outDir, "steady-"+runID)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	k, err := bench.OpenKafka(cfg.brokers)
	if err != nil {
		return err
	}
	defer k.Close()
	ch, err := bench.OpenClickHouse(ctx, cfg.clickhouse)
	if err != nil {
		return err
	}
	defer ch.Close()

	topicPre, dbPre := topicPrefix, dbPrefix
	if cfg.mode == modeSteady {
		topicPre, dbPre = steadyTopicPrefix, steadyDBPrefix
	}
	begin := time.Now()
	dbs, err := ch.DropWithPrefix(ctx, dbPre)
	if err != nil {
		return fmt.Errorf("drop databases of earlier runs: %w", err)
	}
	logf("dropped %d databases of earlier runs in %s", len(dbs), time.Since(begin).Round(time.Millisecond))
	begin = time.Now()
	topics, groups, err := k.DeleteWithPrefix(ctx, topicPre)
	switch {
	case errors.Is(err, bench.ErrGroupsLeft):
		logf("%v", err)
	case err != nil:
		return fmt.Errorf("delete topics and groups of earlier runs: %w", err)
	}
	logf("deleted %d topics and %d groups of earlier runs in %s", len(topics), len(groups), time.Since(begin).Round(time.Millisecond))
	if cfg.mode == modeSteady {
		return runSteady(ctx, cfg, k, ch, runID, logDir, stdout)
	}

	gen := generatorConfig(cfg, time.Now())
	var results []bench.Result
	var exp loadgen.Expected
	var preloads []string
	for _, p := range cfg.partitions {
		t := &topicRun{cfg: cfg, k: k, ch: ch, runID: runID, logDir: logDir, partitions: p, dbPrefix: dbPrefix,
			topic: fmt.Sprintf("%s%s-p%d", topicPrefix, runID, p)}
		took, err := t.preload(ctx, gen, &exp)
		if err != nil {
			return err
		}
		preloads = append(preloads, fmt.Sprintf("P=%d: %s", p, took.Round(time.Millisecond)))
		pipelines := map[string]func(context.Context) (bench.Result, error){
			keyRollup: t.runRollup, keyEngine: t.runEngine, keyRaw: t.runRaw,
		}
		for _, key := range []string{keyRollup, keyEngine, keyRaw} {
			if !cfg.pipelines[key] {
				continue
			}
			r, err := pipelines[key](ctx)
			if err != nil {
				return fmt.Errorf("p=%d: %w", p, err)
			}
			results = append(results, r)
		}
	}

	path := filepath.Join(cfg.outDir, "e2e-"+runID+".md")
	err = publish(ctx, ch, stdout, path, logDir,
		func(w io.Writer) error { return bench.WriteTable(w, results) },
		func(chVersion string, table []byte) error {
			return writeReport(path, cfg, runID, chVersion, gen, &exp, preloads, table, results)
		})
	if err != nil {
		return err
	}
	// The Kafka engine's exactness is a finding, not a failure of the
	// benchmark (it is at-least-once by design, and 18.16's engine has
	// dropped messages here). usage-rollup must be exact, and so must the raw
	// sink: it is this command's own code.
	for _, r := range results {
		if len(r.Problems) > 0 && r.Pipeline != bench.PipelineEngine {
			return fmt.Errorf("%s (P=%d) is not exact; see %s", r.Pipeline, r.Partitions, path)
		}
	}
	return nil
}

// generatorConfig is the clean stream: loadgen's catalog and usage shapes,
// snake_case, image-style usage fields, and no duplicates, late or malformed
// events, so every pipeline can be exact. It covers eventSpan of event time,
// starting at a whole hour that ended at least an hour before now.
func generatorConfig(cfg config, now time.Time) loadgen.Config {
	g := loadgen.DefaultConfig()
	g.Seed, g.Count = cfg.seed, cfg.events
	g.DuplicateRatio, g.LateRatio, g.MalformedRatio, g.CamelRatio, g.ChatRatio = 0, 0, 0, 0, 0
	// The generator stamps an event up to 2s behind its clock (arrival
	// jitter); starting the clock 2s into the hour keeps the first event in it.
	g.Start = now.UTC().Truncate(time.Hour).Add(-eventSpan - time.Hour + 2*time.Second)
	g.EventInterval = (eventSpan - spanMargin) / time.Duration(cfg.events)
	return g
}

// preload creates the topic and writes the stream; exp receives the
// generator's expected totals (the same stream for every topic).
func (t *topicRun) preload(ctx context.Context, gen loadgen.Config, exp *loadgen.Expected) (time.Duration, error) {
	if _, n, err := loadgen.EnsureTopic(ctx, t.cfg.brokers, t.topic, t.partitions); err != nil {
		return 0, err
	} else if n != t.partitions {
		return 0, fmt.Errorf("topic %s has %d partitions, want %d", t.topic, n, t.partitions)
	}
	begin := time.Now()
	e, err := loadgen.Produce(ctx, t.cfg.brokers, t.topic, gen)
	if err != nil {
		return 0, fmt.Errorf("preload %s: %w", t.topic, err)
	}
	took := time.Since(begin)
	*exp = e
	t.exp = exp
	if t.start, err = t.k.StartOffsets(ctx, t.topic); err != nil {
		return 0, err
	}
	if t.end, err = t.k.EndOffsets(ctx, t.topic); err != nil {
		return 0, err
	}
	if n := t.end.Total() - t.start.Total(); n != int64(e.Sent) {
		return 0, fmt.Errorf("topic %s holds %d records, produced %d", t.topic, n, e.Sent)
	}
	logf("p=%d: preloaded %d events into %s in %s (%.0f/s)", t.partitions, e.Sent, t.topic,
		took.Round(time.Millisecond), float64(e.Sent)/took.Seconds())
	return took, nil
}
