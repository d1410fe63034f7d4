package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryVariable keeps the README's configuration table and
// the env struct in agreement: names, and defaults where the code has one.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	typ := reflect.TypeOf(env{})
	var inCode []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		inCode = append(inCode, name)
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s is read by the service but not documented in README.md", name)
			continue
		}
		if def, has := f.Tag.Lookup("default"); has && doc != def {
			t.Errorf("%s: README says default %q, code says %q", name, doc, def)
		}
	}
	for name := range documented {
		if !slices.Contains(inCode, name) {
			t.Errorf("README.md documents %s, which the service does not read", name)
		}
	}
}

func TestInvalidConfigNamesTheVariable(t *testing.T) {
	base := map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092"}
	cases := []struct {
		name, key, value, want string
	}{
		{"missing brokers", "KAFKA_BROKERS", "", "KAFKA_BROKERS"},
		{"chunk size not a number", "CHUNK_SIZE", "many", "CHUNK_SIZE"},
		{"chunk size too small", "CHUNK_SIZE", "5", "CHUNK_SIZE"},
		{"window not dividing a day", "ROLLUP_WINDOWS", "1m,7m", "ROLLUP_WINDOWS"},
		{"bad duration", "FLUSH_INTERVAL", "soon", "FLUSH_INTERVAL"},
		{"flush too often", "FLUSH_INTERVAL", "1ms", "FLUSH_INTERVAL"},
		{"bad log level", "LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"shutdown not below the session timeout", "SHUTDOWN_TIMEOUT", "45s", "KAFKA_SESSION_TIMEOUT"},
		{"rebalance not above shutdown", "KAFKA_REBALANCE_TIMEOUT", "15s", "KAFKA_REBALANCE_TIMEOUT"},
		{"empty database", "CLICKHOUSE_DATABASE", " ", "CLICKHOUSE_DATABASE"},
		{"bad migrate flag", "CLICKHOUSE_MIGRATE", "maybe", "CLICKHOUSE_MIGRATE"},
		{"message limit", "MAX_MESSAGE_BYTES", "0", "MAX_MESSAGE_BYTES"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			t.Setenv(tc.key, tc.value)
			_, err := loadConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestDefaultsAreValid(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "a:9092,b:9092")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.consumer.Brokers; !slices.Equal(got, []string{"a:9092", "b:9092"}) {
		t.Errorf("brokers = %v", got)
	}
	if names := []string{cfg.aggregate.Windows[0].Name, cfg.aggregate.Windows[1].Name}; !slices.Equal(names, []string{"1m", "1h"}) {
		t.Errorf("windows = %v, want [1m 1h]", names)
	}
	if !reflect.DeepEqual(cfg.sink.Windows, cfg.aggregate.Windows) {
		t.Error("sink and aggregator disagree on windows")
	}
}

func TestFetchBufferBytesFollowsTheMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		configured, memLimit, want int64
	}{
		{0, 900 * mib, 225 * mib},       // a quarter of the chart's GOMEMLIMIT for a 1 GiB pod
		{0, 1 << 62, 256 * mib},         // no GOMEMLIMIT: capped
		{0, 32 * mib, 32 * mib},         // at least one fetch: twice its 16 MiB
		{64 * mib, 900 * mib, 64 * mib}, // set explicitly
	} {
		if got := fetchBufferBytes(c.configured, 16*mib, c.memLimit); got != c.want {
			t.Errorf("fetchBufferBytes(%d, 16 MiB, %d) = %d, want %d", c.configured, c.memLimit, got, c.want)
		}
	}
}
