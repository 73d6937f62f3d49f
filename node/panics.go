package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluicedb/sluice/internal/safe"
)

// installPanicLog makes every panic the process recovers (internal/safe:
// units, their attempts, the worker's and the alerter's loops) log at
// error level with its stack; the panic's message alone goes on with the
// failure (the task's last error). node.Run calls it at start. The hook is
// process-wide: with several nodes in one process (tests), the last node
// started logs them all.
func installPanicLog(logger *slog.Logger) {
	safe.OnPanic(func(where string, value any, stack []byte) {
		logger.Error("panic recovered", "where", where, "panic", value, "stack", string(stack))
	})
}

// keepRunning runs loop until ctx ends, starting it again a second after
// a panic (recovered, logged and counted by internal/safe): the node's
// own loops (the scheduler, membership and heartbeats) must not die with
// one bad round, nor take the process with them.
func keepRunning(ctx context.Context, where string, loop func(context.Context)) {
	for {
		_ = safe.Run(where, func() error { loop(ctx); return nil })
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
