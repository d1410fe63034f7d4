package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type fakeConsumer struct{ live, ready error }

func (f fakeConsumer) Live(time.Time) error { return f.live }
func (f fakeConsumer) Ready() error         { return f.ready }

type fakePinger struct{ err error }

func (f fakePinger) Ping(context.Context) error { return f.err }

func TestProbes(t *testing.T) {
	down := errors.New("down")
	cases := []struct {
		name       string
		p          probes
		path       string
		wantStatus int
	}{
		{"live", probes{fakeConsumer{}, fakePinger{}}, "/livez", http.StatusOK},
		{"stalled is not live", probes{fakeConsumer{live: down}, fakePinger{}}, "/livez", http.StatusServiceUnavailable},
		{"clickhouse down does not fail liveness", probes{fakeConsumer{}, fakePinger{err: down}}, "/livez", http.StatusOK},
		{"ready", probes{fakeConsumer{}, fakePinger{}}, "/readyz", http.StatusOK},
		{"not joined is not ready", probes{fakeConsumer{ready: down}, fakePinger{}}, "/readyz", http.StatusServiceUnavailable},
		{"clickhouse down is not ready", probes{fakeConsumer{}, fakePinger{err: down}}, "/readyz", http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/livez", tc.p.livez)
			mux.HandleFunc("/readyz", tc.p.readyz)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.wantStatus {
				t.Errorf("%s = %d (%s), want %d", tc.path, rec.Code, rec.Body.String(), tc.wantStatus)
			}
		})
	}
}
