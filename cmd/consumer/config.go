package main

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/compact"
	"github.com/usage-rollup/usage-rollup/internal/consumer"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/security"
	"github.com/usage-rollup/usage-rollup/internal/sink"
)

// env is the service's whole environment. Every variable is documented in
// README.md (a test checks that the table and this struct agree). The
// defaults mirror the packages' DefaultConfig values. Passwords are
// security.Secret from the moment they are read.
type env struct {
	KafkaBrokers           []string        `envconfig:"KAFKA_BROKERS" required:"true"`
	KafkaTopic             string          `envconfig:"KAFKA_TOPIC" default:"usage-events"`
	KafkaGroupID           string          `envconfig:"KAFKA_GROUP_ID" default:"usage-rollup"`
	KafkaSessionTimeout    time.Duration   `envconfig:"KAFKA_SESSION_TIMEOUT" default:"30s"`
	KafkaRebalanceTimeout  time.Duration   `envconfig:"KAFKA_REBALANCE_TIMEOUT" default:"60s"`
	KafkaHeartbeatInterval time.Duration   `envconfig:"KAFKA_HEARTBEAT_INTERVAL" default:"3s"`
	KafkaFetchMaxBytes     int             `envconfig:"KAFKA_FETCH_MAX_BYTES" default:"16777216"`
	KafkaFetchBufferBytes  int64           `envconfig:"KAFKA_FETCH_BUFFER_BYTES" default:"0"`
	KafkaTLSEnabled        bool            `envconfig:"KAFKA_TLS_ENABLED" default:"false"`
	KafkaTLSCAFile         string          `envconfig:"KAFKA_TLS_CA_FILE"`
	KafkaTLSCertFile       string          `envconfig:"KAFKA_TLS_CERT_FILE"`
	KafkaTLSKeyFile        string          `envconfig:"KAFKA_TLS_KEY_FILE"`
	KafkaSASLMechanism     string          `envconfig:"KAFKA_SASL_MECHANISM"`
	KafkaSASLUsername      string          `envconfig:"KAFKA_SASL_USERNAME"`
	KafkaSASLPassword      security.Secret `envconfig:"KAFKA_SASL_PASSWORD"`

	ClickHouseAddr          []string        `envconfig:"CLICKHOUSE_ADDR" default:"127.0.0.1:9000"`
	ClickHouseDatabase      string          `envconfig:"CLICKHOUSE_DATABASE" default:"usage_rollup"`
	ClickHouseUsername      string          `envconfig:"CLICKHOUSE_USERNAME" default:"default"`
	ClickHousePassword      security.Secret `envconfig:"CLICKHOUSE_PASSWORD"`
	ClickHouseDialTimeout   time.Duration   `envconfig:"CLICKHOUSE_DIAL_TIMEOUT" default:"5s"`
	ClickHouseInsertTimeout time.Duration   `envconfig:"CLICKHOUSE_INSERT_TIMEOUT" default:"30s"`
	ClickHouseMigrate       bool            `envconfig:"CLICKHOUSE_MIGRATE" default:"true"`
	ClickHouseTLSEnabled    bool            `envconfig:"CLICKHOUSE_TLS_ENABLED" default:"false"`
	ClickHouseTLSCAFile     string          `envconfig:"CLICKHOUSE_TLS_CA_FILE"`
	ClickHouseTLSCertFile   string          `envconfig:"CLICKHOUSE_TLS_CERT_FILE"`
	ClickHouseTLSKeyFile    string          `envconfig:"CLICKHOUSE_TLS_KEY_FILE"`

	RollupWindows        string        `envconfig:"ROLLUP_WINDOWS" default:"1m,1h"`
	ChunkSize            int64         `envconfig:"CHUNK_SIZE" default:"50000"`
	MaxBatchRows         int           `envconfig:"MAX_BATCH_ROWS" default:"20000"`
	FlushInterval        time.Duration `envconfig:"FLUSH_INTERVAL" default:"5s"`
	ShutdownTimeout      time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s"`
	WriteRetryMaxBackoff time.Duration `envconfig:"WRITE_RETRY_MAX_BACKOFF" default:"30s"`
	MaxMessageBytes      int           `envconfig:"MAX_MESSAGE_BYTES" default:"1048576"`
	MaxFutureSkew        time.Duration `envconfig:"MAX_FUTURE_SKEW" default:"24h"`
	MaxGroups            int           `envconfig:"MAX_GROUPS_PER_PARTITION" default:"200000"`
	AllowedLateness      time.Duration `envconfig:"ALLOWED_LATENESS" default:"10m"`
	IdleTimeout          time.Duration `envconfig:"IDLE_PARTITION_TIMEOUT" default:"1m"`
	StallTimeout         time.Duration `envconfig:"LIVENESS_STALL_TIMEOUT" default:"10m"`
	DeadLetterTopic      string        `envconfig:"DEAD_LETTER_TOPIC"`

	CompactBatchWindows int           `envconfig:"COMPACT_BATCH_WINDOWS" default:"200"`
	CompactMaxWindows   int           `envconfig:"COMPACT_MAX_WINDOWS" default:"20000"`
	CompactSettle       time.Duration `envconfig:"COMPACT_SETTLE" default:"5s"`
	CompactMaxRun       time.Duration `envconfig:"COMPACT_MAX_RUN" default:"5m"`
	CompactDelete       bool          `envconfig:"COMPACT_DELETE" default:"true"`
	CompactWaitDeletes  bool          `envconfig:"COMPACT_WAIT_DELETES" default:"false"`

	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9464"`
	LogLevel    string `envconfig:"LOG_LEVEL" default:"info"`
}

// config is the typed configuration of every package, built from env.
type config struct {
	consumer    consumer.Config
	aggregate   aggregate.Config
	events      events.Config
	clickhouse  chconn.Config
	schema      schema.Config
	sink        sink.Config
	compact     compact.Config
	migrate     bool // CLICKHOUSE_MIGRATE: apply the migrations at start
	metricsAddr string
	logLevel    zerolog.Level
}

// loadConfig reads and validates the environment. Errors name the variable.
func loadConfig() (config, error) {
	var e env
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
		consumer: consumer.Config{
			Brokers:           e.KafkaBrokers,
			Topic:             e.KafkaTopic,
			GroupID:           e.KafkaGroupID,
			FlushInterval:     e.FlushInterval,
			ShutdownTimeout:   e.ShutdownTimeout,
			FetchMaxBytes:     e.KafkaFetchMaxBytes,
			FetchBufferBytes:  fetchBufferBytes(e.KafkaFetchBufferBytes, e.KafkaFetchMaxBytes, debug.SetMemoryLimit(-1)),
			SessionTimeout:    e.KafkaSessionTimeout,
			RebalanceTimeout:  e.KafkaRebalanceTimeout,
			HeartbeatInterval: e.KafkaHeartbeatInterval,
			RetryBackoffMax:   e.WriteRetryMaxBackoff,
			DeadLetterTopic:   e.DeadLetterTopic,
			IdleTimeout:       e.IdleTimeout,
			StallTimeout:      e.StallTimeout,
			EndOffsetInterval: consumer.DefaultConfig().EndOffsetInterval,
			Security: consumer.Security{
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
		logLevel:    level,
	}
	for _, err := range []error{c.consumer.Validate(), c.aggregate.Validate(), c.events.Validate(),
		c.clickhouse.Validate(), c.schema.Validate(), c.sink.Validate(), c.compact.Validate()} {
		if err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// fetchBufferBytes resolves KAFKA_FETCH_BUFFER_BYTES: a value > 0 is used as
// it is; 0 means a quarter of the Go memory limit (GOMEMLIMIT, which the
// chart sets from the pod's memory limit), at most 256 MiB and at least one
// fetch. A quarter leaves the rest for the aggregation state, the batches in
// flight and the garbage collector's headroom.
func fetchBufferBytes(configured int64, fetchMax int, memLimit int64) int64 {
	if configured > 0 {
		return configured
	}
	const ceiling = 256 << 20
	return max(min(memLimit/4, ceiling), int64(fetchMax))
}
