// Package broker runs the embedded NATS server with JetStream that carries
// the change streams on a node.
package broker

import (
	"errors"
	"fmt"
	"net"
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
}

// Broker is a running embedded NATS server.
type Broker struct {
	srv *server.Server
}

// Start launches the server and waits until it accepts connections.
func Start(opts Options) (*Broker, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("broker: StoreDir is required")
	}
	sopts := &server.Options{
		ServerName: "sluice",
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
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("broker: listen address %q: %w", opts.Listen, err)
		}
		sopts.Host = host
		if sopts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("broker: listen address %q: bad port", opts.Listen)
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
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
