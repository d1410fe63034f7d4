// Command consumer is the usage-rollup service: it consumes usage events from
// Kafka and writes exact event-time rollups to ClickHouse.
//
//	consumer             run the service (configuration from the environment)
//	consumer migrate     apply the ClickHouse migrations and exit
//	consumer reconcile   print, per partition, accepted + rejected + duplicates
//	                     against the offsets written, the log end and the commit
//	consumer compact     compact closed windows once, delete folded raw rows, exit
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		log := zerolog.New(os.Stdout).With().Timestamp().Str("service", "usage-rollup").Logger()
		log.Error().Err(err).Msg("exiting")
		os.Exit(1)
	}
}
