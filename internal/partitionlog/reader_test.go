package partitionlog

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
	"github.com/segmentio/kafka-go/protocol/listoffsets"
)

const fakeTopic = "usage-events"

// fakeTransport answers each request with the next step of a script; the
// last step repeats.
type fakeTransport struct {
	mu    sync.Mutex
	steps []func(req protocol.Message) (protocol.Message, error)
	calls []protocol.ApiKey
}

var _ kafka.RoundTripper = (*fakeTransport)(nil)

func (ft *fakeTransport) RoundTrip(ctx context.Context, _ net.Addr, req kafka.Request) (kafka.Response, error) {
	ft.mu.Lock()
	step := ft.steps[0]
	if len(ft.steps) > 1 {
		ft.steps = ft.steps[1:]
	}
	ft.calls = append(ft.calls, req.ApiKey())
	ft.mu.Unlock()
	return step(req)
}

func (ft *fakeTransport) callCount() int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return len(ft.calls)
}

// answer returns a step answering a fetch with p's batches.
func answer(t testing.TB, p partition) func(protocol.Message) (protocol.Message, error) {
	return func(req protocol.Message) (protocol.Message, error) {
		t.Helper()
		if _, ok := req.(*fetch.Request); !ok {
			t.Errorf("got a %T, want a fetch", req)
		}
		return &fetch.Response{Topics: []fetch.ResponseTopic{{
			Topic: fakeTopic, Partitions: []fetch.ResponsePartition{*p.response(t)},
		}}}, nil
	}
}

// fail returns a step answering a fetch with a partition error code.
func fail(code kafka.Error) func(protocol.Message) (protocol.Message, error) {
	return func(protocol.Message) (protocol.Message, error) {
		return &fetch.Response{Topics: []fetch.ResponseTopic{{
			Topic: fakeTopic, Partitions: []fetch.ResponsePartition{{ErrorCode: int16(code)}},
		}}}, nil
	}
}

// failWith returns a step failing the round trip with err.
func failWith(err error) func(protocol.Message) (protocol.Message, error) {
	return func(protocol.Message) (protocol.Message, error) { return nil, err }
}

// listed returns a step answering ListOffsets with the log's first and last
// offsets.
func listed(first, last int64) func(protocol.Message) (protocol.Message, error) {
	return func(req protocol.Message) (protocol.Message, error) {
		if _, ok := req.(*listoffsets.Request); !ok {
			return nil, errors.New("want ListOffsets")
		}
		return &listoffsets.Response{Topics: []listoffsets.ResponseTopic{{
			Topic: fakeTopic,
			Partitions: []listoffsets.ResponsePartition{
				{Timestamp: kafka.FirstOffset, Offset: first},
				{Timestamp: kafka.LastOffset, Offset: last},
			},
		}}}, nil
	}
}

func testConfig() Config {
	cfg := DefaultConfig(fakeTopic, 0)
	cfg.MaxBytes = 1 << 20
	return cfg
}

func newFakeReader(t testing.TB, ft *fakeTransport, budget *Budget) *Reader {
	t.Helper()
	if budget == nil {
		budget = NewBudget(reserveFactor << 20)
	}
	r, err := NewReader(&kafka.Client{Addr: kafka.TCP("fake:9092"), Transport: ft}, testConfig(), budget, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var threeRecords = partition{batches: []batch{{base: 0, records: data(0, 3)}}}

func TestFetchRetriesRetriableErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){
			fail(kafka.NotLeaderForPartition),
			fail(kafka.LeaderNotAvailable),
			failWith(io.ErrUnexpectedEOF),
			failWith(&net.OpError{Op: "dial", Err: errors.New("connection refused")}),
			failWith(context.DeadlineExceeded), // the per-request timeout
			failWith(&protocol.TopicPartitionError{Err: protocol.ErrNoLeader}),
			fail(kafka.UnknownTopicOrPartition),
			answer(t, threeRecords),
		}}
		r := newFakeReader(t, ft, nil)
		f, err := r.Fetch(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Release()
		if len(f.Records) != 3 || f.Next != 3 {
			t.Errorf("%d records, next %d; want 3, 3", len(f.Records), f.Next)
		}
		if n := ft.callCount(); n != 8 {
			t.Errorf("%d requests, want 8", n)
		}
	})
}

func TestFetchReturnsOtherErrors(t *testing.T) {
	tests := []struct {
		name string
		step func(protocol.Message) (protocol.Message, error)
		want error
	}{
		{"authorization", fail(kafka.TopicAuthorizationFailed), kafka.TopicAuthorizationFailed},
		{"corrupt log", fail(kafka.InvalidMessage), kafka.InvalidMessage},
		{"response decoding", failWith(protocol.Error("crc32 checksum mismatch")), protocol.Error("crc32 checksum mismatch")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){tc.step}}
			_, err := newFakeReader(t, ft, nil).Fetch(t.Context(), 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if n := ft.callCount(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFetchGivesUpOnUnknownTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){
			failWith(fetch.NewError(protocol.NewErrNoTopic(fakeTopic))),
			fail(kafka.UnknownTopicOrPartition),
		}}
		start := time.Now()
		_, err := newFakeReader(t, ft, nil).Fetch(t.Context(), 0)
		if !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Fatalf("error %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
		}
		if waited := time.Since(start); waited < unknownTopicGrace {
			t.Errorf("gave up after %v, want at least %v", waited, unknownTopicGrace)
		}
	})
}

func TestFetchStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){fail(kafka.NotLeaderForPartition)}}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := newFakeReader(t, ft, nil).Fetch(ctx, 0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the context's", err)
		}
		if n := ft.callCount(); n < 3 {
			t.Errorf("%d requests in 5s, want several", n)
		}
	})
}

func TestFetchOffsetOutOfRange(t *testing.T) {
	ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){
		fail(kafka.OffsetOutOfRange), listed(10, 20),
	}}
	_, err := newFakeReader(t, ft, nil).Fetch(t.Context(), 5)
	oor, ok := errors.AsType[*OffsetOutOfRangeError](err)
	if !ok {
		t.Fatalf("error %v, want *OffsetOutOfRangeError", err)
	}
	want := OffsetOutOfRangeError{Topic: fakeTopic, Partition: 0, Offset: 5, LogStart: 10, LogEnd: 20}
	if *oor != want {
		t.Errorf("got %+v, want %+v", *oor, want)
	}
}

func TestFetchRetriesOutOfRangeThatListingRefutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){
			fail(kafka.OffsetOutOfRange), listed(0, 3), answer(t, threeRecords),
		}}
		f, err := newFakeReader(t, ft, nil).Fetch(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Release()
		if len(f.Records) != 3 {
			t.Errorf("%d records, want 3", len(f.Records))
		}
	})
}

// TestBudgetBlocksSecondFetch: with a budget of one fetch, a second reader's
// fetch waits until the first fetch, which holds data, is released.
func TestBudgetBlocksSecondFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := NewBudget(reserveFactor * int64(testConfig().MaxBytes))
		steps := func() *fakeTransport {
			return &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){answer(t, threeRecords)}}
		}
		a, b := newFakeReader(t, steps(), budget), newFakeReader(t, steps(), budget)

		fa, err := a.Fetch(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if fa.held == 0 {
			t.Fatal("the first fetch holds no budget")
		}
		var (
			wg   sync.WaitGroup
			fb   *Fetch
			errB error
		)
		wg.Go(func() { fb, errB = b.Fetch(t.Context(), 0) })
		synctest.Wait()
		if fb != nil || errB != nil {
			t.Fatal("the second fetch did not wait for the budget")
		}
		fa.Release()
		wg.Wait()
		if errB != nil {
			t.Fatal(errB)
		}
		fb.Release()
		if !budget.sem.TryAcquire(budget.Size()) {
			t.Error("budget not fully given back after both releases")
		}
	})
}

func TestFetchReusesReleasedMemory(t *testing.T) {
	ft := &fakeTransport{steps: []func(protocol.Message) (protocol.Message, error){answer(t, threeRecords)}}
	// Room for two fetches: the test holds two at once.
	budget := NewBudget(2 * reserveFactor << 20)
	r := newFakeReader(t, ft, budget)
	f1, err := r.Fetch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := f1.buf
	f1.Release()
	f1.Release() // a second release does nothing
	f2, err := r.Fetch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if f2.buf != buf {
		t.Error("the released buffers were not reused")
	}
	f3, err := r.Fetch(t.Context(), 0) // f2 is still held: new buffers
	if err != nil {
		t.Fatal(err)
	}
	if f3.buf == f2.buf {
		t.Error("an unreleased fetch's buffers were reused")
	}
	if string(f2.Records[2].Value) != value(2) {
		t.Errorf("the held fetch's value changed to %q", f2.Records[2].Value)
	}
	f2.Release()
	f3.Release()
	if !budget.sem.TryAcquire(budget.Size()) {
		t.Error("budget not fully given back")
	}
}

func TestNewReaderValidates(t *testing.T) {
	client := &kafka.Client{Addr: kafka.TCP("fake:9092")}
	small := testConfig()
	tests := []struct {
		name   string
		client *kafka.Client
		cfg    Config
		budget *Budget
	}{
		{"no address", &kafka.Client{}, small, NewBudget(reserveFactor << 20)},
		{"no budget", client, small, nil},
		{"budget below twice MaxBytes", client, small, NewBudget(1 << 20)},
		{"no topic", client, Config{MaxBytes: 1, MaxWait: time.Second, RequestTimeout: time.Second, RetryBackoffMax: time.Second}, NewBudget(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewReader(tc.client, tc.cfg, tc.budget, zerolog.Nop()); err == nil {
				t.Error("no error")
			}
		})
	}
}
