package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// config is the benchmark's configuration, from flags only (the script maps
// its BENCH_* environment variables to them).
type config struct {
	mode            string
	events          int
	partitions      []int
	pipelines       map[string]bool
	brokers         []string
	clickhouse      string
	clickhousePID   int
	consumer        string
	consumerEnv     []string
	outDir          string
	queryRuns       int
	timeout         time.Duration
	engineConsumers int
	rawBatch        int
	seed            int64
	kafkaVersion    string
	// cpuProfile, when > 0, fetches a CPU profile of this length from every
	// usage-rollup run of the batch mode (the consumer gets DEBUG_PPROF=true).
	cpuProfile time.Duration

	// The steady mode's settings.
	rate          float64
	duration      time.Duration
	warmup        time.Duration
	consumerLabel string
	baseline      string // a second consumer binary to compare against; empty: none
	baselineLabel string
	compact       bool
}

// Modes of -mode.
const (
	modeBatch  = "batch"
	modeSteady = "steady"
)

// Default partition counts per mode.
var defaultPartitions = map[string]string{modeBatch: "4,16", modeSteady: "4,16,64"}

// Pipeline keys of -pipelines.
const (
	keyRollup = "rollup"
	keyEngine = "engine"
	keyRaw    = "raw"
)

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("benche2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var partitions, pipelines, brokers, consumerEnv string
	fs.StringVar(&c.mode, "mode", modeBatch, "batch: preload -events, time each pipeline's catch-up; "+
		"steady: produce -rate events/s live and count ClickHouse INSERTs, parts and freshness")
	fs.IntVar(&c.events, "events", 1_000_000, "batch: events to preload per topic (all valid, no duplicates)")
	fs.StringVar(&partitions, "partitions", "", "comma-separated partition counts; one topic and one run of every pipeline (consumer) each "+
		"(default 4,16 in batch mode, 4,16,64 in steady mode)")
	fs.StringVar(&pipelines, "pipelines", "rollup,engine,raw", "pipelines to run, in this order")
	fs.StringVar(&brokers, "brokers", "127.0.0.1:9092", "comma-separated Kafka brokers (ClickHouse's Kafka engine uses them too)")
	fs.StringVar(&c.clickhouse, "clickhouse", "127.0.0.1:9000", "ClickHouse native-protocol address")
	fs.IntVar(&c.clickhousePID, "clickhouse-pid", 0, "pid of the ClickHouse server, for its CPU time (0: not measured)")
	fs.StringVar(&c.consumer, "consumer", "", "path of the built cmd/consumer binary (required with the rollup pipeline)")
	fs.StringVar(&consumerEnv, "consumer-env", "", "extra K=V settings for the consumer, comma-separated (default: none, the service's defaults)")
	fs.StringVar(&c.outDir, "out", ".run/bench", "directory for the results file and the processes' logs")
	fs.IntVar(&c.queryRuns, "query-runs", 5, "runs of each analyst query; the median is reported")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "bound on each pipeline's catch-up")
	fs.IntVar(&c.engineConsumers, "engine-consumers", 1, "kafka_num_consumers of the Kafka engine table")
	fs.IntVar(&c.rawBatch, "raw-batch", 100_000, "rows per insert of the raw-rows sink")
	fs.Int64Var(&c.seed, "seed", 1, "generator seed")
	fs.StringVar(&c.kafkaVersion, "kafka-version", "", "Kafka broker version, for the results file (the script reads it from the broker's jars)")
	fs.DurationVar(&c.cpuProfile, "cpu-profile", 0, "batch: fetch a CPU profile of this length from each usage-rollup run "+
		"(DEBUG_PPROF=true; into the log directory); 0: none")
	fs.Float64Var(&c.rate, "rate", 200, "steady: generated events per second (plus one marker event per second)")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "steady: measured window")
	fs.DurationVar(&c.warmup, "warmup", 15*time.Second, "steady: production before the window (group join, first flushes)")
	fs.StringVar(&c.consumerLabel, "consumer-label", "usage-rollup", "steady: name of -consumer in the table")
	fs.StringVar(&c.baseline, "baseline", "", "steady: a second cmd/consumer binary, run before -consumer at every partition count; the table gives -consumer's values divided by its")
	fs.StringVar(&c.baselineLabel, "baseline-label", "baseline", "steady: name of -baseline in the table")
	fs.BoolVar(&c.compact, "compact", false, "after usage-rollup caught up and closed every window, run `consumer compact` until nothing is left "+
		"to fold or delete, then measure (docs/BENCHMARKS.md, \"Compaction\")")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if _, ok := defaultPartitions[c.mode]; !ok {
		return c, fmt.Errorf("-mode: %q is neither %s nor %s", c.mode, modeBatch, modeSteady)
	}
	if partitions == "" {
		partitions = defaultPartitions[c.mode]
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.partitions, err = parseInts(partitions); err != nil {
		return c, fmt.Errorf("-partitions: %w", err)
	}
	c.pipelines = map[string]bool{}
	for _, p := range splitList(pipelines) {
		if p != keyRollup && p != keyEngine && p != keyRaw {
			return c, fmt.Errorf("-pipelines: unknown pipeline %q (want %s, %s or %s)", p, keyRollup, keyEngine, keyRaw)
		}
		c.pipelines[p] = true
	}
	c.brokers = splitList(brokers)
	c.consumerEnv = splitList(consumerEnv)
	return c, c.validate()
}

func (c config) validate() error {
	switch {
	case c.mode == modeSteady && c.consumer == "":
		return errors.New("-consumer is required in steady mode (go build -o consumer ./cmd/consumer)")
	case c.mode == modeSteady && !(c.rate > 0):
		return fmt.Errorf("-rate must be > 0, got %g", c.rate)
	case c.mode == modeSteady && c.duration < time.Second:
		return fmt.Errorf("-duration must be >= 1s, got %s", c.duration)
	case c.warmup < 0:
		return fmt.Errorf("-warmup must be >= 0, got %s", c.warmup)
	case c.cpuProfile < 0 || (c.cpuProfile > 0 && c.cpuProfile < time.Second):
		return fmt.Errorf("-cpu-profile must be 0 or >= 1s, got %s", c.cpuProfile)
	case c.events <= 0:
		return fmt.Errorf("-events must be > 0, got %d", c.events)
	case len(c.pipelines) == 0:
		return errors.New("-pipelines is empty")
	case c.mode == modeBatch && c.pipelines[keyRollup] && c.consumer == "":
		return errors.New("-consumer is required to run the rollup pipeline (go build -o consumer ./cmd/consumer)")
	case len(c.brokers) == 0:
		return errors.New("-brokers is empty")
	case c.queryRuns < 1:
		return fmt.Errorf("-query-runs must be >= 1, got %d", c.queryRuns)
	case c.engineConsumers < 1:
		return fmt.Errorf("-engine-consumers must be >= 1, got %d", c.engineConsumers)
	case c.rawBatch < 1:
		return fmt.Errorf("-raw-batch must be >= 1, got %d", c.rawBatch)
	case c.timeout <= 0:
		return fmt.Errorf("-timeout must be > 0, got %s", c.timeout)
	}
	for _, kv := range c.consumerEnv {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("-consumer-env: %q is not K=V", kv)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}
