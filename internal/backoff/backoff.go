// Package backoff is the one retry policy of the service: capped exponential
// delays with equal jitter, and a retry loop that ends only when the call
// succeeds or its context ends. Kafka fetches, ClickHouse writes, dead
// letters and offset look-ups all retry through it.
package backoff

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Min is the first retry delay: long enough not to hammer a server that just
// refused us, short enough that a blip costs well under a flush interval.
const Min = 100 * time.Millisecond

// Delay returns the delay before retry number attempt (0-based): Min doubled
// per attempt, capped at max, with equal jitter (half fixed, half uniform
// random). The random half spreads the retries of many partitions and
// replicas so a recovering server is not hit by all of them at once; the
// fixed half keeps a retry from following a failure immediately, which full
// jitter (uniform over the whole delay) would allow.
func Delay(attempt int, max time.Duration) time.Duration {
	d := Min << min(attempt, 20)
	if d <= 0 || d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d or until ctx ends, reporting whether it slept fully.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Retry calls f until it returns nil or ctx ends, waiting Delay(attempt, max)
// between calls. onFail, if not nil, is told each failure and the delay
// before the next call (for logs and metrics). When ctx ends first, Retry
// returns ctx's error wrapped with the last failure.
func Retry(ctx context.Context, max time.Duration, f func() error, onFail func(err error, attempt int, next time.Duration)) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last failure: %w)", ctx.Err(), err)
		}
		d := Delay(attempt, max)
		if onFail != nil {
			onFail(err, attempt, d)
		}
		if !Sleep(ctx, d) {
			return fmt.Errorf("%w (last failure: %w)", ctx.Err(), err)
		}
	}
}
