package main

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
	"github.com/usage-rollup/usage-rollup/internal/security"
)

// TestREADMEDocumentsEveryVariable keeps the README's configuration table and
// the env struct in agreement: names, and every default (the packages'
// DefaultConfig values, or env's own default tags).
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
	defaults := defaultEnv()
	dv := reflect.ValueOf(defaults)
	typ := dv.Type()
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
		if def, has := f.Tag.Lookup("default"); has {
			if doc != def {
				t.Errorf("%s: README says default %q, code says %q", name, doc, def)
			}
			continue
		}
		if !sameDefault(t, dv.Field(i), doc) {
			t.Errorf("%s: README says default %q, the package default is %v", name, doc, dv.Field(i))
		}
	}
	for name := range documented {
		if !slices.Contains(inCode, name) {
			t.Errorf("README.md documents %s, which the service does not read", name)
		}
	}
}

// sameDefault reports whether the README's default text doc means v. A zero
// string, list or secret is documented as "(empty)" or with a phrase.
func sameDefault(t *testing.T, v reflect.Value, doc string) bool {
	t.Helper()
	switch x := v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(doc)
		return err == nil && d == x
	case []string:
		return doc == strings.Join(x, ",") || len(x) == 0
	case string:
		return doc == x || x == ""
	case security.Secret:
		return x == ""
	default:
		return doc == fmt.Sprint(x)
	}
}

// TestDefaultsComeFromThePackages: every field tag names a real package
// field, and a variable left unset takes that field's DefaultConfig value.
func TestDefaultsComeFromThePackages(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "a:9092")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := ingest.DefaultConfig()
	if cfg.consumer.FlushInterval != want.FlushInterval || cfg.consumer.RebalanceTimeout != want.RebalanceTimeout ||
		cfg.consumer.FetchMaxBytes != want.FetchMaxBytes || cfg.consumer.Topic != want.Topic {
		t.Errorf("consumer defaults not taken from ingest.DefaultConfig: %+v", cfg.consumer)
	}
	if agg := aggregate.DefaultConfig(); cfg.aggregate.ChunkSize != agg.ChunkSize || cfg.aggregate.MaxGroups != agg.MaxGroups ||
		cfg.aggregate.AllowedLateness != agg.AllowedLateness || len(cfg.aggregate.Windows) != len(agg.Windows) {
		t.Errorf("aggregate defaults not taken from aggregate.DefaultConfig: %+v", cfg.aggregate)
	}
	if ch := chconn.DefaultConfig(); cfg.clickhouse.Database != ch.Database || cfg.clickhouse.StatementTimeout != ch.StatementTimeout {
		t.Errorf("clickhouse defaults not taken from chconn.DefaultConfig: %+v", cfg.clickhouse)
	}
	if ev := events.DefaultConfig(); cfg.events != ev {
		t.Errorf("events defaults %+v, want %+v", cfg.events, ev)
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
		{"fetch buffer below two fetches", "KAFKA_FETCH_BUFFER_BYTES", "1024", "KAFKA_FETCH_BUFFER_BYTES (1024) must be at least twice KAFKA_FETCH_MAX_BYTES"},
		{"TLS file without TLS", "KAFKA_TLS_CA_FILE", "/ca.pem", "KAFKA_TLS_ENABLED must be true when KAFKA_TLS_CA_FILE"},
		{"clickhouse client cert without key", "CLICKHOUSE_TLS_CERT_FILE", "/c.pem", "CLICKHOUSE_TLS_ENABLED must be true"},
		{"dead letters to the source topic", "DEAD_LETTER_TOPIC", "usage-events", "DEAD_LETTER_TOPIC must differ from KAFKA_TOPIC"},
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
