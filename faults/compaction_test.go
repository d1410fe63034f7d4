//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Settings of the compaction cases (docs/design.md "Compaction"). Partitions
// idle after two seconds, so that closed_through passes the stream's windows
// (two hours old) as soon as the consumers caught up. A run may publish for
// eight seconds after it started (writing the rows of about 1,000 windows
// takes 2-9 s on the shared test machine while the views are sampled) and pauses one second before publishing and
// before deleting: the raw pieces below a manifest are deleted by the first
// run that starts more than leaseAge after the manifest was published.
const (
	idleTimeout    = 2 * time.Second
	sealIdleAfter  = 3 * time.Second
	compactMaxRun  = 8 * time.Second
	compactSettle  = time.Second
	leaseAge       = compactMaxRun + compactSettle + time.Second // + the age check's whole-second margin
	compactTimeout = 60 * time.Second
)

// startSealing starts a consumer as the compaction cases run them: idle
// partitions close their windows, and are sealed so that compaction folds
// everything they consumed. Seal records are then part of the case's log,
// appended whenever a partition falls idle, so verify first waits until
// every partition is sealed (no further seal can come until new records).
func (s *scenario) startSealing() *consumer {
	s.sealing = true
	return s.start("IDLE_PARTITION_TIMEOUT="+idleTimeout.String(), "SEAL_IDLE_AFTER="+sealIdleAfter.String())
}

// compactor starts one `consumer compact` run with the scenario's environment,
// the cases' COMPACT_* settings, and extra (later wins).
func (s *scenario) compactor(extra ...string) *consumer {
	s.t.Helper()
	s.seq++
	env := append([]string{
		"COMPACT_SETTLE=" + compactSettle.String(),
		"COMPACT_MAX_RUN=" + compactMaxRun.String(),
		"COMPACT_WAIT_DELETES=true",
		// The suite's 5s bounds single inserts of the consumers; one
		// INSERT ... SELECT of the compactor folds hundreds of windows, and
		// two compactors and the sampler share a busy server.
		"CLICKHOUSE_INSERT_TIMEOUT=60s",
	}, extra...)
	return startCommand(s.t, fmt.Sprintf("k%02d", s.seq), []string{"compact"}, s.env, env...)
}

// compactDone waits for a compaction run and requires status 0.
func (s *scenario) compactDone(c *consumer) error {
	if _, err := c.WaitExit(compactTimeout); err != nil {
		c.kill9()
		return err
	}
	if c.Err() != nil {
		return fmt.Errorf("%s exited with %v: %s", c.name, c.Err(), lastLine(c.out.String()))
	}
	return nil
}

// compact runs one compaction to its end and fails the test if it fails.
func (s *scenario) compact(extra ...string) {
	s.t.Helper()
	if err := s.compactDone(s.compactor(extra...)); err != nil {
		s.t.Fatal(err)
	}
}

// waitSealed waits until the last record of every partition is a seal record
// the consumer has taken (its newest usage_chunks row opens a segment at its
// last offset): every piece consumed is complete, so compaction can fold all.
func (s *scenario) waitSealed(limit time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var sealed, parts uint64
		err := s.ch.conn.QueryRow(s.ctx, "SELECT countIf(open = last), count() FROM (SELECT `partition`, "+
			"argMax(open_segment, (chunk, last_offset)) AS open, max(last_offset) AS last FROM "+s.db+
			".usage_chunks WHERE topic = ? GROUP BY `partition`)", s.topic).Scan(&sealed, &parts)
		if err == nil && parts == uint64(s.partitions.Load()) && sealed == parts {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("partitions not sealed after %s: %d of %d (err %v)", limit, sealed, parts, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkOneRowPerGroup is issue #9's goal for closed windows whose partitions
// were all sealed and compacted: usage_<w> shows one row per group, and no
// raw row is left.
func (s *scenario) checkOneRowPerGroup() {
	s.t.Helper()
	var bad []string
	var detail []string
	for _, w := range []string{"1m", "1h"} {
		var viewRows, groups, raw uint64
		err := s.ch.conn.QueryRow(s.ctx, fmt.Sprintf(`SELECT
			(SELECT count() FROM %[1]s.usage_%[2]s WHERE topic = '%[3]s'),
			(SELECT count() FROM (SELECT DISTINCT window_start, workspace_id, project_id, api_key_id, provider, model, endpoint
				FROM %[1]s.usage_%[2]s WHERE topic = '%[3]s')),
			(SELECT count() FROM %[1]s.usage_rollup_%[2]s WHERE topic = '%[3]s')`, s.db, w, s.topic)).Scan(&viewRows, &groups, &raw)
		if err != nil {
			s.t.Fatalf("count rows of %s: %v", w, err)
		}
		if viewRows != groups || raw != 0 {
			bad = append(bad, fmt.Sprintf("usage_%s: %d rows for %d groups, %d raw rows left", w, viewRows, groups, raw))
		}
		detail = append(detail, fmt.Sprintf("usage_%s %d rows = %d groups", w, viewRows, groups))
	}
	s.res.check(s.t, "I10 one row per group", bad, strings.Join(detail, ", ")+", no raw row left")
}

// waitClosed waits until closed_through of the topic, over all partitions,
// is within a minute of wall clock minus the allowed lateness: every window
// of the streams (hours old) is closed.
func (s *scenario) waitClosed(limit time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var closed uint32
		var parts uint64
		err := s.ch.conn.QueryRow(s.ctx, "SELECT toUInt32(closed_through), partitions FROM "+s.db+
			".usage_progress_topic WHERE topic = ?", s.topic).Scan(&closed, &parts)
		want := time.Now().Add(-allowedLateness - time.Minute).Unix()
		if err == nil && int(parts) == int(s.partitions.Load()) && int64(closed) >= want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("closed_through not near now - %s after %s: %d over %d partitions (err %v)", allowedLateness, limit, closed, parts, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// priceModels gives every (provider, model) in the rollups one price from
// 1970 on, so that usage_cost_<w> has costs to compare; with one price per
// model the cost is linear in the rows, so usage_cost_1m and usage_cost_1h
// must sum to the same amount.
func (s *scenario) priceModels() {
	s.t.Helper()
	err := s.ch.conn.Exec(s.ctx, "INSERT INTO "+s.db+".usage_prices SELECT DISTINCT provider, model, toDateTime(0, 'UTC'), "+
		"toDecimal64(3, 9), toDecimal64(1, 9), toDecimal64(2, 9), toDecimal64(15, 9), toDecimal64(0, 9), 'faults', now() FROM "+
		s.db+".usage_rollup_1m WHERE topic = '"+s.topic+"'")
	if err != nil {
		s.t.Fatalf("insert prices: %v", err)
	}
}

// costTotals reads sum(requests) and sum(cost) of usage_cost_<window>.
func (s *scenario) costTotals(ctx context.Context, window string) (uint64, string, error) {
	var req uint64
	var cost string
	err := s.ch.conn.QueryRow(ctx, "SELECT sum(requests), toString(sum(cost)) FROM "+s.db+".usage_cost_"+window+
		" WHERE topic = ?", s.topic).Scan(&req, &cost)
	return req, cost, err
}

// storage describes what the rollups hold: rows an analyst reads per group,
// raw and compact rows, and manifests.
func (s *scenario) storage() string {
	s.t.Helper()
	var b strings.Builder
	for _, w := range []string{"1m", "1h"} {
		var viewRows, groups, raw, compact, manifests uint64
		err := s.ch.conn.QueryRow(s.ctx, fmt.Sprintf(`SELECT
			(SELECT count() FROM %[1]s.usage_%[2]s WHERE topic = '%[3]s'),
			(SELECT count() FROM (SELECT DISTINCT window_start, workspace_id, project_id, api_key_id, provider, model, endpoint
				FROM %[1]s.usage_%[2]s WHERE topic = '%[3]s')),
			(SELECT count() FROM %[1]s.usage_rollup_%[2]s WHERE topic = '%[3]s'),
			(SELECT count() FROM %[1]s.usage_compact_%[2]s WHERE topic = '%[3]s'),
			(SELECT count() FROM %[1]s.usage_compactions WHERE topic = '%[3]s' AND window = '%[2]s')`, s.db, w, s.topic)).
			Scan(&viewRows, &groups, &raw, &compact, &manifests)
		if err != nil {
			s.t.Fatalf("read storage of %s: %v", w, err)
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %d view rows for %d groups (%.2f per group), %d raw rows, %d compact rows, %d manifests",
			w, viewRows, groups, float64(viewRows)/float64(max(groups, 1)), raw, compact, manifests)
	}
	return b.String()
}

// exactness samples, while compactions (or a replay) run, what analysts
// read: usage_1m and usage_1h per workspace and model against the
// generators, and usage_cost_1m/1h (requests against the generators, cost
// against the value when sampling began and across the two window sizes).
type exactness struct {
	s       *scenario
	mu      sync.Mutex
	samples int
	diffs   []string
	stop    chan struct{}
	done    chan struct{}
}

// sampleExactness starts sampling as fast as the queries return.
func (s *scenario) sampleExactness() *exactness {
	s.t.Helper()
	wantReq := uint64(0)
	for _, byModel := range s.want.ByWorkspaceModel {
		for _, tot := range byModel {
			wantReq += tot.Requests
		}
	}
	_, baseCost, err := s.costTotals(s.ctx, "1m")
	if err != nil {
		s.t.Fatal(err)
	}
	x := &exactness{s: s, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(x.done)
		for {
			select {
			case <-x.stop:
				return
			default:
			}
			x.sample(wantReq, baseCost)
		}
	}()
	return x
}

func (x *exactness) sample(wantReq uint64, baseCost string) {
	ctx, cancel := context.WithTimeout(x.s.ctx, 20*time.Second)
	defer cancel()
	at := time.Now().Format("15:04:05.000")
	diffs := x.s.checkDiff(ctx)
	for _, w := range []string{"1m", "1h"} {
		req, cost, err := x.s.costTotals(ctx, w)
		switch {
		case err != nil:
			diffs = append(diffs, err.Error())
		case req != wantReq:
			diffs = append(diffs, fmt.Sprintf("usage_cost_%s: %d requests, generators %d", w, req, wantReq))
		case cost != baseCost:
			diffs = append(diffs, fmt.Sprintf("usage_cost_%s: cost %s, %s before", w, cost, baseCost))
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.samples++
	for _, d := range diffs {
		x.diffs = append(x.diffs, at+" "+d)
	}
}

// finish stops sampling and returns how many instants were sampled and
// every mismatch seen.
func (x *exactness) finish() (int, []string) {
	close(x.stop)
	<-x.done
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.samples, x.diffs
}

// sampled accumulates the samples of a case's phases for its report entry.
type sampled struct {
	samples, phases int
	diffs           []string
}

func (a *sampled) add(x *exactness) {
	n, d := x.finish()
	a.samples += n
	a.phases++
	a.diffs = append(a.diffs, d...)
}

// report records the invariant "exact during compaction".
func (a *sampled) report(s *scenario, what string) {
	s.t.Helper()
	s.res.check(s.t, "I1 exact while compacting", a.diffs, fmt.Sprintf(
		"%d sampled instants during %s: usage_1m, usage_1h (per workspace/model vs the generators) and usage_cost_1m/1h exact at each",
		a.samples, what))
}
