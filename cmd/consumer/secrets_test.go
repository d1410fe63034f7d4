package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSecretsStayOutOfLogsAndErrors runs the service with secrets set and
// servers that refuse them or are absent, and checks that no password
// appears in what it logs or returns.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	const kafkaSecret, chSecret = "kafka-pa55-WORD-xyz", "ch-pa55-WORD-abc"
	clickhouse := "127.0.0.1:9000"
	if c, err := net.DialTimeout("tcp", clickhouse, time.Second); err == nil {
		c.Close()
	} else {
		clickhouse = "127.0.0.1:1" // nothing listens: the connection error path
	}
	cases := []struct{ name, addr string }{
		{"server rejects the password", clickhouse},
		{"server unreachable", "127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range map[string]string{
				"KAFKA_BROKERS": "127.0.0.1:1", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
				"KAFKA_SASL_USERNAME": "usage", "KAFKA_SASL_PASSWORD": kafkaSecret,
				"CLICKHOUSE_ADDR": tc.addr, "CLICKHOUSE_USERNAME": "default", "CLICKHOUSE_PASSWORD": chSecret,
				"CLICKHOUSE_DIAL_TIMEOUT": "500ms", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug",
			} {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := run(ctx, nil, &out)
			text := out.String()
			if err != nil {
				text += "\n" + err.Error()
			}
			if !strings.Contains(text, "193") && !strings.Contains(text, "connect to clickhouse") {
				t.Fatalf("expected the ClickHouse failure to be reported, got:\n%s", text)
			}
			for _, secret := range []string{kafkaSecret, chSecret} {
				if strings.Contains(text, secret) {
					t.Errorf("secret %q leaked:\n%s", secret, text)
				}
			}
		})
	}
}
