package partitionlog

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoffMin is the first retry delay: a leader election on a healthy cluster
// takes a few hundred milliseconds, so retrying sooner mostly meets the same
// error again.
const backoffMin = 100 * time.Millisecond

// backoff returns the delay before retry number attempt (0-based): the
// exponential step backoffMin<<attempt capped at max, with "equal jitter":
// a uniform delay in [step/2, step]. Half of the step is kept so that a
// failing broker is never retried with a near-zero delay; the random half
// spreads the retries of the partitions that failed together (one broker
// going away fails all its partitions at once).
func backoff(attempt int, max time.Duration) time.Duration {
	step := backoffMin << min(attempt, 30)
	if step <= 0 || step > max {
		step = max
	}
	return step/2 + rand.N(step/2+1)
}

// sleep waits for d or until ctx ends, reporting whether it waited fully.
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
