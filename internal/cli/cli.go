// Package cli is the main function of the project's tools (demo, loadgen,
// benche2e), so that each of them only wires its own run. The consumer has
// its own main: it logs its last error as JSON.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main calls run with a context that SIGTERM or an interrupt cancels, and
// exits 1 after printing "name: error" on stderr when run fails.
// flag.ErrHelp is no failure: the flag set already printed the usage.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
