package bench

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// MarkerPoll is how often Markers.Watch looks for new markers in the view:
// the resolution of the measured latencies.
const MarkerPoll = 100 * time.Millisecond

// Markers records when each marker event was sent (Steady) and when it first
// became visible to analysts (Watch): event-to-queryable latency.
type Markers struct {
	mu   sync.Mutex
	sent map[string]time.Time
	seen map[string]time.Time
}

// NewMarkers returns an empty record.
func NewMarkers() *Markers {
	return &Markers{sent: map[string]time.Time{}, seen: map[string]time.Time{}}
}

func (m *Markers) record(key string, at time.Time) {
	m.mu.Lock()
	m.sent[key] = at
	m.mu.Unlock()
}

// Watch polls view (a usage_<w> view, the analysts' entry point) every
// MarkerPoll until ctx ends, and records for each marker the time the first
// query that returned it completed: an upper bound of when it became
// visible, at most MarkerPoll plus one query later. Query errors end it.
func (m *Markers) Watch(ctx context.Context, ch *ClickHouse, view string) error {
	query := "SELECT api_key_id FROM " + view + " WHERE workspace_id = ? GROUP BY api_key_id"
	t := time.NewTicker(MarkerPoll)
	defer t.Stop()
	for {
		keys, err := ch.strings(ctx, query, MarkerWorkspace)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		m.mu.Lock()
		for _, k := range keys {
			if _, ok := m.seen[k]; !ok {
				m.seen[k] = now
			}
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pending counts the markers sent in [from, to) not seen yet.
func (m *Markers) Pending(from, to time.Time) int {
	_, missing := m.Latencies(from, to)
	return missing
}

// Latencies returns, sorted, the latencies of the markers sent in [from, to)
// that were seen, and how many of them were not.
func (m *Markers) Latencies(from, to time.Time) (lat []time.Duration, missing int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, at := range m.sent {
		if at.Before(from) || !at.Before(to) {
			continue
		}
		if seen, ok := m.seen[k]; ok {
			lat = append(lat, seen.Sub(at))
		} else {
			missing++
		}
	}
	slices.Sort(lat)
	return lat, missing
}

// Percentile is the nearest-rank q-quantile (0 < q <= 1) of sorted values;
// 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank: the smallest value with at least q of the values at or below it.
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
