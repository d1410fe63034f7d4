package charttest

import (
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/monitoring/alerts.yaml from the chart's PrometheusRule")

// knownMetrics are the series the service exposes (histograms: their _bucket, _sum and _count).
var knownMetrics = []string{
	"usage_rollup_events_consumed_total", "usage_rollup_consumed_bytes_total", "usage_rollup_events_accepted_total",
	"usage_rollup_events_duplicate_total", "usage_rollup_events_rejected_total", "usage_rollup_events_late_total",
	"usage_rollup_dead_letters_total", "usage_rollup_dead_letter_errors_total", "usage_rollup_dead_letters_truncated_total",
	"usage_rollup_dead_letters_dropped_total", "usage_rollup_chunks_completed_total",
	"usage_rollup_segments_cut_total", "usage_rollup_batches_written_total", "usage_rollup_rows_written_total",
	"usage_rollup_batch_write_errors_total", "usage_rollup_batch_write_duration_seconds",
	"usage_rollup_offset_commits_total", "usage_rollup_offset_commit_errors_total",
	"usage_rollup_offset_commit_duration_seconds", "usage_rollup_consumer_lag", "usage_rollup_watermark_timestamp_seconds",
	"usage_rollup_closed_through_timestamp_seconds", "usage_rollup_freshness_seconds",
	"usage_rollup_last_progress_timestamp_seconds", "usage_rollup_rebalances_total", "usage_rollup_assigned_partitions",
	"usage_rollup_groups_in_memory", "usage_rollup_state_bytes", "usage_rollup_ready",
	"usage_rollup_offset_out_of_range", "usage_rollup_log_gap_offsets_total", "usage_rollup_chunks_carried_total",
}

// requiredAlerts are the alerts the operations guide documents.
var requiredAlerts = []string{
	"UsageRollupLagGrowing", "UsageRollupConsumerStalled", "UsageRollupHighRejectionRate",
	"UsageRollupDeadLettersRefused", "UsageRollupInsertErrors", "UsageRollupInsertErrorsPermanent", "UsageRollupStale",
	"UsageRollupOffsetOutOfRange",
}

const (
	alertsFile    = "../../monitoring/alerts.yaml"
	dashboardFile = "../../monitoring/dashboard.json"
	alertsHeader  = "# Prometheus alerting rules for usage-rollup (a plain rule file: `rule_files:` in prometheus.yml).\n" +
		"# Generated from the Helm chart's PrometheusRule with default values; edit\n" +
		"# deploy/helm/usage-rollup/templates/prometheusrule.yaml and run\n" +
		"#   (cd deploy/helm/charttest && go test -run TestAlertsFileMatchesChart -update)\n" +
		"# Runbooks: docs/operations.md, section Alerts.\n"
)

var promParser = parser.NewParser(parser.Options{})

func TestServiceMonitor(t *testing.T) {
	r := mustRender(t, monitoringValues)
	sm := r.monitoring(t, "ServiceMonitor")
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %s labels %v", sm.GetAPIVersion(), sm.GetLabels())
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	svc := one(t, "Service", r.Services)
	if !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) || len(sel) == 0 {
		t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sel, svc.Labels)
	}
	ns, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	if !slices.Equal(ns, []string{namespace}) {
		t.Errorf("namespaceSelector %v", ns)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("endpoints %v", eps)
	}
	ep := eps[0].(map[string]any)
	if ep["port"] != "metrics" || ep["path"] != "/metrics" || ep["interval"] != "30s" {
		t.Errorf("endpoint %v", ep)
	}
	relabel, _ := ep["relabelings"].([]any)
	if len(relabel) == 0 || relabel[0].(map[string]any)["targetLabel"] != "job" || relabel[0].(map[string]any)["replacement"] != "usage-rollup" {
		t.Errorf("the first relabeling must set job=usage-rollup (the alerts select it): %v", relabel)
	}
	if got := svc.Spec.Ports[0].Name; got != ep["port"] {
		t.Errorf("endpoint port %v, Service port name %s", ep["port"], got)
	}
}

// ruleFile is the rule file shape shared by the PrometheusRule spec and deploy/monitoring/alerts.yaml.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func chartRuleSpec(t *testing.T, values string) map[string]any {
	t.Helper()
	r := mustRender(t, values)
	spec, ok, _ := unstructured.NestedMap(r.monitoring(t, "PrometheusRule").Object, "spec")
	if !ok {
		t.Fatal("PrometheusRule has no spec")
	}
	return spec
}

func TestPrometheusRule(t *testing.T) {
	spec := chartRuleSpec(t, monitoringValues)
	js, _ := json.Marshal(spec)
	var rf ruleFile
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("PrometheusRule spec: %v", err)
	}
	var names []string
	for _, g := range rf.Groups {
		for _, rule := range g.Rules {
			names = append(names, rule.Alert)
			if _, err := promParser.ParseExpr(rule.Expr); err != nil {
				t.Errorf("%s: expr does not parse: %v", rule.Alert, err)
			}
			if _, err := model.ParseDuration(rule.For); err != nil {
				t.Errorf("%s: for %q: %v", rule.Alert, rule.For, err)
			}
			if sev := rule.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q", rule.Alert, sev)
			}
			for _, a := range []string{"summary", "description"} {
				if rule.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", rule.Alert, a)
				}
			}
			if !strings.Contains(rule.Annotations["description"], "Runbook: docs/operations.md#"+strings.ToLower(rule.Alert)) {
				t.Errorf("%s: description has no runbook hint", rule.Alert)
			}
			if _, ok := rule.Annotations["runbook_url"]; ok {
				t.Errorf("%s: runbook_url without runbookBaseURL", rule.Alert)
			}
		}
	}
	sort.Strings(names)
	want := slices.Clone(requiredAlerts)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("alerts %v, want %v", names, want)
	}
	for _, g := range rf.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "UsageRollupInsertErrorsPermanent" && rule.Labels["severity"] != "critical" {
				t.Errorf("permanent write errors must be critical")
			}
			if rule.Alert == "UsageRollupOffsetOutOfRange" && rule.Labels["severity"] != "critical" {
				t.Errorf("a partition held unread must be critical")
			}
		}
	}

	// Values flow into the rules.
	custom := chartRuleSpec(t, monitoringValues+`
  prometheusRule:
    enabled: true
    selector: 'job="billing-rollup", env="prod"'
    runbookBaseURL: https://runbooks.example.com/usage-rollup
    additionalAlertLabels: {team: billing}
    lagGrowing: {threshold: 2500000, for: 15m}
`)
	js, _ = json.Marshal(custom)
	s := string(js)
	for _, part := range []string{`usage_rollup_consumer_lag{job=\"billing-rollup\", env=\"prod\"}`, "2500000", `"for":"15m"`,
		`"runbook_url":"https://runbooks.example.com/usage-rollup#usagerolluplaggrowing"`, `"team":"billing"`} {
		if !strings.Contains(s, part) {
			t.Errorf("custom PrometheusRule lacks %s", part)
		}
	}
}

func TestAlertsFileMatchesChart(t *testing.T) {
	spec := chartRuleSpec(t, monitoringValues)
	if *update {
		out, err := yaml.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(alertsFile, append([]byte(alertsHeader), out...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw := readFile(t, alertsFile)
	var file map[string]any
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(file)
	b, _ := json.Marshal(spec)
	if string(a) != string(b) {
		t.Errorf("%s differs from the chart's PrometheusRule with default values; regenerate it with -update", alertsFile)
	}
	// The same check `promtool check rules` makes.
	if _, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promParser, nil); len(errs) != 0 {
		t.Errorf("%s: %v", alertsFile, errs)
	}
}

var metricRef = regexp.MustCompile(`\b(usage_rollup_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)

// checkMetricNames fails for usage_rollup_* names the service does not expose.
func checkMetricNames(t *testing.T, where, expr string) {
	t.Helper()
	for _, m := range metricRef.FindAllString(expr, -1) {
		if !strings.HasPrefix(m, "usage_rollup_") {
			continue
		}
		base := m
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(knownMetrics, b) && strings.HasSuffix(b, "_seconds") {
				base = b
			}
		}
		if !slices.Contains(knownMetrics, base) {
			t.Errorf("%s: unknown metric %s", where, m)
		}
	}
}

// TestMetricsExist checks that every metric the alerts and the dashboard use is registered by
// the service's code (a name given as a string literal in a non-test Go file of the repository).
func TestMetricsExist(t *testing.T) {
	inCode := map[string]bool{}
	lit := regexp.MustCompile(`"(usage_rollup_[a-z_]+)"`)
	root := repoPath()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "deploy" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			inCode[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range knownMetrics {
		if !inCode[m] {
			t.Errorf("%s is used by the alerts or the dashboard but no Go file of the service registers it", m)
		}
	}
}

func TestAlertMetricNames(t *testing.T) {
	raw := readFile(t, alertsFile)
	checkMetricNames(t, alertsFile, string(raw))
}

// dashboard is the part of the Grafana model the test looks at.
type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaVars replaces the dashboard's template variables so that its queries parse as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*", "$job", "usage-rollup", "$instance", ".*")

func TestDashboard(t *testing.T) {
	raw := readFile(t, dashboardFile)
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q panels %d", d.UID, d.Title, len(d.Panels))
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, v := range []string{"datasource", "namespace", "job", "instance"} {
		if !slices.Contains(vars, v) {
			t.Errorf("dashboard lacks variable $%s", v)
		}
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the grid", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %v, %d targets", p.Title, p.Datasource, len(p.Targets))
		}
		for _, tg := range p.Targets {
			expr := grafanaVars.Replace(tg.Expr)
			if _, err := promParser.ParseExpr(expr); err != nil {
				t.Errorf("panel %q query %s: %v\n%s", p.Title, tg.RefID, err, expr)
			}
			checkMetricNames(t, "panel "+p.Title, tg.Expr)
			for _, m := range metricRef.FindAllString(tg.Expr, -1) {
				used[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	for _, m := range knownMetrics {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}

	// The chart ships the same file.
	chartCopy := readFile(t, chartDir+"/files/dashboard.json")
	if string(chartCopy) != string(raw) {
		t.Errorf("%s/files/dashboard.json differs from %s: copy it over", chartDir, dashboardFile)
	}
	r := mustRender(t, monitoringValues)
	cm := r.configMap(t, fullname+"-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v", cm.Labels)
	}
	if len(cm.Data) != 1 || strings.TrimSpace(cm.Data["usage-rollup.json"]) != strings.TrimSpace(string(raw)) {
		t.Errorf("dashboard ConfigMap data differs from %s", dashboardFile)
	}
}

func TestMonitoringOffByDefault(t *testing.T) {
	r := mustRender(t, defaultValues)
	if len(r.Monitoring) != 0 {
		t.Errorf("monitoring objects rendered by default: %v", r.kinds())
	}
	for _, cm := range r.ConfigMaps {
		if cm.Labels["grafana_dashboard"] != "" {
			t.Errorf("dashboard ConfigMap rendered by default")
		}
	}
}

// alertScenario is a synthetic history and whether an alert's expression holds over the last
// `for` minutes of it.
type alertScenario struct {
	name   string
	alert  string
	series string
	fires  bool
}

func TestAlertsFire(t *testing.T) {
	raw := readFile(t, alertsFile)
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	fors := map[string]time.Duration{}
	for _, g := range rf.Groups {
		for _, rule := range g.Rules {
			exprs[rule.Alert] = rule.Expr
			d, err := model.ParseDuration(rule.For)
			if err != nil {
				t.Fatal(err)
			}
			fors[rule.Alert] = time.Duration(d)
		}
	}
	const sel = `job="usage-rollup", namespace="billing", instance="10.0.0.1:9464"`
	const sel2 = `job="usage-rollup", namespace="billing", instance="10.0.0.2:9464"`
	// Histories are one sample a minute for 60 minutes; the expression is evaluated every minute
	// over the alert's `for` window ending at minute 60.
	scenarios := []alertScenario{
		{"lag growing past threshold", "UsageRollupLagGrowing", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 0+3000x60
usage_rollup_consumer_lag{` + sel2 + `, partition="1"} 0+2000x60`, true},
		{"lag high but shrinking", "UsageRollupLagGrowing", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 500000-1000x60`, false},
		{"lag growing but small", "UsageRollupLagGrowing", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 0+100x60`, false},
		{"partition reported twice during a rebalance counts once", "UsageRollupLagGrowing", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 0+1500x60
usage_rollup_consumer_lag{` + sel2 + `, partition="0"} 0+1500x60`, false},
		{"stalled with lag", "UsageRollupConsumerStalled", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 0+10x60
usage_rollup_last_progress_timestamp_seconds{` + sel + `} 0+60x40 2400x20`, true},
		{"progressing with lag", "UsageRollupConsumerStalled", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 0+10x60
usage_rollup_last_progress_timestamp_seconds{` + sel + `} 0+60x60`, false},
		{"idle without lag", "UsageRollupConsumerStalled", `
usage_rollup_consumer_lag{` + sel + `, partition="0"} 0x60
usage_rollup_last_progress_timestamp_seconds{` + sel + `} 0x60`, false},
		{"2% rejected", "UsageRollupHighRejectionRate", `
usage_rollup_events_consumed_total{` + sel + `} 0+6000x60
usage_rollup_events_rejected_total{` + sel + `, reason="invalid_json"} 0+120x60`, true},
		{"0.5% rejected", "UsageRollupHighRejectionRate", `
usage_rollup_events_consumed_total{` + sel + `} 0+6000x60
usage_rollup_events_rejected_total{` + sel + `, reason="invalid_json"} 0+30x60`, false},
		{"no traffic", "UsageRollupHighRejectionRate", `
usage_rollup_events_consumed_total{` + sel + `} 0x60
usage_rollup_events_rejected_total{` + sel + `, reason="invalid_json"} 0x60`, false},
		{"dead letter refused 10m ago", "UsageRollupDeadLettersRefused", `
usage_rollup_dead_letter_errors_total{` + sel + `, class="transient"} 0+2x60
usage_rollup_dead_letter_errors_total{` + sel + `, class="permanent"} 0x50 1x10`, true},
		{"dead-letter topic unavailable only", "UsageRollupDeadLettersRefused", `
usage_rollup_dead_letter_errors_total{` + sel + `, class="transient"} 0+5x60
usage_rollup_dead_letter_errors_total{` + sel + `, class="permanent"} 0x60`, false},
		{"dead letter refused 50m ago", "UsageRollupDeadLettersRefused", `
usage_rollup_dead_letter_errors_total{` + sel + `, class="permanent"} 0x10 1x50`, false},
		{"transient write errors", "UsageRollupInsertErrors", `
usage_rollup_batch_write_errors_total{` + sel + `, class="transient"} 0+3x60
usage_rollup_batch_write_errors_total{` + sel + `, class="permanent"} 0x60`, true},
		{"write errors without class label", "UsageRollupInsertErrors", `
usage_rollup_batch_write_errors_total{` + sel + `} 0+3x60`, true},
		{"no write errors", "UsageRollupInsertErrors", `
usage_rollup_batch_write_errors_total{` + sel + `, class="transient"} 0x60`, false},
		{"permanent write errors", "UsageRollupInsertErrorsPermanent", `
usage_rollup_batch_write_errors_total{` + sel + `, class="permanent"} 0+1x60`, true},
		{"transient only", "UsageRollupInsertErrorsPermanent", `
usage_rollup_batch_write_errors_total{` + sel + `, class="transient"} 0+3x60
usage_rollup_batch_write_errors_total{` + sel + `, class="permanent"} 5x60`, false},
		{"stale tables", "UsageRollupStale", `
usage_rollup_freshness_seconds{` + sel + `} 0+60x60`, true},
		{"fresh tables", "UsageRollupStale", `
usage_rollup_freshness_seconds{` + sel + `} 30x60`, false},
		{"committed offset past the log end", "UsageRollupOffsetOutOfRange", `
usage_rollup_offset_out_of_range{` + sel + `, partition="3"} 1x60`, true},
		{"held partition moved to another pod", "UsageRollupOffsetOutOfRange", `
usage_rollup_offset_out_of_range{` + sel + `, partition="3"} 1x58 stale
usage_rollup_offset_out_of_range{` + sel2 + `, partition="3"} _x59 1`, true},
		{"past the log end for less than a minute", "UsageRollupOffsetOutOfRange", `
usage_rollup_offset_out_of_range{` + sel + `, partition="3"} _x60 1`, false},
		{"offset reset, partition consumed again", "UsageRollupOffsetOutOfRange", `
usage_rollup_offset_out_of_range{` + sel + `, partition="3"} 1x50 stale`, false},
		{"every partition within its log", "UsageRollupOffsetOutOfRange", `
usage_rollup_consumer_lag{` + sel + `, partition="3"} 10x60`, false},
	}
	engine := promqltest.NewTestEngine(t, false, 0, 1_000_000)
	covered := map[string]bool{}
	for _, sc := range scenarios {
		t.Run(sc.alert+"/"+sc.name, func(t *testing.T) {
			expr, ok := exprs[sc.alert]
			if !ok {
				t.Fatalf("no alert %s in %s", sc.alert, alertsFile)
			}
			if sc.fires {
				covered[sc.alert] = true
			}
			storage := promqltest.LoadedStorage(t, "load 1m"+sc.series)
			end := time.Unix(0, 0).Add(60 * time.Minute)
			holds := true
			for at := end.Add(-fors[sc.alert]); !at.After(end); at = at.Add(time.Minute) {
				q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, at)
				if err != nil {
					t.Fatal(err)
				}
				res := q.Exec(context.Background())
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				vec, err := res.Vector()
				if err != nil {
					t.Fatal(err)
				}
				q.Close()
				holds = holds && len(vec) > 0
			}
			if holds != sc.fires {
				t.Errorf("%s fires=%v, want %v\nexpr: %s", sc.alert, holds, sc.fires, expr)
			}
		})
	}
	for _, a := range requiredAlerts {
		if !covered[a] {
			t.Errorf("no scenario where %s fires", a)
		}
	}
}
