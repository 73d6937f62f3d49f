package testenv

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Bounds of a Proxy. A test link carries a handful of connections (Raft
// pools a few per peer, NATS one route), so a cap far above that only
// guards against a runaway reconnect loop eating file descriptors; the dial
// timeout keeps a Close from waiting long on a target that does not answer.
const (
	proxyMaxConns    = 256
	proxyDialTimeout = 2 * time.Second
)

// Proxy is a TCP forwarder on a loopback port that a test can cut and
// restore. The cluster harness puts one on every directed link between two
// nodes, because a node dials its peers only at the addresses its own
// configuration lists: cutting the proxies of a node's links partitions it
// without touching the node, the kernel or any firewall (tests run
// unprivileged and in parallel).
//
// A cut is as a network partition looks to the nodes: open connections
// break, and new ones are accepted and closed at once, so dials succeed and
// the first read fails, the way a connection reset does, rather than
// hanging until a timeout.
type Proxy struct {
	ln     net.Listener
	target string
	// ctx ends dials in flight when the proxy closes. It is the proxy's
	// own lifetime, not a caller's.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one goroutine per connection

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[*proxyConn]struct{}
}

// proxyConn is one accepted connection and, once dialled, its upstream.
type proxyConn struct {
	client   net.Conn
	upstream net.Conn // nil while dialling
	closed   bool
}

// NewProxy listens on a free loopback port and forwards every connection
// to target (host:port) until Close.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, ctx: ctx, cancel: cancel, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address (127.0.0.1:port), what a node's
// configuration lists in place of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Conns is the number of connections open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Cut closes every open connection and makes the proxy close new ones as
// soon as it accepts them, until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for pc := range p.conns {
		pc.closeLocked()
	}
}

// Restore forwards new connections again after a Cut. Connections broken
// by the cut stay broken; their owners reconnect.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Cutting reports whether the proxy is cut.
func (p *Proxy) Cutting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Close stops listening, closes every connection and waits until all of
// the proxy's goroutines have returned. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for pc := range p.conns {
		pc.closeLocked()
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure such as running out of file
			// descriptors: back off instead of spinning. Close ends the
			// loop through ErrClosed above.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		if p.closed || p.cut || len(p.conns) >= proxyMaxConns {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		pc := &proxyConn{client: c}
		p.conns[pc] = struct{}{}
		// Added under the lock with closed false, while this loop still
		// holds its own count: Close's Wait cannot have returned yet.
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(pc)
	}
}

// forward dials the target for one accepted connection and copies both
// ways. The first direction to end closes both connections: the protocols
// behind these proxies (Raft, NATS routes) never half-close, and closing
// both at once is what lets the other copy return.
func (p *Proxy) forward(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		pc.closeLocked()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	d := net.Dialer{Timeout: proxyDialTimeout}
	up, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return // the deferred close tells the client the target is gone
	}
	p.mu.Lock()
	if pc.closed { // cut or closed while dialling
		p.mu.Unlock()
		_ = up.Close()
		return
	}
	pc.upstream = up
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, pc.client)
		p.closeConn(pc)
	}()
	_, _ = io.Copy(pc.client, up)
	p.closeConn(pc)
	<-done
}

func (p *Proxy) closeConn(pc *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.closeLocked()
}

// closeLocked closes both sides once; the caller holds the proxy's mutex.
func (pc *proxyConn) closeLocked() {
	if pc.closed {
		return
	}
	pc.closed = true
	_ = pc.client.Close()
	if pc.upstream != nil {
		_ = pc.upstream.Close()
	}
}
