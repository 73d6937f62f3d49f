// Package node assembles a Sluice process: the coordinator (Raft), the
// embedded broker (JetStream) and the worker that runs a task's units.
package node

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
)

// Config configures `sluice up`, a single-node cluster in one process.
type Config struct {
	// DataDir holds Raft's log and snapshots and JetStream's files.
	DataDir string
	// Listen is the HTTP API address (default 127.0.0.1:7420).
	Listen string
	// RaftListen is the Raft transport address (default: API port + 1).
	RaftListen string
	// BrokerListen, when set, exposes the embedded NATS server to other
	// processes; by default the node talks to it in-process only.
	BrokerListen string
	// PprofListen, when set, serves Go's profiler (net/http/pprof) there.
	PprofListen string
	Logger      *slog.Logger
	// Runner tunes task execution (tests and benchmarks).
	Runner RunnerConfig
	// TLS serves the API (and the exposed broker) over TLS with this
	// certificate; needed to listen on anything but loopback.
	TLS *TLSFiles
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool
	// ClientConfig is the client configuration file the admin token is
	// written to ("" for none).
	ClientConfig string
}

// DefaultListen is the API address of `sluice up`.
const DefaultListen = "127.0.0.1:7420"

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return fmt.Errorf("node: a data directory is required")
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RaftListen == "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("node: listen address %q: %w", c.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("node: listen address %q: bad port", c.Listen)
		}
		if p == 0 {
			c.RaftListen = net.JoinHostPort(host, "0")
		} else {
			c.RaftListen = net.JoinHostPort(host, strconv.Itoa(p+1))
		}
	}
	return nil
}
