package consumer

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoffMin is the first retry delay: long enough not to hammer a server that
// just refused us, short enough that a blip costs well under a flush interval.
const backoffMin = 100 * time.Millisecond

// backoff returns a full-jitter exponential delay for attempt (0-based), capped
// at max. Jitter spreads the retries of many partitions and replicas so a
// recovering ClickHouse is not hit by all of them at once.
func backoff(attempt int, max time.Duration) time.Duration {
	d := backoffMin << min(attempt, 20)
	if d <= 0 || d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends, reporting whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
