// Package node assembles a Sluice process: the coordinator (Raft), the
// embedded broker (JetStream) and the worker that runs a task's units.
package node

import "log/slog"

// Config configures `sluice up`, a single-node cluster in one process.
type Config struct {
	// DataDir holds Raft's log and snapshots and JetStream's files.
	DataDir string
	// Listen is the HTTP API address (default 127.0.0.1:7420).
	Listen string
	// RaftListen is the Raft transport address (default: API port + 1).
	RaftListen string
	Logger     *slog.Logger
}
