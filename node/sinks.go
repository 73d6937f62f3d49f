package node

import (
	"context"
	"log/slog"

	"github.com/sluicedb/sluice/apply"
	_ "github.com/sluicedb/sluice/apply/destinations" // every destination this build writes to
	"github.com/sluicedb/sluice/proto"
)

// heartbeatGroup is the apply group that writes a task's heartbeat
// messages (destination.heartbeat). Every group's consumer takes every
// source heartbeat (apply.ConsumerConfig), so one is enough and more
// would write each heartbeat once per group. Group 0 because it always
// exists while the task is incremental: the coordinator makes one apply
// unit per group whether or not any table hashes into it
// (coordinator.TaskUnits), so there is exactly one writer, on whichever
// node runs that unit, fenced like the unit's other writes.
const heartbeatGroup = 0

// openSink connects to a task's destination for one use.
func openSink(ctx context.Context, spec *proto.TaskSpec, use apply.Use, logger *slog.Logger) (apply.TaskSink, error) {
	use.Logger = logger
	return apply.Open(ctx, spec, use)
}
