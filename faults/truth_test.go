//go:build faults

package faults

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// measures are the sums of one rollup group, as the test computes them.
type measures struct {
	Requests, Errors, InputTokens, InputTextTokens, InputImageTokens, InputCachedTokens uint64
	OutputTokens, TotalTokens, LatencyMsSum, LatencyMsMax, Inconsistent, Late           uint64
}

// measuresOf is one event's measures. A group's are the field-wise sums of its
// events' (see add), written here apart from internal/aggregate so that the
// truth and the consumer cannot share a wrong sum.
func measuresOf(ev *events.Event, late bool) measures {
	u := &ev.Usage
	return measures{
		Requests: 1, Errors: oneIf(ev.IsError()),
		InputTokens: u.InputTokens, InputTextTokens: u.InputTextTokens, InputImageTokens: u.InputImageTokens,
		InputCachedTokens: u.InputCachedTokens, OutputTokens: u.OutputTokens, TotalTokens: u.TotalTokens,
		LatencyMsSum: ev.LatencyMs, LatencyMsMax: ev.LatencyMs,
		Inconsistent: oneIf(ev.Inconsistent), Late: oneIf(late),
	}
}

// oneIf is 1 for true: an event counted in a measure such as Errors.
func oneIf(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// add folds o into m: every field sums, one added to measures included,
// except LatencyMsMax, which keeps the larger.
func (m *measures) add(o measures) {
	largest := max(m.LatencyMsMax, o.LatencyMsMax)
	dst, src := reflect.ValueOf(m).Elem(), reflect.ValueOf(o)
	for i := range dst.NumField() {
		dst.Field(i).SetUint(dst.Field(i).Uint() + src.Field(i).Uint())
	}
	m.LatencyMsMax = largest
}

// groupKey is one row of a window's rollup: window start and the full
// dimension set.
type groupKey struct {
	windowStart                                           int64 // Unix seconds
	workspace, project, apiKey, provider, model, endpoint string
}

func (k groupKey) String() string {
	return fmt.Sprintf("%s %s/%s/%s/%s/%s/%s", time.Unix(k.windowStart, 0).UTC().Format("2006-01-02T15:04"),
		k.workspace, k.project, k.apiKey, k.provider, k.model, k.endpoint)
}

// offsetKey names one message.
type offsetKey struct {
	partition int
	offset    int64
}

// partitionTruth is what one partition's log must produce.
type partitionTruth struct {
	end                                  int64
	accepted, rejected, duplicates, late uint64
	seals                                uint64 // seal records (SEAL_IDLE_AFTER): not events
}

// truth is the ground truth of a topic, derived from the log itself: every
// record is decoded with internal/events and deduplicated and judged late by
// the rules of docs/design.md (same or previous chunk of the partition;
// watermark = newest valid event time of the same or previous chunk minus
// the allowed lateness).
type truth struct {
	partitions map[int]*partitionTruth
	rejected   map[offsetKey]string // reason per rejected message
	windows    map[string]map[groupKey]measures
	byWM       map[[2]string]measures // per workspace and model, for the generator cross-check
	late       uint64
}

// windowSizes are the rollup windows the suite runs with (ROLLUP_WINDOWS).
var windowSizes = map[string]time.Duration{"1m": time.Minute, "1h": time.Hour}

func computeTruth(log map[int][]record, chunkSize int64, lateness time.Duration, dec events.Config) *truth {
	tr := &truth{
		partitions: map[int]*partitionTruth{},
		rejected:   map[offsetKey]string{},
		windows:    map[string]map[groupKey]measures{},
		byWM:       map[[2]string]measures{},
	}
	for w := range windowSizes {
		tr.windows[w] = map[groupKey]measures{}
	}
	d := events.NewDecoder(dec)
	var ev events.Event
	for p, recs := range log {
		pt := &partitionTruth{end: int64(len(recs))}
		tr.partitions[p] = pt
		lastSeen := map[string]int64{} // valid id -> offset of its latest occurrence
		chunk := int64(-1)
		var curMax, prevMax int64
		for _, r := range recs {
			if c := r.offset / chunkSize; c != chunk {
				if c == chunk+1 {
					prevMax = curMax
				} else {
					prevMax = 0
				}
				curMax, chunk = 0, c
			}
			if ingest.IsSeal(r.key, r.value) {
				pt.seals++
				continue
			}
			if err := d.Decode(r.value, r.time, &ev); err != nil {
				rej, _ := events.AsReject(err)
				reason := "?"
				if rej != nil {
					reason = string(rej.Reason)
				}
				pt.rejected++
				tr.rejected[offsetKey{p, r.offset}] = reason
				continue
			}
			newest := max(curMax, prevMax)
			late := newest != 0 && ev.TimeMs < newest-lateness.Milliseconds()
			curMax = max(curMax, ev.TimeMs)
			// The dedup set of a chunk is every valid id in it, duplicates
			// included (docs/design.md, "Dedup horizon").
			id := string(ev.ID)
			at, seen := lastSeen[id]
			lastSeen[id] = r.offset
			if seen && at/chunkSize >= chunk-1 {
				pt.duplicates++
				continue
			}
			pt.accepted++
			if late {
				pt.late++
				tr.late++
			}
			e := measuresOf(&ev, late)
			for w, size := range windowSizes {
				k := groupKey{
					windowStart: time.UnixMilli(ev.TimeMs).UTC().Truncate(size).Unix(),
					workspace:   string(ev.WorkspaceID), project: string(ev.ProjectID), apiKey: string(ev.APIKeyID),
					provider: string(ev.Provider), model: string(ev.Model), endpoint: string(ev.Endpoint),
				}
				m := tr.windows[w][k]
				m.add(e)
				tr.windows[w][k] = m
			}
			wm := [2]string{string(ev.WorkspaceID), string(ev.Model)}
			m := tr.byWM[wm]
			m.add(e)
			tr.byWM[wm] = m
		}
	}
	return tr
}

func (tr *truth) totals() (accepted, rejected, duplicates uint64) {
	for _, p := range tr.partitions {
		accepted += p.accepted
		rejected += p.rejected
		duplicates += p.duplicates
	}
	return
}

// crossCheck compares the log-derived truth with the generators' own
// accounting (an independent reading of the contract in internal/loadgen),
// so a decoder bug cannot make the truth and the consumer agree on a wrong
// answer. extraRejected are messages the test injected itself.
func (tr *truth) crossCheck(want *loadgen.Expected, extraRejected int) []string {
	var out []string
	accepted, rejected, duplicates := tr.totals()
	if accepted != uint64(want.Accepted) || duplicates != uint64(want.Duplicates) || rejected != uint64(want.Malformed+extraRejected) {
		out = append(out, fmt.Sprintf("log has %d accepted, %d duplicates, %d rejected; generators say %d, %d, %d",
			accepted, duplicates, rejected, want.Accepted, want.Duplicates, want.Malformed+extraRejected))
	}
	for _, r := range want.Rows() {
		g := tr.byWM[[2]string{r.Workspace, r.Model}]
		if g.Requests != r.Requests || g.Errors != r.Errors || g.InputTokens != r.InputTokens ||
			g.InputTextTokens != r.InputTextTokens || g.InputImageTokens != r.InputImageTokens ||
			g.InputCachedTokens != r.InputCachedTokens || g.OutputTokens != r.OutputTokens ||
			g.TotalTokens != r.TotalTokens || g.LatencyMsSum != r.LatencyMsSum {
			out = append(out, fmt.Sprintf("log totals of %s/%s differ from the generator's", r.Workspace, r.Model))
		}
	}
	if len(tr.byWM) != len(want.Rows()) {
		out = append(out, fmt.Sprintf("log has %d workspace/model groups, generator %d", len(tr.byWM), len(want.Rows())))
	}
	return out
}

// diffGroups compares a window's rollup read from ClickHouse with the truth.
func diffGroups(window string, want, got map[groupKey]measures) []string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("usage_%s %s: missing, want %+v", window, k, w))
		} else if g != w {
			out = append(out, fmt.Sprintf("usage_%s %s: got %+v, want %+v", window, k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("usage_%s %s: unexpected group %+v", window, k, g))
		}
	}
	sort.Strings(out)
	return out
}

// summarize keeps a diff readable: the first n lines and a count.
func summarize(diffs []string, n int) string {
	if len(diffs) <= n {
		return strings.Join(diffs, "\n")
	}
	return strings.Join(diffs[:n], "\n") + fmt.Sprintf("\n... and %d more", len(diffs)-n)
}
