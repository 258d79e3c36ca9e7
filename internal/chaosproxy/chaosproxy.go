// Package chaosproxy is a TCP proxy for tests that cuts its connections at
// random moments, as a centre's flaky network does.
//
// A client connects to Proxy.Addr instead of the target; the proxy dials the
// target and copies bytes both ways until it cuts the pair. It knows nothing
// of the protocol it carries.
package chaosproxy

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Options configure a Proxy.
type Options struct {
	Target string // host:port to forward to
	// MinCut, MaxCut: the proxy runs a loop: sleep a random duration in
	// [MinCut, MaxCut], then close every open connection, both sides. Zero
	// (both): never cut on its own; CutNow still cuts. A MaxCut below
	// MinCut is taken as MinCut.
	MinCut, MaxCut time.Duration
	Seed           uint64 // for math/rand/v2 PCG
}

// dialTimeout bounds the proxy's dial to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections to a target and cuts them.
type Proxy struct {
	opts Options
	ln   net.Listener
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu     sync.Mutex
	down   bool
	closed bool
	cuts   int
	pairs  map[*pair]struct{}
}

// pair is one client connection and the proxy's connection to the target.
type pair struct {
	client, target net.Conn
	once           sync.Once
}

func (c *pair) close() {
	c.once.Do(func() {
		c.client.Close()
		c.target.Close()
	})
}

// Start listens on 127.0.0.1:0 and forwards to o.Target; t.Cleanup closes the
// proxy and every connection through it.
func Start(t testing.TB, o Options) *Proxy {
	t.Helper()
	if o.Target == "" {
		t.Fatal("chaosproxy: Options.Target is empty")
	}
	if o.MinCut < 0 || o.MaxCut < 0 {
		t.Fatalf("chaosproxy: negative MinCut %v or MaxCut %v", o.MinCut, o.MaxCut)
	}
	if o.MaxCut < o.MinCut {
		o.MaxCut = o.MinCut
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("chaosproxy: listening: %v", err)
	}
	p := &Proxy{
		opts:  o,
		ln:    ln,
		stop:  make(chan struct{}),
		pairs: make(map[*pair]struct{}),
	}
	t.Cleanup(p.Close)
	p.wg.Add(1)
	go p.acceptLoop()
	if o.MaxCut > 0 {
		p.wg.Add(1)
		go p.cutLoop(rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)))
	}
	return p
}

// Addr returns the proxy's "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns "tcp://" + Addr.
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// Cuts returns how many times the proxy cut connections: each cut that closed
// at least one open connection counts once, whether made by the loop or by
// CutNow.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// CutNow closes every open connection now, both sides.
func (p *Proxy) CutNow() {
	p.mu.Lock()
	open := p.pairs
	p.pairs = make(map[*pair]struct{})
	if len(open) > 0 {
		p.cuts++
	}
	p.mu.Unlock()
	for c := range open {
		c.close()
	}
}

// SetDown sets whether the network is down. While it is, new connections
// are accepted and closed at once; connections already open are left alone
// (call CutNow as well to drop them).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines. It is safe to call more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	open := p.pairs
	p.pairs = nil
	p.mu.Unlock()
	close(p.stop)
	p.ln.Close()
	for c := range open {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (too many open files): try again,
			// unless the proxy is closing.
			select {
			case <-p.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			conn.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(conn)
	}
}

// serve dials the target for one client and copies both ways until either
// side ends or the pair is cut.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	target, err := net.DialTimeout("tcp", p.opts.Target, dialTimeout)
	if err != nil {
		client.Close() // the target is down: the client sees its connection end
		return
	}
	c := &pair{client: client, target: target}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.pairs[c] = struct{}{}
	p.mu.Unlock()

	var copies sync.WaitGroup
	copies.Add(2)
	pipe := func(dst, src net.Conn) {
		defer copies.Done()
		_, _ = io.Copy(dst, src) // ends when either side is closed; the cause does not matter
		c.close()
	}
	go pipe(target, client)
	go pipe(client, target)
	copies.Wait()

	p.mu.Lock()
	delete(p.pairs, c) // a no-op after a cut or Close
	p.mu.Unlock()
}

// cutLoop cuts every open connection after a random pause in [MinCut,
// MaxCut], again and again, until Close.
func (p *Proxy) cutLoop(rng *rand.Rand) {
	defer p.wg.Done()
	span := int64(p.opts.MaxCut - p.opts.MinCut)
	for {
		d := p.opts.MinCut
		if span > 0 {
			d += time.Duration(rng.Int64N(span + 1))
		}
		timer := time.NewTimer(d)
		select {
		case <-p.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		p.CutNow()
	}
}
