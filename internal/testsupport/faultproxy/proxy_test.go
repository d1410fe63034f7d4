package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection and records all bytes it received.
type echoServer struct {
	ln  net.Listener
	wg  sync.WaitGroup
	mu  sync.Mutex
	got bytes.Buffer
	cs  map[net.Conn]struct{}
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, cs: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						s.mu.Lock()
						s.got.Write(buf[:n])
						s.mu.Unlock()
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.cs {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

func startProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	p, err := New("127.0.0.1:0", upstream)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p
}

// echoThroughProxy starts an echo server and a proxy in front of it, and
// dials the proxy: the start of most tests here.
func echoThroughProxy(t *testing.T) (*echoServer, *Proxy, net.Conn) {
	t.Helper()
	s := newEchoServer(t)
	p := startProxy(t, s.ln.Addr().String())
	return s, p, dial(t, p)
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back within limit.
func roundTrip(c net.Conn, msg string, limit time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(limit))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

// expectRefused dials p and requires the connection to fail fast: the reset
// may already fail the dial or only the first read.
func expectRefused(t *testing.T, p *Proxy) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := roundTrip(c, "x", time.Second); err == nil || isTimeout(err) {
		t.Fatalf("new connection: err %v, want reset or EOF", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitFor polls cond until it holds or a second passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPassThrough(t *testing.T) {
	_, p, c := echoThroughProxy(t)
	for _, msg := range []string{"hello", string(bytes.Repeat([]byte("x"), 200_000))} {
		got, err := roundTrip(c, msg, 2*time.Second)
		if err != nil || got != msg {
			t.Fatalf("round trip of %d bytes: got %d bytes, err %v", len(msg), len(got), err)
		}
	}
	if p.Mode() != PassThrough {
		t.Fatalf("mode %s, want pass-through", p.Mode())
	}
}

func TestCutResetsOpenAndNewConnections(t *testing.T) {
	_, p, c := echoThroughProxy(t)
	if _, err := roundTrip(c, "before", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if _, err := roundTrip(c, "during", time.Second); err == nil || isTimeout(err) {
		t.Fatalf("open connection after Cut: err %v, want reset or EOF", err)
	}
	expectRefused(t, p)
	if st := p.Stats(); st.Reset < 2 {
		t.Fatalf("stats %+v, want at least 2 resets", st)
	}
	p.Heal()
	h := dial(t, p)
	if got, err := roundTrip(h, "after", time.Second); err != nil || got != "after" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

func TestBlackholeHoldsBytesUntilHeal(t *testing.T) {
	s, p, open := echoThroughProxy(t)
	if _, err := roundTrip(open, "a", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	if _, err := roundTrip(open, "held", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("open connection in blackhole: err %v, want a read timeout", err)
	}
	fresh := dial(t, p) // accepted but never connected upstream
	if _, err := roundTrip(fresh, "new!", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection in blackhole: err %v, want a read timeout", err)
	}
	if got := s.received(); got != "a" {
		t.Fatalf("upstream received %q during the blackhole, want only %q", got, "a")
	}
	p.Heal()
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{open, "held"}, {fresh, "new!"}} {
		_ = tc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, len(tc.want))
		if _, err := io.ReadFull(tc.c, buf); err != nil || string(buf) != tc.want {
			t.Fatalf("after Heal: got %q, %v, want %q", buf, err, tc.want)
		}
	}
}

func TestDelayAddsLatencyBothWaysAndKeepsOrder(t *testing.T) {
	_, p, c := echoThroughProxy(t)
	const d = 150 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	got, err := roundTrip(c, "slow", 2*time.Second)
	if err != nil || got != "slow" {
		t.Fatalf("delayed round trip: %q, %v", got, err)
	}
	if took := time.Since(start); took < 2*d {
		t.Fatalf("round trip took %s, want at least %s (delay both ways)", took, 2*d)
	}
	// Chunks queued during the delay keep their order after Heal.
	var want bytes.Buffer
	for i := range 20 {
		msg := []byte{byte('a' + i)}
		want.Write(msg)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			p.Heal()
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, want.Len())
	if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, want.Bytes()) {
		t.Fatalf("got %q, %v, want %q", buf, err, want.Bytes())
	}
}

func TestDropRepliesDeliversRequestsAndLosesReplies(t *testing.T) {
	s, p, c := echoThroughProxy(t)
	p.DropReplies()
	if _, err := roundTrip(c, "insert", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("reply during DropReplies: err %v, want a read timeout", err)
	}
	waitFor(t, "the request to reach the upstream", func() bool { return s.received() == "insert" })
	waitFor(t, "the dropped reply to be counted", func() bool { return p.Stats().DroppedBytes == int64(len("insert")) })
	p.Heal()
	// The connection lost a reply, so Heal resets it.
	if _, err := roundTrip(c, "again", time.Second); err == nil || isTimeout(err) {
		t.Fatalf("connection that lost a reply, after Heal: err %v, want reset or EOF", err)
	}
	n := dial(t, p)
	if got, err := roundTrip(n, "fresh", time.Second); err != nil || got != "fresh" {
		t.Fatalf("new connection after Heal: %q, %v", got, err)
	}
}

func TestUpstreamDownResetsClient(t *testing.T) {
	// Port 1 (tcpmux) is not served on a test machine. A just-closed
	// ephemeral port would not do: the proxy's own listener may get it.
	p := startProxy(t, "127.0.0.1:1")
	expectRefused(t, p)
}

func TestHalfCloseIsForwarded(t *testing.T) {
	_, _, c := echoThroughProxy(t)
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, err := io.ReadAll(c) // the echo, then EOF once the server closes
	if err != nil || string(got) != "bye" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestCloseWithHeldConnections(t *testing.T) {
	s := newEchoServer(t)
	p, err := New("127.0.0.1:0", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	open := dial(t, p)
	if _, err := roundTrip(open, "a", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Delay(time.Hour)
	if _, err := open.Write([]byte("queued for an hour")); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	held := dial(t, p)
	waitFor(t, "the held connection to be accepted", func() bool { return p.Stats().Accepted == 2 })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return with held and delayed connections")
	}
	if _, err := roundTrip(held, "x", time.Second); err == nil || isTimeout(err) {
		t.Fatalf("held connection after Close: err %v, want EOF", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	p.Heal() // a no-op after Close
}

func TestNewRejectsBadAddresses(t *testing.T) {
	if _, err := New("127.0.0.1:0", "no-port"); err == nil {
		t.Fatal("New accepted an upstream without a port")
	}
	p := startProxy(t, "127.0.0.1:1")
	if _, err := New(p.Addr(), "127.0.0.1:1"); err == nil {
		t.Fatal("New listened on an address in use")
	}
}
