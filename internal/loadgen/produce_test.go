package loadgen

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/segmentio/kafka-go"
)

// recordingWriter stands in for kafka.Writer: the tests here are about the
// producer's batching and pacing, not about Kafka.
type recordingWriter struct {
	writes []write
}

type write struct {
	at   time.Time
	msgs []kafka.Message
}

func (w *recordingWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.writes = append(w.writes, write{time.Now(), append([]kafka.Message(nil), msgs...)})
	return nil
}

func runProducer(t *testing.T, cfg Config) (*recordingWriter, time.Time) {
	t.Helper()
	w := &recordingWriter{}
	start := time.Now()
	p := producer{ctx: t.Context(), w: w, topic: "test", rate: cfg.Rate, start: start}
	if _, err := Generate(cfg, p.emit); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if err := p.flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return w, start
}

func TestProducerBatchesUnpaced(t *testing.T) {
	cfg := testConfig(1, 2*produceBatch+200)
	w, _ := runProducer(t, cfg)
	var sizes []int
	for _, wr := range w.writes {
		sizes = append(sizes, len(wr.msgs))
	}
	if len(sizes) != 3 || sizes[0] != produceBatch || sizes[1] != produceBatch || sizes[2] != 200 {
		t.Errorf("write sizes %v, want [%d %d 200]", sizes, produceBatch, produceBatch)
	}
}

func TestProducerPaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(1, 300)
		cfg.Rate = 100
		cfg.Start = time.Now() // the bubble's clock starts in 2000
		w, start := runProducer(t, cfg)
		perMsg := time.Duration(float64(time.Second) / cfg.Rate)
		n := 0
		for _, wr := range w.writes {
			for range wr.msgs {
				due := start.Add(time.Duration(n) * perMsg)
				// A message is never written early, and is flushed before the
				// producer sleeps for the next one.
				if wr.at.Before(due) || wr.at.After(due.Add(perMsg+minSleep)) {
					t.Fatalf("message %d written at +%s, due at +%s", n, wr.at.Sub(start), due.Sub(start))
				}
				n++
			}
		}
		if n != cfg.Count {
			t.Fatalf("wrote %d messages, want %d", n, cfg.Count)
		}
		if got, want := time.Since(start), time.Duration(cfg.Count-1)*perMsg; got < want {
			t.Errorf("took %s, want >= %s", got, want)
		}
	})
}

func TestProducerStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		cfg := testConfig(1, 1000)
		cfg.Rate = 10
		cfg.Start = time.Now()
		p := producer{ctx: ctx, w: &recordingWriter{}, rate: cfg.Rate, start: time.Now()}
		exp, err := Generate(cfg, p.emit)
		if err == nil || exp.Sent > 11 {
			t.Errorf("after cancel at 1s: sent %d, err %v; want ~10 sent and an error", exp.Sent, err)
		}
	})
}
