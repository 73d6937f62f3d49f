// Package broker runs the embedded NATS server with JetStream that carries
// the change streams on a node.
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure the embedded server.
type Options struct {
	// StoreDir holds JetStream's files; required.
	StoreDir string
	// Listen is host:port for client connections (port 0: a free port,
	// see ClientURL). Empty means no network listener: clients in this
	// process connect in-process.
	Listen string
	// SyncAlways makes JetStream fsync every write. Off by default: an
	// acknowledged message is then in the OS page cache, which survives the
	// sluice process being killed but not a machine crash; the cluster
	// relies on replication (R3) instead.
	SyncAlways bool
	// Name is the server's name, unique in a cluster (a node's id).
	Name string
	// ClusterListen (host:port; port 0: a free port) and Routes (the
	// other brokers' route addresses) make this server one of a JetStream
	// cluster; it requires Listen (nats-server routes only once its client
	// listener is up). Routes are dialed as given and not gossiped
	// (NoAdvertise), so a node reaches its peers only at the addresses in
	// its own configuration.
	ClusterListen string
	Routes        []string

	// Credentials are the user and password every client must present
	// (nats.UserInfo), in-process clients included; required. A client
	// without them, or with a wrong password, gets
	// "-ERR 'Authorization Violation'".
	Credentials Credentials
	// TLS, when set, makes the client port (Listen) require TLS with this
	// config: it holds the node's certificate and, so that NodeCert can
	// authorize nodes, should verify client certificates if given
	// (ClientAuth tls.VerifyClientCertIfGiven, ClientCAs the cluster CA).
	// With ClusterListen, RouteTLS is then required too.
	TLS *tls.Config
	// RouteTLS, when set, makes the route port (ClusterListen) and the
	// routes this server dials use TLS with this config, which serves
	// both sides: it must require and verify client certificates
	// (tls.RequireAndVerifyClientCert, ClientCAs the cluster CA), verify
	// servers against RootCAs, and check in VerifyConnection that the
	// peer is a node. The dialing side verifies the peer's certificate for
	// the host of the route address (an IP SAN for an IP), unless the
	// config sets ServerName. The certificate the peer verified is a
	// route's only authorization: without RouteTLS any server that reaches
	// the route port joins the cluster.
	RouteTLS *tls.Config
	// NodeCert, when set, authorizes without a password a client that
	// connected over TLS with a certificate the TLS config verified and
	// that NodeCert accepts (a node's certificate).
	NodeCert func(cs *tls.ConnectionState) bool
}

// tlsTimeout bounds a TLS handshake, in seconds.
const tlsTimeout = 5

// clusterName is the NATS cluster every Sluice broker joins.
const clusterName = "sluice"

// Broker is a running embedded NATS server.
type Broker struct {
	srv   *server.Server
	creds Credentials
}

// Start launches the server and waits until it accepts connections.
func Start(opts Options) (*Broker, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("broker: StoreDir is required")
	}
	if !opts.Credentials.valid() {
		return nil, errors.New("broker: Credentials (user and password) are required")
	}
	if opts.ClusterListen != "" && opts.Listen == "" {
		// nats-server starts routing only once the client listener is
		// up: without one the server would never route, and hang in
		// Shutdown.
		return nil, errors.New("broker: ClusterListen requires Listen")
	}
	if opts.ClusterListen != "" && opts.TLS != nil && opts.RouteTLS == nil {
		return nil, errors.New("broker: RouteTLS is required with TLS and ClusterListen")
	}
	if opts.RouteTLS != nil && opts.RouteTLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("broker: RouteTLS must require and verify client certificates (tls.RequireAndVerifyClientCert)")
	}
	name := opts.Name
	if name == "" {
		name = "sluice"
	}
	sopts := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		SyncAlways: opts.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
		// Change batches can be large (a chunk of a wide table).
		MaxPayload: 8 << 20,
		// Every client connection, in-process ones included.
		CustomClientAuthentication: newAuthenticator(opts.Credentials, opts.NodeCert),
	}
	if opts.Listen == "" {
		sopts.DontListen = true
	} else {
		host, port, err := splitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("broker: listen address: %w", err)
		}
		sopts.Host, sopts.Port = host, port
		if opts.TLS != nil {
			// Our tls.Config decides on client certificates; TLSVerify
			// would make the server require one.
			sopts.TLSConfig, sopts.TLSVerify, sopts.TLSTimeout = opts.TLS, false, tlsTimeout
		}
	}
	if opts.ClusterListen != "" {
		host, port, err := splitHostPort(opts.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("broker: cluster address: %w", err)
		}
		sopts.Cluster = server.ClusterOpts{Name: clusterName, Host: host, Port: port, NoAdvertise: true}
		if opts.RouteTLS != nil {
			// Routes are authorized by the verified certificate alone (no
			// route user, no TLSMap): the config requires one.
			sopts.Cluster.TLSConfig, sopts.Cluster.TLSTimeout = opts.RouteTLS, tlsTimeout
		}
		for _, r := range opts.Routes {
			u, err := url.Parse("nats://" + r)
			if err != nil {
				return nil, fmt.Errorf("broker: route %q: %w", r, err)
			}
			sopts.Routes = append(sopts.Routes, u)
		}
	}
	// SLUICE_NATS_LOG=1 shows the NATS server's own log (stderr), for
	// diagnosing clustering.
	if os.Getenv("SLUICE_NATS_LOG") != "" {
		sopts.NoLog, sopts.Logtime = false, true
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if !sopts.NoLog {
		srv.ConfigureLogger()
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("broker: NATS server not ready within 30s")
	}
	return &Broker{srv: srv, creds: opts.Credentials}, nil
}

// Connect opens an in-process client connection to the broker (no
// network, no TLS, whether or not it has a listener), authenticated with
// the broker's Credentials. Reconnect buffering is off: a publish during
// a disconnect fails at once instead of being sent later out of order.
func (b *Broker) Connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.Name(name), nats.ReconnectBufSize(-1), nats.MaxReconnects(-1),
		nats.InProcessServer(b.srv), nats.UserInfo(b.creds.User, b.creds.Password))
}

// ClientURL is the nats:// (tls:// with TLS) address, empty when the
// broker has no listener.
func (b *Broker) ClientURL() string {
	if b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Shutdown stops the server and waits for it.
func (b *Broker) Shutdown() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if p == 0 {
		// Port 0 means the default port (4222) to nats-server, and a
		// route port of 0 no clustering: ask for a free port instead.
		p = server.RANDOM_PORT
	}
	return host, p, nil
}
