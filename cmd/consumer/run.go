package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/backoff"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/sink"
)

var _ ingest.BatchWriter = (*sink.Sink)(nil)

// run wires the service and blocks until ctx ends or a part fails.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := zerolog.New(stdout).Level(cfg.logLevel).With().Timestamp().Str("service", "usage-rollup").Logger()

	mode := "consume"
	if len(args) > 0 {
		mode = args[0]
	}
	switch mode {
	case "consume":
	case "reconcile":
		// A read: it must not change the schema it reads, whatever
		// CLICKHOUSE_MIGRATE says.
		cfg.migrate = false
	case "migrate":
		cfg.migrate = true
	case "compact":
	default:
		return fmt.Errorf("unknown command %q (want none, \"migrate\", \"reconcile\" or \"compact\")", mode)
	}

	conn, sch, err := connect(ctx, cfg, log)
	if err != nil {
		return nameFields("chconn", err)
	}
	defer func() {
		if err := conn.Close(); err != nil {
			log.Warn().Err(err).Msg("close clickhouse")
		}
	}()
	switch mode {
	case "migrate":
		log.Info().Msg("migrations applied")
		return nil
	case "compact":
		return compactOnce(ctx, cfg, conn, log)
	case "reconcile":
		dialer, err := cfg.consumer.Security.Dialer(10 * time.Second)
		if err != nil {
			return err
		}
		transport := cfg.consumer.Security.Transport(dialer)
		defer transport.CloseIdleConnections()
		client := &kafka.Client{Addr: kafka.TCP(cfg.consumer.Brokers...), Transport: transport}
		return reconcile(ctx, cfg, audit.New(conn, cfg.aggregate.Windows), client, stdout)
	}
	windows := make([]string, len(cfg.aggregate.Windows))
	for i, w := range cfg.aggregate.Windows {
		windows[i] = w.Name
	}
	layout := schema.NewLayout(cfg.aggregate.ChunkSize, cfg.aggregate.MaxGroups, windows,
		cfg.events.MaxFutureSkew, cfg.events.MaxMessageBytes)
	if err := sch.EnsureLayout(ctx, cfg.consumer.Topic, layout); err != nil {
		return err
	}
	snk, err := sink.New(conn, cfg.sink)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	writer, err := withFailpoints(snk, log)
	if err != nil {
		return err
	}
	c, err := ingest.New(cfg.consumer, cfg.aggregate, cfg.events, writer, log, reg)
	if err != nil {
		return nameFields("ingest", err)
	}

	srv, err := serve(cfg.metricsAddr, reg, probes{consumer: c, clickhouse: conn}, cfg.debugPprof, log)
	if err != nil {
		return err
	}
	runErr := c.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn().Err(err).Msg("stop metrics server")
	}
	return runErr
}

// connect connects to ClickHouse and, with cfg.migrate, creates the database
// and applies the migrations first. It retries while the server is
// unreachable (pods often start before their database is ready) and fails
// fast on errors that retrying cannot fix, such as bad credentials or DDL.
func connect(ctx context.Context, cfg config, log zerolog.Logger) (conn *chconn.Conn, sch *schema.Schema, err error) {
	var permanent error
	err = backoff.Retry(ctx, 15*time.Second, func() error {
		var err error
		conn, sch, err = connectOnce(ctx, cfg, log)
		if err != nil && !chconn.IsTransient(err) {
			permanent = err // retrying cannot fix it: stop
			return nil
		}
		return err
	}, func(err error, _ int, next time.Duration) {
		log.Warn().Err(err).Dur("retry_in", next).Msg("connect to clickhouse; retrying")
	})
	if permanent != nil {
		return nil, nil, permanent
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connect to clickhouse: %w", err)
	}
	log.Info().Str("server_version", conn.Version()).Strs("addr", cfg.clickhouse.Addr).
		Str("database", cfg.clickhouse.Database).Bool("migrated", cfg.migrate).Msg("connected to ClickHouse")
	return conn, sch, nil
}

func connectOnce(ctx context.Context, cfg config, log zerolog.Logger) (*chconn.Conn, *schema.Schema, error) {
	if cfg.migrate {
		return schema.Setup(ctx, cfg.clickhouse, cfg.schema, log)
	}
	conn, err := chconn.Open(ctx, cfg.clickhouse)
	if err != nil {
		return nil, nil, err
	}
	sch, err := schema.New(conn, cfg.schema, log)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, sch, nil
}

// serve starts the HTTP listener for /metrics, /livez and /readyz, and with
// debugPprof for net/http/pprof under /debug/pprof/ (off by default: profiles
// cost CPU while they run and expose internals on the scrape port); the
// returned server is owned by run, which shuts it down.
func serve(addr string, reg *prometheus.Registry, p probes, debugPprof bool, log zerolog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/livez", p.livez)
	mux.HandleFunc("/readyz", p.readyz)
	if debugPprof {
		// Index serves the named profiles (heap, goroutine, allocs, ...)
		// under /debug/pprof/<name>; the other four are separate handlers.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// No WriteTimeout: /debug/pprof/profile?seconds=N answers after N seconds.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Bool("pprof", debugPprof).Msg("serving /metrics, /livez, /readyz")
	return srv, nil
}
