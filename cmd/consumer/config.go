package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/compact"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/fielderr"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/security"
	"github.com/usage-rollup/usage-rollup/internal/sink"
)

// env is the service's whole environment. Every variable is documented in
// README.md (a test checks that the table and this struct agree).
//
// A `field` tag names the package Config field a variable sets
// ("ingest.FlushInterval"): its default is that package's DefaultConfig
// value (defaultEnv), and an invalid value the package reports by field name
// is reported by variable name (nameFields). Only variables that belong to
// no package carry their default here. Passwords are security.Secret from the
// moment they are read.
type env struct {
	KafkaBrokers           []string        `envconfig:"KAFKA_BROKERS" required:"true" field:"ingest.Brokers"`
	KafkaTopic             string          `envconfig:"KAFKA_TOPIC" field:"ingest.Topic"`
	KafkaGroupID           string          `envconfig:"KAFKA_GROUP_ID" field:"ingest.GroupID"`
	KafkaSessionTimeout    time.Duration   `envconfig:"KAFKA_SESSION_TIMEOUT" field:"ingest.SessionTimeout"`
	KafkaRebalanceTimeout  time.Duration   `envconfig:"KAFKA_REBALANCE_TIMEOUT" field:"ingest.RebalanceTimeout"`
	KafkaHeartbeatInterval time.Duration   `envconfig:"KAFKA_HEARTBEAT_INTERVAL" field:"ingest.HeartbeatInterval"`
	KafkaFetchMaxBytes     int             `envconfig:"KAFKA_FETCH_MAX_BYTES" field:"ingest.FetchMaxBytes"`
	KafkaFetchBufferBytes  int64           `envconfig:"KAFKA_FETCH_BUFFER_BYTES" field:"ingest.FetchBufferBytes"`
	KafkaTLSEnabled        bool            `envconfig:"KAFKA_TLS_ENABLED" field:"ingest.Security.TLS.Enabled"`
	KafkaTLSCAFile         string          `envconfig:"KAFKA_TLS_CA_FILE" field:"ingest.Security.TLS.CAFile"`
	KafkaTLSCertFile       string          `envconfig:"KAFKA_TLS_CERT_FILE" field:"ingest.Security.TLS.CertFile"`
	KafkaTLSKeyFile        string          `envconfig:"KAFKA_TLS_KEY_FILE" field:"ingest.Security.TLS.KeyFile"`
	KafkaSASLMechanism     string          `envconfig:"KAFKA_SASL_MECHANISM" field:"ingest.Security.SASLMechanism"`
	KafkaSASLUsername      string          `envconfig:"KAFKA_SASL_USERNAME" field:"ingest.Security.SASLUsername"`
	KafkaSASLPassword      security.Secret `envconfig:"KAFKA_SASL_PASSWORD" field:"ingest.Security.SASLPassword"`

	ClickHouseAddr          []string        `envconfig:"CLICKHOUSE_ADDR" field:"chconn.Addr"`
	ClickHouseDatabase      string          `envconfig:"CLICKHOUSE_DATABASE" field:"chconn.Database"`
	ClickHouseUsername      string          `envconfig:"CLICKHOUSE_USERNAME" field:"chconn.Username"`
	ClickHousePassword      security.Secret `envconfig:"CLICKHOUSE_PASSWORD" field:"chconn.Password"`
	ClickHouseDialTimeout   time.Duration   `envconfig:"CLICKHOUSE_DIAL_TIMEOUT" field:"chconn.DialTimeout"`
	ClickHouseInsertTimeout time.Duration   `envconfig:"CLICKHOUSE_INSERT_TIMEOUT" field:"chconn.StatementTimeout"`
	ClickHouseMigrate       bool            `envconfig:"CLICKHOUSE_MIGRATE" default:"true"`
	ClickHouseTLSEnabled    bool            `envconfig:"CLICKHOUSE_TLS_ENABLED" field:"chconn.TLS.Enabled"`
	ClickHouseTLSCAFile     string          `envconfig:"CLICKHOUSE_TLS_CA_FILE" field:"chconn.TLS.CAFile"`
	ClickHouseTLSCertFile   string          `envconfig:"CLICKHOUSE_TLS_CERT_FILE" field:"chconn.TLS.CertFile"`
	ClickHouseTLSKeyFile    string          `envconfig:"CLICKHOUSE_TLS_KEY_FILE" field:"chconn.TLS.KeyFile"`

	RollupWindows        string        `envconfig:"ROLLUP_WINDOWS" field:"aggregate.Windows"`
	ChunkSize            int64         `envconfig:"CHUNK_SIZE" field:"aggregate.ChunkSize"`
	MaxBatchRows         int           `envconfig:"MAX_BATCH_ROWS" field:"aggregate.MaxBatchRows"`
	FlushInterval        time.Duration `envconfig:"FLUSH_INTERVAL" field:"ingest.FlushInterval"`
	ShutdownTimeout      time.Duration `envconfig:"SHUTDOWN_TIMEOUT" field:"ingest.ShutdownTimeout"`
	WriteRetryMaxBackoff time.Duration `envconfig:"WRITE_RETRY_MAX_BACKOFF" field:"ingest.RetryBackoffMax"`
	MaxMessageBytes      int           `envconfig:"MAX_MESSAGE_BYTES" field:"events.MaxMessageBytes"`
	MaxFutureSkew        time.Duration `envconfig:"MAX_FUTURE_SKEW" field:"events.MaxFutureSkew"`
	MaxGroups            int           `envconfig:"MAX_GROUPS_PER_PARTITION" field:"aggregate.MaxGroups"`
	AllowedLateness      time.Duration `envconfig:"ALLOWED_LATENESS" field:"aggregate.AllowedLateness"`
	IdleTimeout          time.Duration `envconfig:"IDLE_PARTITION_TIMEOUT" field:"ingest.IdleTimeout"`
	SealIdleAfter        time.Duration `envconfig:"SEAL_IDLE_AFTER" field:"ingest.SealIdleAfter"`
	StallTimeout         time.Duration `envconfig:"LIVENESS_STALL_TIMEOUT" field:"ingest.StallTimeout"`
	DeadLetterTopic      string        `envconfig:"DEAD_LETTER_TOPIC" field:"ingest.DeadLetterTopic"`

	CompactBatchWindows int           `envconfig:"COMPACT_BATCH_WINDOWS" field:"compact.BatchWindows"`
	CompactMaxWindows   int           `envconfig:"COMPACT_MAX_WINDOWS" field:"compact.MaxWindows"`
	CompactSettle       time.Duration `envconfig:"COMPACT_SETTLE" field:"compact.Settle"`
	CompactMaxRun       time.Duration `envconfig:"COMPACT_MAX_RUN" field:"compact.MaxRun"`
	CompactDelete       bool          `envconfig:"COMPACT_DELETE" field:"compact.Delete"`
	CompactWaitDeletes  bool          `envconfig:"COMPACT_WAIT_DELETES" field:"compact.WaitDeletes"`

	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9464"`
	DebugPprof  bool   `envconfig:"DEBUG_PPROF" default:"false"`
	LogLevel    string `envconfig:"LOG_LEVEL" default:"info"`
}

// packageDefaults are the DefaultConfig of every package whose fields env
// sets, by the name `field` tags use.
func packageDefaults() map[string]any {
	return map[string]any{
		"ingest":    ingest.DefaultConfig(),
		"aggregate": aggregate.DefaultConfig(),
		"events":    events.DefaultConfig(),
		"chconn":    chconn.DefaultConfig(),
		"compact":   compact.DefaultConfig(),
	}
}

// defaultEnv returns env holding every package default. envconfig then only
// overwrites the variables that are set.
func defaultEnv() env {
	var e env
	ev := reflect.ValueOf(&e).Elem()
	defs := packageDefaults()
	for i := range ev.NumField() {
		f := ev.Type().Field(i)
		path, ok := f.Tag.Lookup("field")
		if !ok {
			continue
		}
		pkg, rest, _ := strings.Cut(path, ".")
		v := reflect.ValueOf(defs[pkg]).FieldByIndex(fieldIndex(reflect.TypeOf(defs[pkg]), rest))
		if ws, ok := v.Interface().([]aggregate.Window); ok { // ROLLUP_WINDOWS is their names
			names := make([]string, len(ws))
			for j, w := range ws {
				names[j] = w.Name
			}
			ev.Field(i).SetString(strings.Join(names, ","))
			continue
		}
		ev.Field(i).Set(v.Convert(f.Type))
	}
	return e
}

// fieldIndex resolves a dotted field path ("Security.TLS.CAFile") in t. The
// paths are this file's own tags, checked by TestDefaultsComeFromThePackages.
func fieldIndex(t reflect.Type, path string) []int {
	var index []int
	for name := range strings.SplitSeq(path, ".") {
		f, ok := t.FieldByName(name)
		if !ok {
			panic(fmt.Sprintf("env: %s has no field %s", t, name))
		}
		index = append(index, f.Index...)
		t = f.Type
	}
	return index
}

// nameFields turns a *fielderr.Error from package pkg into a message naming
// the environment variables of the fields it mentions. Other errors pass.
func nameFields(pkg string, err error) error {
	var fe *fielderr.Error
	if !errors.As(err, &fe) {
		return err
	}
	// The windows the schema and the writer check are ROLLUP_WINDOWS too.
	vars := map[string]string{"schema.Windows": "ROLLUP_WINDOWS", "sink.Windows": "ROLLUP_WINDOWS",
		"compact.Windows": "ROLLUP_WINDOWS", "compact.Topic": "KAFKA_TOPIC"}
	t := reflect.TypeOf(env{})
	for i := range t.NumField() {
		if path, ok := t.Field(i).Tag.Lookup("field"); ok {
			vars[path] = t.Field(i).Tag.Get("envconfig")
		}
	}
	msg := fe.Rename(func(field string) string {
		if v, ok := vars[pkg+"."+field]; ok {
			return v
		}
		return field
	})
	if fe.Err != nil {
		return fmt.Errorf("%s: %w", msg, fe.Err)
	}
	return errors.New(msg)
}

// config is the typed configuration of every package, built from env.
type config struct {
	consumer    ingest.Config
	aggregate   aggregate.Config
	events      events.Config
	clickhouse  chconn.Config
	schema      schema.Config
	sink        sink.Config
	compact     compact.Config
	migrate     bool // CLICKHOUSE_MIGRATE: apply the migrations at start
	metricsAddr string
	debugPprof  bool // DEBUG_PPROF: serve net/http/pprof on metricsAddr
	logLevel    zerolog.Level
}

// loadConfig reads and validates the environment. Errors name the variable.
func loadConfig() (config, error) {
	e := defaultEnv()
	if err := envconfig.Process("", &e); err != nil {
		return config{}, err
	}
	windows, err := aggregate.ParseWindows(e.RollupWindows)
	if err != nil {
		return config{}, fmt.Errorf("ROLLUP_WINDOWS: %w", err)
	}
	level, err := zerolog.ParseLevel(e.LogLevel)
	if err != nil || e.LogLevel == "" {
		return config{}, fmt.Errorf("LOG_LEVEL: %q is not one of trace, debug, info, warn, error", e.LogLevel)
	}
	c := config{
		consumer: ingest.Config{
			Brokers:           e.KafkaBrokers,
			Topic:             e.KafkaTopic,
			GroupID:           e.KafkaGroupID,
			FlushInterval:     e.FlushInterval,
			ShutdownTimeout:   e.ShutdownTimeout,
			FetchMaxBytes:     e.KafkaFetchMaxBytes,
			FetchBufferBytes:  e.KafkaFetchBufferBytes,
			SessionTimeout:    e.KafkaSessionTimeout,
			RebalanceTimeout:  e.KafkaRebalanceTimeout,
			HeartbeatInterval: e.KafkaHeartbeatInterval,
			RetryBackoffMax:   e.WriteRetryMaxBackoff,
			DeadLetterTopic:   e.DeadLetterTopic,
			IdleTimeout:       e.IdleTimeout,
			SealIdleAfter:     e.SealIdleAfter,
			StallTimeout:      e.StallTimeout,
			EndOffsetInterval: ingest.DefaultConfig().EndOffsetInterval,
			Security: ingest.Security{
				TLS: security.TLS{
					Enabled:  e.KafkaTLSEnabled,
					CAFile:   e.KafkaTLSCAFile,
					CertFile: e.KafkaTLSCertFile,
					KeyFile:  e.KafkaTLSKeyFile,
				},
				SASLMechanism: e.KafkaSASLMechanism,
				SASLUsername:  e.KafkaSASLUsername,
				SASLPassword:  e.KafkaSASLPassword,
			},
		},
		aggregate: aggregate.Config{
			Windows:         windows,
			ChunkSize:       e.ChunkSize,
			MaxGroups:       e.MaxGroups,
			AllowedLateness: e.AllowedLateness,
			MaxBatchRows:    e.MaxBatchRows,
		},
		events: events.Config{MaxMessageBytes: e.MaxMessageBytes, MaxFutureSkew: e.MaxFutureSkew},
		clickhouse: chconn.Config{
			Addr:     e.ClickHouseAddr,
			Database: e.ClickHouseDatabase,
			Username: e.ClickHouseUsername,
			Password: e.ClickHousePassword,
			TLS: security.TLS{
				Enabled:  e.ClickHouseTLSEnabled,
				CAFile:   e.ClickHouseTLSCAFile,
				CertFile: e.ClickHouseTLSCertFile,
				KeyFile:  e.ClickHouseTLSKeyFile,
			},
			DialTimeout:      e.ClickHouseDialTimeout,
			StatementTimeout: e.ClickHouseInsertTimeout,
		},
		schema: schema.Config{Windows: windows},
		sink:   sink.Config{Windows: windows},
		compact: compact.Config{
			Windows:      windows,
			Topic:        e.KafkaTopic,
			BatchWindows: e.CompactBatchWindows,
			MaxWindows:   e.CompactMaxWindows,
			Settle:       e.CompactSettle,
			MaxRun:       e.CompactMaxRun,
			Delete:       e.CompactDelete,
			WaitDeletes:  e.CompactWaitDeletes,
		},
		migrate:     e.ClickHouseMigrate,
		metricsAddr: e.MetricsAddr,
		debugPprof:  e.DebugPprof,
		logLevel:    level,
	}
	for _, v := range []struct {
		pkg string
		err error
	}{
		{"ingest", c.consumer.Validate()}, {"aggregate", c.aggregate.Validate()}, {"events", c.events.Validate()},
		{"chconn", c.clickhouse.Validate()}, {"schema", c.schema.Validate()}, {"sink", c.sink.Validate()},
		{"compact", c.compact.Validate()},
	} {
		if v.err != nil {
			return config{}, nameFields(v.pkg, v.err)
		}
	}
	return c, nil
}
