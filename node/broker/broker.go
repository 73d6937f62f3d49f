// Package broker runs the embedded NATS server with JetStream that carries
// the change streams on a node.
package broker

import (
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
	// Listen is host:port for client connections. Empty means no network
	// listener: clients in this process connect in-process.
	Listen string
	// SyncAlways makes JetStream fsync every write. Off by default: an
	// acknowledged message is then in the OS page cache, which survives the
	// sluice process being killed but not a machine crash; the cluster
	// relies on replication (R3) instead.
	SyncAlways bool
	// Name is the server's name, unique in a cluster (a node's id).
	Name string
	// ClusterListen (host:port) and Routes (the other brokers' route
	// addresses) make this server one of a JetStream cluster. Routes are
	// dialed as given and not gossiped (NoAdvertise), so a node reaches
	// its peers only at the addresses in its own configuration.
	ClusterListen string
	Routes        []string
}

// clusterName is the NATS cluster every Sluice broker joins.
const clusterName = "sluice"

// Broker is a running embedded NATS server.
type Broker struct {
	srv *server.Server
}

// Start launches the server and waits until it accepts connections.
func Start(opts Options) (*Broker, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("broker: StoreDir is required")
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
	}
	if opts.Listen == "" {
		sopts.DontListen = true
	} else {
		host, port, err := splitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("broker: listen address: %w", err)
		}
		sopts.Host, sopts.Port = host, port
	}
	if opts.ClusterListen != "" {
		host, port, err := splitHostPort(opts.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("broker: cluster address: %w", err)
		}
		sopts.Cluster = server.ClusterOpts{Name: clusterName, Host: host, Port: port, NoAdvertise: true}
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
	return &Broker{srv: srv}, nil
}

// Connect opens a client connection to the broker (in-process when it has
// no listener). Reconnect buffering is off: a publish during a disconnect
// fails at once instead of being sent later out of order.
func (b *Broker) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.ReconnectBufSize(-1), nats.MaxReconnects(-1)}
	url := b.ClientURL()
	if url == "" {
		opts = append(opts, nats.InProcessServer(b.srv))
	}
	return nats.Connect(url, opts...)
}

// ClientURL is the nats:// address, empty when the broker has no listener.
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
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return host, p, nil
}
