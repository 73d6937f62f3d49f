package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// tlsHandshakeTimeout bounds the TLS handshake of an accepted Raft
// connection. hashicorp/raft sets no deadline on incoming connections, so
// without it a peer that connects and never completes the handshake would
// hold a goroutine forever. A variable so that tests can shorten it; it is
// read when the stream layer is made.
var tlsHandshakeTimeout = 10 * time.Second

// tlsStreamLayer is a raft.StreamLayer over TLS: the listener side
// requires and verifies client certificates (the server config says so),
// the dialing side verifies the peer's certificate against the host of
// the address it dials.
type tlsStreamLayer struct {
	ln               net.Listener
	advertise        net.Addr
	server           *tls.Config
	client           func(serverName string) *tls.Config
	handshakeTimeout time.Duration
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer listens on the TCP address bind. advertise, when not
// nil, is the address Addr reports (it must be one peers can reach);
// otherwise the listener's. server must require and verify client
// certificates; client returns the config for dialing a peer whose
// certificate must be valid for serverName.
func newTLSStreamLayer(bind string, advertise net.Addr, server *tls.Config, client func(serverName string) *tls.Config) (*tlsStreamLayer, error) {
	if server == nil || client == nil {
		return nil, errors.New("TLS transport: both a server config and a client config are required")
	}
	if server.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("TLS transport: the server config must require and verify client certificates (tls.RequireAndVerifyClientCert)")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	l := &tlsStreamLayer{ln: ln, advertise: advertise, server: server, client: client, handshakeTimeout: tlsHandshakeTimeout}
	// As raft.NewTCPTransport: the address must be one peers can dial.
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		_ = ln.Close()
		return nil, fmt.Errorf("TLS transport: address %v is not a TCP address", l.Addr())
	}
	if addr.IP == nil || addr.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("TLS transport: %v is not an advertisable address", addr)
	}
	return l, nil
}

// Accept waits for the next connection. Its TLS handshake runs on the
// first Read or Write, bounded by the handshake timeout, so Accept itself
// never waits for a peer.
func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, l.server), timeout: l.handshakeTimeout}, nil
}

// Close stops listening. Connections already accepted stay open.
func (l *tlsStreamLayer) Close() error { return l.ln.Close() }

// Addr is the advertised address, or the listener's.
func (l *tlsStreamLayer) Addr() net.Addr {
	if l.advertise != nil {
		return l.advertise
	}
	return l.ln.Addr()
}

// Dial connects to a peer and completes the TLS handshake within timeout
// (none when timeout is not positive), verifying the peer's certificate
// against the host of address.
func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("TLS transport: dial %q: %w", address, err)
	}
	cfg := l.client(host)
	if cfg == nil {
		return nil, fmt.Errorf("TLS transport: no client config for %s", host)
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	return d.DialContext(ctx, "tcp", string(address))
}

// serverConn is an accepted connection whose handshake runs, once, on
// the first Read or Write with a deadline, cleared once it succeeds.
type serverConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		if c.timeout > 0 {
			if err := c.Conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
				c.err = err
				return
			}
		}
		if err := c.Conn.Handshake(); err != nil {
			c.err = fmt.Errorf("TLS handshake with %s: %w", c.Conn.RemoteAddr(), err)
			return
		}
		c.err = c.Conn.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
