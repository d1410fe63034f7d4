package chconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestIsTransient(t *testing.T) {
	exception := func(code int32) error {
		return fmt.Errorf("insert usage_rollup_1m (topic t partition 0 chunk 0): %w", &clickhouse.Exception{Code: code})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"too many parts", &clickhouse.Exception{Code: codeTooManyParts,
			Message: "Too many parts (300). Merges are processing significantly slower than inserts"}, true},
		{"too many partitions in one insert", fmt.Errorf("insert usage_rollup_1m (topic t partition 0 chunk 0): %w",
			&clickhouse.Exception{Code: codeTooManyParts, Name: "DB::Exception",
				Message: "Too many partitions for single INSERT block (more than 100). The limit is controlled by " +
					"'max_partitions_per_insert_block' setting."}), false},
		{"timeout exceeded", exception(codeTimeoutExceeded), true},
		{"memory limit", exception(codeMemoryLimitExceeded), true},
		{"keeper", exception(codeKeeperException), true},
		{"unknown table", exception(60), false},
		{"no such column", exception(16), false},
		{"syntax error", exception(62), false},
		{"authentication", exception(516), false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"no such host", fmt.Errorf("dial: %w", &net.DNSError{Err: "no such host", Name: "ch", IsNotFound: true}), true},
		{"i/o timeout", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), true},
		{"missing TLS file", fmt.Errorf("TLS.CAFile: %w", &fs.PathError{Op: "open", Path: "/ca.pem", Err: syscall.ENOENT}), false},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"eof", fmt.Errorf("read: %w", io.EOF), true},
		{"deadline", fmt.Errorf("insert: %w", context.DeadlineExceeded), true},
		{"acquire timeout", clickhouse.ErrAcquireConnTimeout, true},
		{"canceled", fmt.Errorf("insert: %w", context.Canceled), false},
		{"driver refused a value", clickhouse.ErrBatchInvalid, false},
		{"plain", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := IsTransient(tt.err); got != tt.want {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
