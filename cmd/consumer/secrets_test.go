package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// Authentication failure codes: WRONG_PASSWORD on ClickHouse 18.16,
// AUTHENTICATION_FAILED on current servers (which no longer say which part
// of the credentials was wrong).
const (
	codeWrongPassword        = 193
	codeAuthenticationFailed = 516
)

// TestSecretsStayOutOfLogsAndErrors runs the service with secrets set against
// a server that refuses the password and against no server at all, checks
// that each failure is the one expected, and that no password appears in
// what it logs or returns.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	const kafkaSecret, chSecret = "kafka-pa55-WORD-xyz", "ch-pa55-WORD-abc"
	cases := []struct {
		name string
		addr func(testing.TB) string
		// failure returns what is wrong with the error run returned, or "".
		failure func(error) string
	}{
		{"server rejects the password", servicetest.NeedClickHouse, authenticationFailure},
		{"server unreachable", func(testing.TB) string { return "127.0.0.1:1" }, connectFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range map[string]string{
				"KAFKA_BROKERS": "127.0.0.1:1", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
				"KAFKA_SASL_USERNAME": "usage", "KAFKA_SASL_PASSWORD": kafkaSecret,
				"CLICKHOUSE_ADDR": tc.addr(t), "CLICKHOUSE_USERNAME": "default", "CLICKHOUSE_PASSWORD": chSecret,
				"CLICKHOUSE_DIAL_TIMEOUT": "500ms", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug",
			} {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := run(ctx, nil, &out)
			if msg := tc.failure(err); msg != "" {
				t.Errorf("%s; log:\n%s", msg, out.String())
			}
			text := out.String()
			if err != nil {
				text += "\n" + err.Error()
			}
			for _, secret := range []string{kafkaSecret, chSecret} {
				if strings.Contains(text, secret) {
					t.Errorf("secret %q leaked:\n%s", secret, text)
				}
			}
		})
	}
}

// authenticationFailure wants the server's own refusal of the credentials,
// returned at once (the service does not retry what retrying cannot fix).
func authenticationFailure(err error) string {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return fmt.Sprintf("run returned %v, want the server's *clickhouse.Exception", err)
	}
	if ex.Code != codeWrongPassword && ex.Code != codeAuthenticationFailed {
		return fmt.Sprintf("run returned ClickHouse error code %d (%v), want %d or %d (authentication failed)",
			ex.Code, err, codeWrongPassword, codeAuthenticationFailed)
	}
	return ""
}

// connectFailure wants the service to have kept retrying the connection
// until its context ended.
func connectFailure(err error) string {
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(fmt.Sprint(err), "connect to clickhouse") {
		return fmt.Sprintf("run returned %v, want connect to clickhouse: ... context deadline exceeded", err)
	}
	return ""
}
