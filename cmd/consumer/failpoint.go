//go:build !faults

package main

import (
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/consumer"
)

// withFailpoints returns w unchanged: the shipped binary has no failpoints
// (failpoint_faults.go is the test build's).
func withFailpoints(w consumer.BatchWriter, _ zerolog.Logger) (consumer.BatchWriter, error) {
	return w, nil
}
