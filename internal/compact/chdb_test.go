package compact

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// chdbQueries runs a scenario on the ClickHouse embedded in chDB.
const chdbQueries = "../../scripts/chdb_queries.py"

// TestCompactionSQLOnModernClickHouse runs the migrations rendered for a
// current server and the compactor's own statements (the discovery query,
// the fold INSERT ... SELECT, the fenced manifest INSERT and the deletion
// mutation) in chDB, and checks that the view sums stay the same through a
// first and an incremental compaction and the deletion of folded pieces.
func TestCompactionSQLOnModernClickHouse(t *testing.T) {
	version := servicetest.NeedChDB(t)
	const database = "usage_chdb"
	migrations, err := schema.RenderMigrations(version, database, windows)
	if err != nil {
		t.Fatal(err)
	}
	c := &Compactor{cfg: Config{Topic: testTopic, BatchWindows: 200}, database: "`" + database + "`"}
	bind := func(q string) string { return strings.ReplaceAll(q, "?", "'"+testTopic+"'") }
	bindPublish := func(q string) string {
		return strings.Replace(strings.Replace(q, "?", "'"+testTopic+"'", 1), "?", "'1m'", 1)
	}
	// Raw pieces of partitions 0 and 1, chunks 0..2, two versions of each
	// group, in windows t0 and t0+60.
	var setup []string
	for p := range 2 {
		for chunk := range 3 {
			for v, n := range []int{2, 5} { // the longer prefix (version 1) wins
				for _, ws := range []int{t0, t0 + 60} {
					setup = append(setup, fmt.Sprintf("INSERT INTO usage_rollup_1m (window_start, workspace_id, project_id, "+
						"api_key_id, provider, model, endpoint, topic, `partition`, chunk, segment, version, requests, "+
						"total_tokens, latency_ms_max, written_at) VALUES (toDateTime(%d, 'UTC'), 'w%d', 'p', 'k', 'openai', "+
						"'gpt-4o', '/v1', '%s', %d, %d, %d, %d, %d, %d, %d, now())",
						ws, chunk%2, testTopic, p, chunk, chunk*100, chunk*100+v, n+p+chunk, 3*(n+p+chunk), 40+n+chunk))
				}
			}
		}
	}
	// A second segment of chunk 2 (at offset 250: a seal record ended the
	// first there), in workspace w0.
	for p := range 2 {
		for _, ws := range []int{t0, t0 + 60} {
			setup = append(setup, fmt.Sprintf("INSERT INTO usage_rollup_1m (window_start, workspace_id, project_id, "+
				"api_key_id, provider, model, endpoint, topic, `partition`, chunk, segment, version, requests, "+
				"total_tokens, latency_ms_max, written_at) VALUES (toDateTime(%d, 'UTC'), 'w0', 'p', 'k', 'openai', "+
				"'gpt-4o', '/v1', '%s', %d, 2, 250, 260, %d, %d, 90, now())", ws, testTopic, p, 7+p, 21+p))
		}
	}
	sums := "SELECT toString(groupArray(tuple(window_start, workspace_id, s, t))) FROM (SELECT window_start, workspace_id, " +
		"sum(requests) AS s, sum(total_tokens) AS t FROM %s GROUP BY window_start, workspace_id " +
		"ORDER BY window_start, workspace_id)"
	type scriptCase struct {
		Name  string   `json:"name"`
		Query string   `json:"query"`
		Setup []string `json:"setup,omitempty"`
	}
	compactTo := func(base map[int64]manifest, below, belowSeg []int64) ([]string, map[int64]manifest) {
		var plans []plan
		next := map[int64]manifest{}
		for _, ws := range []int64{t0, t0 + 60} {
			p := plan{windowStart: ws, base: base[ws]}
			p.next = nextManifest(testTopic, "1m", ws, p.base, frontier{[]int32{0, 1}, below, belowSeg})
			plans, next[ws] = append(plans, p), p.next
		}
		publish, _ := c.publishQuery(plans, time.Now().Add(time.Hour))
		return []string{bind(c.foldQuery(w1m, plans)), bindPublish(publish)}, next
	}
	first, gen1 := compactTo(nil, []int64{1, 1}, []int64{0, 0})
	second, gen2 := compactTo(gen1, []int64{2, 2}, []int64{0, 0})
	sealed, gen3 := compactTo(gen2, []int64{2, 2}, []int64{250, 250})
	folded, _ := gen3[t0].folded()
	deletion := bind("ALTER TABLE usage_rollup_1m DELETE WHERE topic = ? AND " + folded + " SETTINGS mutations_sync = 1")
	complete, _ := frontier{[]int32{0, 1}, []int64{2, 2}, []int64{250, 250}}.folded()
	var cases []scriptCase
	for _, step := range []struct {
		name  string
		setup []string
	}{{"raw", nil}, {"first compaction", first}, {"incremental compaction", second}, {"sealed segment compaction", sealed},
		{"folded pieces deleted", []string{deletion}}} {
		cases = append(cases,
			scriptCase{Name: step.name + ": usage_1m", Query: fmt.Sprintf(sums, "usage_1m"), Setup: step.setup},
			scriptCase{Name: step.name + ": usage_cost_1m", Query: fmt.Sprintf(sums, "usage_cost_1m")},
			scriptCase{Name: step.name + ": rows", Query: "SELECT count() FROM usage_1m"},
			scriptCase{Name: step.name + ": raw rows", Query: "SELECT count() FROM usage_rollup_1m FINAL"},
			scriptCase{Name: step.name + ": pending", Query: bind(c.pendingQuery(w1m, t0+600, complete))},
		)
	}
	scenario := map[string]any{"database": database, "migrations": migrations, "setup": setup, "cases": cases}
	dir := t.TempDir()
	data, err := json.Marshal(scenario)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scenario.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "python3", chdbQueries, dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", chdbQueries, err, stderr.String())
	}
	var res struct {
		Version string `json:"version"`
		Results []struct {
			Name string     `json:"name"`
			Rows [][]string `json:"rows"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]string{}
	for _, r := range res.Results {
		got[r.Name] = fmt.Sprint(r.Rows)
		t.Logf("%s: %s", r.Name, got[r.Name])
	}
	for _, step := range []string{"first compaction", "incremental compaction", "sealed segment compaction", "folded pieces deleted"} {
		for _, view := range []string{"usage_1m", "usage_cost_1m"} {
			if a, b := got[step+": "+view], got["raw: "+view]; a != b {
				t.Errorf("ClickHouse %s, %s: %s = %s, want %s", res.Version, step, view, a, b)
			}
		}
	}
	// 16 pieces (2 windows x 2 partitions x (3 chunks + the second segment
	// of chunk 2); chunk 1 has workspace w1, the others w0); after the first
	// compaction 2 compact rows + 12 pieces of chunks 1 and 2; after the
	// second 4 + 8 pieces of chunk 2; after the sealed segment's 4 + the 4
	// pieces of chunk 2's open segment, the only raw rows left after the
	// deletion.
	for step, want := range map[string][2]string{"raw": {"[[16]]", "[[16]]"}, "first compaction": {"[[14]]", "[[16]]"},
		"incremental compaction": {"[[12]]", "[[16]]"}, "sealed segment compaction": {"[[8]]", "[[16]]"},
		"folded pieces deleted": {"[[8]]", "[[4]]"}} {
		if g := got[step+": rows"]; g != want[0] {
			t.Errorf("%s: usage_1m has %s rows, want %s", step, g, want[0])
		}
		if g := got[step+": raw rows"]; g != want[1] {
			t.Errorf("%s: usage_rollup_1m has %s rows, want %s", step, g, want[1])
		}
	}
	if g := got["incremental compaction: pending"]; g == "[]" {
		t.Errorf("no window pending after the incremental compaction, though the sealed segment is not folded yet")
	}
	if g := got["sealed segment compaction: pending"]; g != "[]" {
		t.Errorf("windows still pending after the sealed segment's compaction: %s", g)
	}
}
