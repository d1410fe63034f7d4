package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayIsCappedWithEqualJitter(t *testing.T) {
	for attempt := range 30 {
		full := min(Min<<min(attempt, 20), 5*time.Second)
		for range 200 {
			d := Delay(attempt, 5*time.Second)
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, full/2, full)
			}
		}
	}
}

func TestRetryStopsOnSuccessAndOnContext(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), 100*time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}, nil)
	if err != nil || calls != 3 {
		t.Fatalf("Retry = %v after %d calls, want nil after 3", err, calls)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	boom := errors.New("down")
	fails := 0
	err = Retry(ctx, 100*time.Millisecond, func() error { return boom }, func(error, int, time.Duration) { fails++ })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, boom) {
		t.Fatalf("Retry after ctx ended = %v, want the deadline and the last failure", err)
	}
	if fails == 0 {
		t.Fatal("onFail was never called")
	}
}
