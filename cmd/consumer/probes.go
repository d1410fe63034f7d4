package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// probeTimeout bounds the ClickHouse ping of /readyz, well inside the
// default Kubernetes probe timeout.
const probeTimeout = 2 * time.Second

// probes answers Kubernetes' liveness and readiness checks from the
// consumer's progress, not from the mere fact that the process runs.
type probes struct {
	consumer interface {
		Live(now time.Time) error
		Ready() error
	}
	clickhouse interface {
		Ping(ctx context.Context) error
	}
}

// livez fails when an assigned partition has lag but made no durable
// progress for LIVENESS_STALL_TIMEOUT: a restart may clear such a state,
// and restarting is always safe.
func (p probes) livez(w http.ResponseWriter, r *http.Request) {
	respond(w, p.consumer.Live(time.Now()))
}

// readyz fails until the consumer joined its group, and while ClickHouse
// does not answer.
func (p probes) readyz(w http.ResponseWriter, r *http.Request) {
	if err := p.consumer.Ready(); err != nil {
		respond(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	respond(w, p.clickhouse.Ping(ctx))
}

func respond(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ok: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ok")
}
