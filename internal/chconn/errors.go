package chconn

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse server error codes IsTransient treats as transient, from
// src/Common/ErrorCodes.cpp. The numbers are stable across releases.
const (
	codeUnexpectedEndOfFile        = 3
	codeAttemptToReadAfterEOF      = 32
	codeTimeoutExceeded            = 159
	codeTooSlow                    = 160
	codeQuotaExceeded              = 201
	codeTooManySimultaneousQueries = 202
	codeNoFreeConnection           = 203
	codeSocketTimeout              = 209
	codeNetworkError               = 210
	codeQueryWithSameIDRunning     = 216
	codeNoZooKeeper                = 225
	codeAborted                    = 236
	codeMemoryLimitExceeded        = 241
	codeTableIsReadOnly            = 242
	codeNotEnoughSpace             = 243
	codeTooManyParts               = 252
	codeAllConnectionTriesFailed   = 279
	codeTooFewLiveReplicas         = 285
	codeUnsatisfiedQuorum          = 286
	codeUnknownStatusOfInsert      = 319
	codeQueryWasCancelled          = 394
	codeSystemError                = 425
	codeCannotScheduleTask         = 439
	codeDeadlockAvoided            = 473
	codeKeeperException            = 999
)

// transientCodes are server errors that go away by themselves: overload,
// back-pressure (TOO_MANY_PARTS, except for too many partitions in one
// INSERT: see isTooManyPartitions), lost replicas or Keeper, a restarting server.
var transientCodes = map[int32]bool{
	codeUnexpectedEndOfFile:        true,
	codeAttemptToReadAfterEOF:      true,
	codeTimeoutExceeded:            true,
	codeTooSlow:                    true,
	codeQuotaExceeded:              true,
	codeTooManySimultaneousQueries: true,
	codeNoFreeConnection:           true,
	codeSocketTimeout:              true,
	codeNetworkError:               true,
	codeQueryWithSameIDRunning:     true,
	codeNoZooKeeper:                true,
	codeAborted:                    true,
	codeMemoryLimitExceeded:        true,
	codeTableIsReadOnly:            true,
	codeNotEnoughSpace:             true,
	codeTooManyParts:               true,
	codeAllConnectionTriesFailed:   true,
	codeTooFewLiveReplicas:         true,
	codeUnsatisfiedQuorum:          true,
	codeUnknownStatusOfInsert:      true,
	codeQueryWasCancelled:          true,
	codeSystemError:                true,
	codeCannotScheduleTask:         true,
	codeDeadlockAvoided:            true,
	codeKeeperException:            true,
}

// IsTransient reports whether err is expected to go away without anyone
// acting: the network, a timeout, an overloaded or restarting server, or
// ClickHouse back-pressure such as TOO_MANY_PARTS. Errors that need a human —
// unknown table or column, type mismatch, syntax, authentication, a batch the
// driver refused, an INSERT spanning more partitions than the server allows
// (also TOO_MANY_PARTS, but not back-pressure) — are not transient, and
// neither is context.Canceled, which means the caller is shutting down.
//
// Retrying any sink write is safe (rows are idempotent), so the consumer
// retries both kinds with capped backoff and pauses intake meanwhile;
// IsTransient only decides how loudly: transient failures at warn level, the
// others at error level, because retrying alone will not fix them. At start-up
// it decides whether connecting is worth retrying. Callers that need the
// server's code can use errors.As with *clickhouse.Exception.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	// The server answered: trust its code over the transport details.
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return transientCodes[ex.Code] && !isTooManyPartitions(ex)
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	// Not any net.Error: *fs.PathError has the same methods, and a missing
	// or unreadable TLS file does not fix itself.
	var (
		opErr  *net.OpError
		dnsErr *net.DNSError
		netErr net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &opErr),
		errors.As(err, &dnsErr),
		errors.As(err, &netErr) && netErr.Timeout(),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, clickhouse.ErrAcquireConnTimeout):
		return true
	}
	return false
}

// TooManyPartitions is how current servers word the TOO_MANY_PARTS (252)
// they return for a block spanning more than max_partitions_per_insert_block
// partitions: "Too many partitions for single INSERT block (more than 100).
// The limit is controlled by 'max_partitions_per_insert_block' setting...".
// The same code also means "Too many parts (N). Merges are processing
// significantly slower than inserts", which is back-pressure and transient.
const TooManyPartitions = "Too many partitions for single INSERT block"

// isTooManyPartitions reports the TOO_MANY_PARTS that an INSERT gets for the
// months it spans, not for the server's load: the same INSERT fails again
// on every retry. The writer (internal/sink) splits rows by month so that it
// should never happen; if it does (a server configured with a lower limit),
// it must be loud rather than retried quietly as transient.
func isTooManyPartitions(ex *clickhouse.Exception) bool {
	return ex.Code == codeTooManyParts && strings.Contains(ex.Message, TooManyPartitions)
}
