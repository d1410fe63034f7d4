package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// chunkBytes is the most one read takes from a socket; every fault applies
// per chunk. 32 KiB is the size io.Copy uses.
const chunkBytes = 32 << 10

// queueChunks bounds the chunks in flight per direction: in DelayMode a
// direction holds about delay × throughput bytes, and a full queue stops
// reading, so a slow upstream pushes back on the client as TCP would.
const queueChunks = 64

// chunk is a piece of the byte stream and when it may be written.
type chunk struct {
	b  []byte
	at time.Time
}

// link is one proxied connection: a client and its upstream connection, with
// one reader and one writer goroutine per direction.
type link struct {
	p              *Proxy
	client, server net.Conn
	// tainted is set once a reply byte was dropped: the client's view of the
	// stream has a hole, so the connection is reset when the fault ends.
	tainted   atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
}

func newLink(p *Proxy, client, server net.Conn) *link {
	return &link{p: p, client: client, server: server, done: make(chan struct{})}
}

// run forwards both directions until both ended or the link was closed.
func (l *link) run() {
	up := make(chan chunk, queueChunks)
	down := make(chan chunk, queueChunks)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); l.read(l.client, up, true) }()
	go func() { defer wg.Done(); l.write(l.server, up) }()
	go func() { defer wg.Done(); l.read(l.server, down, false) }()
	go func() { defer wg.Done(); l.write(l.client, down) }()
	wg.Wait()
	l.close(false)
}

// close ends the link once; rst resets both sockets instead of closing them.
func (l *link) close(rst bool) {
	l.closeOnce.Do(func() {
		close(l.done)
		if rst {
			reset(l.client)
			reset(l.server)
			return
		}
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

// read moves chunks from src into out, applying the mode at the time each
// chunk was read. It closes out when src ends.
func (l *link) read(src net.Conn, out chan<- chunk, toUpstream bool) {
	defer close(out)
	for {
		buf := make([]byte, chunkBytes)
		n, err := src.Read(buf)
		if n > 0 && !l.deliver(buf[:n], out, toUpstream) {
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.close(false)
			}
			return
		}
	}
}

// deliver queues b according to the current mode and reports whether the
// link is still up.
func (l *link) deliver(b []byte, out chan<- chunk, toUpstream bool) bool {
	for {
		mode, delay, changed := l.p.state()
		at := time.Now()
		switch mode {
		case CutMode:
			l.close(true)
			return false
		case BlackholeMode:
			select {
			case <-changed:
				continue
			case <-l.done:
				return false
			}
		case DropRepliesMode:
			if !toUpstream {
				l.tainted.Store(true)
				l.p.count(0, len(b))
				return true
			}
		case DelayMode:
			at = at.Add(delay)
		}
		select {
		case out <- chunk{b: b, at: at}:
			return true
		case <-l.done:
			return false
		}
	}
}

// write sends the chunks of in to dst, each not before its time. When in is
// closed (the other side finished sending), it half-closes dst.
func (l *link) write(dst net.Conn, in <-chan chunk) {
	for c := range in {
		if wait := time.Until(c.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
		}
		if _, err := dst.Write(c.b); err != nil {
			l.close(false)
			return
		}
		l.p.count(len(c.b), 0)
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	l.close(false)
}

func (p *Proxy) count(forwarded, dropped int) {
	p.mu.Lock()
	p.stats.ForwardedBytes += int64(forwarded)
	p.stats.DroppedBytes += int64(dropped)
	p.mu.Unlock()
}
