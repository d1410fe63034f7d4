package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/backoff"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// Producer settings of Steady, as loadgen.Produce has them: a synchronous
// write waits for every partition batch that is not full, so the linger is
// pure latency; 500 messages bound a batch when the producer fell behind.
const (
	steadyBatch  = 500
	steadyLinger = 2 * time.Millisecond
	// steadyMinSleep is the shortest pause worth flushing and sleeping for
	// (5 ms between events at 200/s); shorter waits join the next write.
	steadyMinSleep = 2 * time.Millisecond
)

// MarkerWorkspace is the workspace_id of every marker event: Markers.Watch
// looks them up by it.
const MarkerWorkspace = "ws_bench_marker"

// Steady writes a generated stream to a topic at Gen.Rate events per
// second, live (event time follows wall time), plus one marker event every
// MarkerEvery: a valid event with a unique api_key_id whose send time
// Markers records, so that Markers.Watch can time how long it takes to
// become queryable.
type Steady struct {
	Brokers []string
	Topic   string
	// Gen is the stream; Rate must be > 0 and Start about now.
	Gen         loadgen.Config
	MarkerEvery time.Duration
	// MarkerPrefix starts every marker's id and api_key_id; unique per run.
	MarkerPrefix string
	Markers      *Markers
	// sent counts the generated events written so far (markers not included).
	sent atomic.Int64
}

// Sent is the number of generated events written so far, markers excluded.
func (s *Steady) Sent() int64 { return s.sent.Load() }

// errStopProducing ends Generate when Run's time is up.
var errStopProducing = errors.New("stop producing")

// Run produces until the time until, or until ctx ends (then it returns
// ctx's error). Messages are keyed by event id (kafka.Hash), so every
// partition gets traffic; markers are keyed by their own id.
func (s *Steady) Run(ctx context.Context, until time.Time) error {
	if s.Gen.Rate <= 0 || s.MarkerEvery <= 0 || s.Markers == nil {
		return errors.New("steady producer: Gen.Rate, MarkerEvery and Markers are required")
	}
	transport := &kafka.Transport{ClientID: "usage-rollup-bench-steady"}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(s.Brokers...), Topic: s.Topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: steadyBatch, BatchTimeout: steadyLinger, Transport: transport,
	}
	defer w.Close()
	start := time.Now()
	nextMarker := start.Add(s.MarkerEvery)
	var (
		buf     []kafka.Message
		n       int
		markers int
	)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, buf...); err != nil {
			return fmt.Errorf("write %d messages to %s: %w", len(buf), s.Topic, err)
		}
		s.sent.Add(int64(len(buf)))
		buf = buf[:0]
		return nil
	}
	marker := func() error {
		if err := flush(); err != nil {
			return err
		}
		markers++
		key := s.MarkerPrefix + "_" + strconv.Itoa(markers)
		at := time.Now()
		msg := kafka.Message{Key: []byte(key), Value: markerEvent(key, at)}
		if err := w.WriteMessages(ctx, msg); err != nil {
			return fmt.Errorf("write marker %s to %s: %w", key, s.Topic, err)
		}
		s.Markers.record(key, at)
		return nil
	}
	emit := func(key, value []byte) error {
		due := start.Add(time.Duration(float64(n) * float64(time.Second) / s.Gen.Rate))
		if due.After(until) {
			return errStopProducing
		}
		for !nextMarker.After(due) {
			if err := SleepUntil(ctx, nextMarker); err != nil {
				return err
			}
			if err := marker(); err != nil {
				return err
			}
			nextMarker = nextMarker.Add(s.MarkerEvery)
		}
		if time.Until(due) >= steadyMinSleep {
			// Ship what is buffered before the pause, so that it is not held back.
			if err := flush(); err != nil {
				return err
			}
			if err := SleepUntil(ctx, due); err != nil {
				return err
			}
		}
		n++
		buf = append(buf, kafka.Message{Key: key, Value: value})
		if len(buf) >= steadyBatch {
			return flush()
		}
		return nil
	}
	gen := s.Gen
	gen.Count = int(s.Gen.Rate*time.Until(until).Seconds()) + 1
	_, err := loadgen.Generate(gen, emit)
	if errors.Is(err, errStopProducing) || err == nil {
		err = flush()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// markerEvent is a valid snake_case event stamped at, identified by key
// (its id and api_key_id), in workspace MarkerWorkspace.
func markerEvent(key string, at time.Time) []byte {
	b := make([]byte, 0, 320)
	b = append(b, `{"id":"`...)
	b = append(b, key...)
	b = append(b, `","timestamp":"`...)
	b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","workspace_id":"`+MarkerWorkspace+`","project_id":"proj_bench_marker","api_key_id":"`...)
	b = append(b, key...)
	b = append(b, `","provider":"openai","model":"gpt-4o-mini","endpoint":"chat.completions","status_code":200,`+
		`"latency_ms":1,"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}`...)
	return b
}

// SleepUntil waits until t, or returns ctx's error if ctx ends first; a t
// already past returns at once.
func SleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t); d <= 0 || !backoff.Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}
