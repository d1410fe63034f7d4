// Package faultproxy is a TCP proxy for fault-injection tests. It sits between
// a client and one upstream address and can switch, at run time, between
// forwarding bytes untouched and a few network faults: cutting every
// connection, blackholing traffic, adding latency, and delivering requests
// while dropping their replies.
//
// Every goroutine it starts belongs to the Proxy and is waited for by Close.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

// Modes. The zero value forwards traffic.
const (
	// PassThrough forwards bytes both ways unchanged.
	PassThrough Mode = iota
	// CutMode resets every connection and every new one.
	CutMode
	// BlackholeMode keeps connections open but forwards nothing either way;
	// bytes already read are held, not lost, and flow again after Heal, as
	// after a network partition that TCP retransmission bridges.
	BlackholeMode
	// DelayMode forwards every chunk after a fixed delay, both ways.
	DelayMode
	// DropRepliesMode forwards client-to-upstream bytes and discards
	// upstream-to-client bytes. Connections that lost bytes are reset on the
	// next mode change, since their byte stream can no longer be trusted.
	DropRepliesMode
)

func (m Mode) String() string {
	switch m {
	case PassThrough:
		return "pass-through"
	case CutMode:
		return "cut"
	case BlackholeMode:
		return "blackhole"
	case DelayMode:
		return "delay"
	case DropRepliesMode:
		return "drop-replies"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// dialTimeout bounds the connection to the upstream; a test's upstream is on
// loopback, so anything longer is a dead upstream.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections from its listen address to one upstream
// address. Create it with New, call Start once and Close when done; the mode
// methods are safe to call concurrently from any goroutine.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced on every mode change
	links   map[*link]struct{}
	closed  bool
	stats   Stats

	done    chan struct{} // closed by Close
	wg      sync.WaitGroup
	started bool
}

// Stats counts what the proxy did since it was created.
type Stats struct {
	Accepted       int   // client connections accepted
	Reset          int   // connections reset by Cut or refused while cut
	ForwardedBytes int64 // bytes written to either side
	DroppedBytes   int64 // upstream-to-client bytes discarded by DropReplies
}

// New listens on listen (host:port; port 0 picks one, see Addr) and returns a
// proxy to upstream in pass-through mode. Nothing is accepted before Start.
func New(listen, upstream string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", listen, err)
	}
	return &Proxy{
		ln:       ln,
		upstream: upstream,
		changed:  make(chan struct{}),
		links:    make(map[*link]struct{}),
		done:     make(chan struct{}),
	}, nil
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Start accepts connections in the background until Close.
func (p *Proxy) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.accept()
	}()
}

// Close stops accepting, closes every connection and waits for all of the
// proxy's goroutines to return.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	links := p.takeLinks(func(*link) bool { return true })
	p.mu.Unlock()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Heal returns to pass-through: held bytes flow again, delayed bytes keep
// their order, and connections that lost replies are reset.
func (p *Proxy) Heal() { p.setMode(PassThrough, 0) }

// Cut resets every open connection and every new one until the mode changes.
func (p *Proxy) Cut() { p.setMode(CutMode, 0) }

// Blackhole keeps connections (new ones too) open but forwards nothing.
func (p *Proxy) Blackhole() { p.setMode(BlackholeMode, 0) }

// Delay forwards every chunk read from either side d after it was read.
func (p *Proxy) Delay(d time.Duration) { p.setMode(DelayMode, d) }

// DropReplies forwards requests upstream and discards every reply.
func (p *Proxy) DropReplies() { p.setMode(DropRepliesMode, 0) }

func (p *Proxy) setMode(m Mode, d time.Duration) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	old := p.mode
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
	var reset []*link
	switch {
	case m == CutMode:
		reset = p.takeLinks(func(*link) bool { return true })
		p.stats.Reset += len(reset)
	case old == DropRepliesMode && m != DropRepliesMode:
		reset = p.takeLinks(func(l *link) bool { return l.tainted.Load() })
		p.stats.Reset += len(reset)
	}
	p.mu.Unlock()
	for _, l := range reset {
		l.close(true)
	}
}

// takeLinks removes and returns the links matching keep. p.mu must be held.
func (p *Proxy) takeLinks(match func(*link) bool) []*link {
	var out []*link
	for l := range p.links {
		if match(l) {
			delete(p.links, l)
			out = append(out, l)
		}
	}
	return out
}

// state returns the mode, the delay and the channel closed at the next change.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by Close; Accept on a loopback listener fails for nothing else
		}
		p.mu.Lock()
		p.stats.Accepted++
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve connects one client to the upstream, once the mode allows it.
func (p *Proxy) serve(client net.Conn) {
	for {
		mode, _, changed := p.state()
		switch mode {
		case CutMode:
			p.mu.Lock()
			p.stats.Reset++
			p.mu.Unlock()
			reset(client)
			return
		case BlackholeMode:
			// Hold the client without dialing: a partitioned network would
			// not have let the handshake through either.
			select {
			case <-changed:
				continue
			case <-p.done:
				client.Close()
				return
			}
		}
		break
	}
	server, err := net.DialTimeout("tcp", p.upstream, dialTimeout)
	if err != nil {
		reset(client) // the client sees the upstream refuse, as it would without us
		return
	}
	l := newLink(p, client, server)
	p.mu.Lock()
	if p.closed || p.mode == CutMode {
		p.mu.Unlock()
		l.close(true)
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	l.run()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// reset closes c with an RST rather than a FIN, as a cut network path or a
// refusing host does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
