//go:build !faults

package main

import (
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/ingest"
)

// withFailpoints returns w unchanged: the shipped binary has no failpoints
// (failpoint_faults.go is the test build's).
func withFailpoints(w ingest.BatchWriter, _ zerolog.Logger) (ingest.BatchWriter, error) {
	return w, nil
}
