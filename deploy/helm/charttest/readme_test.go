package charttest

import (
	"regexp"
	"slices"
	"testing"
)

// chartOnly are README variables the chart deliberately does not set, with
// the reason. None today: test failpoints exist only in test builds and are
// not in the README.
var chartOnly = map[string]string{}

// TestREADMEVariablesCovered keeps the chart in step with the README's configuration table, the
// single list of the binary's variables: each one must be a config key of the chart's values or
// set by the chart itself.
func TestREADMEVariablesCovered(t *testing.T) {
	raw := readFile(t, repoPath("README.md"))
	rows := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]+)` \\|").FindAllStringSubmatch(string(raw), -1)
	if len(rows) < 20 {
		t.Fatalf("found %d variables in README.md's configuration table; has its format changed?", len(rows))
	}
	vals := loadChart(t).Values
	config, _ := vals["config"].(map[string]any)
	setByChart := []string{"METRICS_ADDR", "CLICKHOUSE_MIGRATE", "CLICKHOUSE_PASSWORD", "KAFKA_SASL_PASSWORD",
		"KAFKA_TLS_ENABLED", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE",
		"CLICKHOUSE_TLS_ENABLED", "CLICKHOUSE_TLS_CA_FILE", "CLICKHOUSE_TLS_CERT_FILE", "CLICKHOUSE_TLS_KEY_FILE"}
	for _, row := range rows {
		name := row[1]
		_, inConfig := config[name]
		switch {
		case inConfig, slices.Contains(setByChart, name):
		case chartOnly[name] != "":
		default:
			t.Errorf("README variable %s is neither in the chart's values.yaml config nor set by the chart; add it (values.yaml, values.schema.json)", name)
		}
		if !slices.Contains(knownEnv, name) && chartOnly[name] == "" {
			t.Errorf("README variable %s is missing from knownEnv", name)
		}
	}
	for name := range config {
		if !slices.Contains(knownEnv, name) {
			t.Errorf("values.yaml config has %s, which the binary does not read", name)
		}
	}
}
