package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/security"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/testpki"
)

// secureServices are the TLS and SASL endpoints of the local servers and the
// test credentials scripts/certs.sh, kafka.sh and clickhouse.sh generated.
type secureServices struct {
	servicetest.Services
	saslPlaintext, ssl, saslSSL string // Kafka listener addresses
	clickhouseTLS               string // ClickHouse tcp_port_secure address
	ca, cert, key               string // CA and client certificate files
	kafkaUser, kafkaPassword    string
	chUser, chPassword          string
}

// needSecureServices returns the secure endpoints or skips (fails when
// USAGE_ROLLUP_REQUIRE_SERVICES=1) if a file or port is missing.
func needSecureServices(t *testing.T) secureServices {
	t.Helper()
	svc := servicetest.Need(t)
	missing := func(format string, args ...any) {
		t.Helper()
		servicetest.Unavailable(t, "%s (scripts/kafka.sh start and scripts/clickhouse.sh start set them up)", fmt.Sprintf(format, args...))
	}
	// The scripts' state root; scripts/test.sh runs them from the repository
	// root, the parent of this package's directory.
	run := servicetest.EnvOr("USAGE_ROLLUP_RUN_DIR", ".run")
	if !filepath.IsAbs(run) {
		run = filepath.Join("..", run)
	}
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			missing("read %s: %v", path, err)
		}
		return strings.TrimSpace(string(b))
	}
	kafkaHost, _, err := net.SplitHostPort(svc.Brokers[0])
	if err != nil {
		t.Fatalf("KAFKA_BROKERS: %v", err)
	}
	chHost, _, err := net.SplitHostPort(svc.ClickHouse)
	if err != nil {
		t.Fatalf("CLICKHOUSE_ADDR: %v", err)
	}
	s := secureServices{
		Services:      svc,
		saslPlaintext: net.JoinHostPort(kafkaHost, servicetest.EnvOr("KAFKA_SASL_PORT", "9096")),
		ssl:           net.JoinHostPort(kafkaHost, servicetest.EnvOr("KAFKA_SSL_PORT", "9097")),
		saslSSL:       net.JoinHostPort(kafkaHost, servicetest.EnvOr("KAFKA_SASL_SSL_PORT", "9098")),
		clickhouseTLS: net.JoinHostPort(chHost, servicetest.EnvOr("CLICKHOUSE_SECURE_PORT", "9440")),
		ca:            filepath.Join(run, "certs", "ca.pem"),
		cert:          filepath.Join(run, "certs", "client.pem"),
		key:           filepath.Join(run, "certs", "client.key"),
		kafkaUser:     "usage",
		kafkaPassword: read(filepath.Join(run, "kafka", "secrets", "usage.password")),
		chUser:        "secure_user",
		chPassword:    read(filepath.Join(run, "clickhouse", "secrets", "secure_user.password")),
	}
	for _, f := range []string{s.ca, s.cert, s.key} {
		read(f)
	}
	for _, addr := range []string{s.saslPlaintext, s.ssl, s.saslSSL, s.clickhouseTLS} {
		servicetest.Reach(t, addr)
	}
	return s
}

// kafkaCases are the listener and security settings of every supported
// combination: each SASL mechanism over SASL_PLAINTEXT and SASL_SSL, and mTLS.
func (s secureServices) kafkaCases() []struct {
	name, addr string
	sec        ingest.Security
} {
	type kc = struct {
		name, addr string
		sec        ingest.Security
	}
	var cases []kc
	for _, m := range []string{ingest.SASLPlain, ingest.SASLScramSHA256, ingest.SASLScramSHA512} {
		sasl := ingest.Security{SASLMechanism: m, SASLUsername: s.kafkaUser, SASLPassword: security.Secret(s.kafkaPassword)}
		cases = append(cases, kc{"SASL_PLAINTEXT/" + m, s.saslPlaintext, sasl})
		sasl.TLS = security.TLS{Enabled: true, CAFile: s.ca}
		cases = append(cases, kc{"SASL_SSL/" + m, s.saslSSL, sasl})
	}
	cases = append(cases, kc{"SSL/mTLS", s.ssl, ingest.Security{TLS: security.TLS{Enabled: true, CAFile: s.ca, CertFile: s.cert, KeyFile: s.key}}})
	return cases
}

// TestKafkaSecurity runs, per listener and mechanism, what the service does
// with Kafka, all through ingest.Security's Dialer and Transport: create a
// topic and produce (Client, Writer), join a consumer group and read the
// assigned partition (ConsumerGroupConfig.Dialer, ReaderConfig.Dialer),
// commit and read the commit back (Generation, Client).
func TestKafkaSecurity(t *testing.T) {
	s := needSecureServices(t)
	for _, tc := range s.kafkaCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kafkaRoundTrip(t, tc.addr, tc.sec)
		})
	}
}

// secureTransport returns sec's dialer and a transport over it, whose idle
// connections are closed when the test ends.
func secureTransport(t *testing.T, sec ingest.Security) (*kafka.Dialer, *kafka.Transport) {
	t.Helper()
	dialer, err := sec.Dialer(10 * time.Second)
	if err != nil {
		t.Fatalf("Dialer: %v", err)
	}
	transport := sec.Transport(dialer)
	t.Cleanup(transport.CloseIdleConnections)
	return dialer, transport
}

func kafkaRoundTrip(t *testing.T, addr string, sec ingest.Security) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dialer, transport := secureTransport(t, sec)
	transport.ClientID = "usage-rollup-e2e"
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: transport}

	topic, group := randomName("sec"), randomName("sec")
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatalf("create topic over %s: %v", sec.Protocol(), err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}

	want := randomName("payload")
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Transport: transport, RequiredAcks: kafka.RequireAll, BatchTimeout: 10 * time.Millisecond}
	eventually(t, 30*time.Second, "produce", func() string {
		// Right after CreateTopics the leader may not be known yet.
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte(want)}); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: group, Brokers: []string{addr}, Dialer: dialer, Topics: []string{topic},
		StartOffset: kafka.FirstOffset, HeartbeatInterval: time.Second, SessionTimeout: 6 * time.Second,
		RebalanceTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("consumer group: %v", err)
	}
	defer cg.Close()
	var gen *kafka.Generation
	eventually(t, 60*time.Second, "join group over "+sec.Protocol(), func() string {
		// A fresh broker answers "coordinator not available" while it
		// creates __consumer_offsets; the service retries Next the same way.
		if gen, err = cg.Next(ctx); err != nil {
			return err.Error()
		}
		return ""
	})
	assigned := gen.Assignments[topic]
	if len(assigned) != 1 {
		t.Fatalf("assignments %v, want partition 0 of %s", gen.Assignments, topic)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, Topic: topic, Partition: assigned[0].ID, Dialer: dialer, MaxWait: 200 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatal(err)
	}
	msg, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read over %s: %v", sec.Protocol(), err)
	}
	if string(msg.Value) != want {
		t.Fatalf("read %q, want %q", msg.Value, want)
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{topic: {assigned[0].ID: msg.Offset + 1}}); err != nil {
		t.Fatalf("commit over %s: %v", sec.Protocol(), err)
	}
	if got := servicetest.Committed(t, client, group, topic, 1)[0]; got != msg.Offset+1 {
		t.Fatalf("committed offset %d, want %d", got, msg.Offset+1)
	}
}

// TestKafkaWrongPassword checks that a wrong password fails authentication,
// for the transport and the dialer, with an error that names neither the
// wrong nor the right password.
func TestKafkaWrongPassword(t *testing.T) {
	s := needSecureServices(t)
	wrong := randomName("wrong-password")
	for _, tc := range s.kafkaCases() {
		if tc.sec.SASLMechanism == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sec := tc.sec
			sec.SASLPassword = security.Secret(wrong)
			dialer, transport := secureTransport(t, sec)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, clientErr := (&kafka.Client{Addr: kafka.TCP(tc.addr), Transport: transport}).Metadata(ctx, &kafka.MetadataRequest{})
			conn, dialErr := dialer.DialContext(ctx, "tcp", tc.addr)
			if conn != nil {
				conn.Close()
			}
			for name, err := range map[string]error{"client": clientErr, "dialer": dialErr} {
				if !errors.Is(err, kafka.SASLAuthenticationFailed) {
					t.Errorf("%s: err = %v, want SASLAuthenticationFailed", name, err)
				}
				if err != nil && (strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), s.kafkaPassword)) {
					t.Errorf("%s: error reveals a password: %v", name, err)
				}
			}
		})
	}
}

// TestKafkaUntrustedServer checks that the client verifies the broker: with
// a CA that did not sign the broker's certificate the TLS handshake fails.
//
// (A client certificate from another CA cannot be tested against the SSL
// listener: its ssl.client.auth=requested names the trusted CAs, and
// crypto/tls then sends no certificate rather than one they did not sign, so
// the client connects as ANONYMOUS. openssl s_client, which sends it anyway,
// gets alert 46 certificate_unknown.)
func TestKafkaUntrustedServer(t *testing.T) {
	s := needSecureServices(t)
	rogue := testpki.Write(t) // a CA and client certificate no server trusts
	sec := ingest.Security{TLS: security.TLS{Enabled: true, CAFile: rogue.CA, CertFile: s.cert, KeyFile: s.key}}
	_, transport := secureTransport(t, sec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := (&kafka.Client{Addr: kafka.TCP(s.ssl), Transport: transport}).Metadata(ctx, &kafka.MetadataRequest{})
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("metadata with an untrusted broker certificate: err = %v, want x509.UnknownAuthorityError", err)
	}
}

// TestClickHouseTLS connects over the TLS port as a password user, with and
// without a client certificate: creating the database, migrations (DDL) and
// a query run over TLS.
func TestClickHouseTLS(t *testing.T) {
	s := needSecureServices(t)
	for _, tc := range []struct {
		name      string
		cert, key string
	}{
		{"server auth", "", ""},
		{"mTLS", s.cert, s.key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := secureClickHouseConfig(s, randomName("sec"))
			cfg.TLS.CertFile, cfg.TLS.KeyFile = tc.cert, tc.key
			dropDatabaseAtCleanup(t, s, cfg.Database)
			windows := secureWindows(t)
			conn, _, err := schema.Setup(context.Background(), cfg, schema.Config{Windows: windows}, zerolog.Nop())
			if err != nil {
				t.Fatalf("set up the database over TLS (%s): %v", cfg.Addr[0], err)
			}
			defer conn.Close()
			if n, err := audit.New(conn, windows).RejectedCount(context.Background(), "none"); err != nil || n != 0 {
				t.Fatalf("query over TLS: %d, %v", n, err)
			}
		})
	}
}

// TestClickHouseTLSRejects checks a wrong password (an authentication error
// that names neither password), a plain-TCP client on the TLS port and an
// untrusted client certificate.
func TestClickHouseTLSRejects(t *testing.T) {
	s := needSecureServices(t)
	wrong := randomName("wrong-password")
	rogue := testpki.Write(t) // a CA and client certificate no server trusts
	for _, tc := range []struct {
		name   string
		modify func(*chconn.Config)
		want   string // in the error; "" for any error
	}{
		{"wrong password", func(c *chconn.Config) { c.Password = security.Secret(wrong) }, "Wrong password"},
		// The server drops a connection that does not start a TLS handshake.
		{"no TLS", func(c *chconn.Config) { c.TLS = security.TLS{} }, ""},
		// Under TLS 1.3 the server checks the client certificate after the
		// client already finished its side of the handshake, so the client
		// sees either the server's alert or, if the server closed first, a
		// reset on its first write. Both are the server refusing the cert.
		{"untrusted client cert", func(c *chconn.Config) { c.TLS.CertFile, c.TLS.KeyFile = rogue.Cert, rogue.Key },
			"unknown certificate authority|connection reset by peer"},
		{"untrusted server", func(c *chconn.Config) { c.TLS.CAFile = rogue.CA }, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := secureClickHouseConfig(s, "default")
			tc.modify(&cfg)
			conn, err := chconn.Open(context.Background(), cfg)
			if err == nil {
				conn.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), s.chPassword) {
				t.Fatalf("error reveals a password: %v", err)
			}
			if !containsAny(err.Error(), strings.Split(tc.want, "|")) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("wrong password is an auth exception", func(t *testing.T) {
		cfg := secureClickHouseConfig(s, "default")
		cfg.Password = security.Secret(wrong)
		_, err := chconn.Open(context.Background(), cfg)
		var ex *clickhouse.Exception
		// 193 WRONG_PASSWORD on 18.16; 516 AUTHENTICATION_FAILED on current servers.
		if !errors.As(err, &ex) || (ex.Code != 193 && ex.Code != 516) {
			t.Fatalf("err = %v, want a ClickHouse authentication exception", err)
		}
	})
}

func secureClickHouseConfig(s secureServices, db string) chconn.Config {
	cfg := chconn.DefaultConfig()
	cfg.Addr, cfg.Database = []string{s.clickhouseTLS}, db
	cfg.Username, cfg.Password = s.chUser, security.Secret(s.chPassword)
	cfg.TLS = security.TLS{Enabled: true, CAFile: s.ca}
	return cfg
}

func secureWindows(t *testing.T) []aggregate.Window {
	t.Helper()
	windows, err := aggregate.ParseWindows("1m")
	if err != nil {
		t.Fatal(err)
	}
	return windows
}

// dropDatabaseAtCleanup drops db over the plain port as the default user.
func dropDatabaseAtCleanup(t *testing.T, s secureServices, db string) {
	t.Cleanup(func() {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.ClickHouse}, Protocol: clickhouse.Native})
		if err != nil {
			t.Logf("drop %s: %v", db, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
			t.Logf("drop %s: %v", db, err)
		}
	})
}

// containsAny reports whether s contains one of subs.
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
