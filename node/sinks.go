package node

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// taskSink is everything a task's units use of its destination. Each
// destination package implements it; nothing else in node knows which
// one it talks to.
type taskSink interface {
	apply.ChangeApplier
	apply.Snapshotter
	apply.SchemaApplier
	ResetOffsets(ctx context.Context, task string) error
}

// tableRenamer is a destination that creates and loads tables under the
// source's names and renames them after the load (PostgreSQL: its
// constraints, indexes and sequences follow the rename). Others write
// under the destination's names from the start.
type tableRenamer interface {
	RenameTables(ctx context.Context, task string, names *proto.NameMap, tables []*proto.TableDef) error
}

// sinkUse says who opens a sink, for its sessions and its fencing.
type sinkUse struct {
	// what: "task" (the capture unit's bookkeeping), "apply", "copy",
	// "cleanup".
	what  string
	unit  int // the apply group or copy unit
	conns int32
}

func (u sinkUse) String() string {
	if u.what == "apply" || u.what == "copy" {
		return fmt.Sprintf("%s %d", u.what, u.unit)
	}
	return u.what
}

// heartbeatGroup is the apply group that writes a task's heartbeat
// messages (destination.heartbeat). Every group's consumer takes every
// source heartbeat (apply.ConsumerConfig), so one is enough and more
// would write each heartbeat once per group. Group 0 because it always
// exists while the task is incremental: the coordinator makes one apply
// unit per group whether or not any table hashes into it
// (coordinator.TaskUnits), so there is exactly one writer, on whichever
// node runs that unit, fenced like the unit's other writes.
const heartbeatGroup = 0

// openSink connects to a task's destination.
func openSink(ctx context.Context, spec *proto.TaskSpec, use sinkUse, logger *slog.Logger) (taskSink, error) {
	if logger == nil {
		logger = slog.Default()
	}
	switch spec.Destination.Type {
	case "kafka":
		opts := kafka.Options{
			Task: spec.Name, Spec: spec.Destination.KafkaSpec, Database: pgconfig.Database(spec.Source.DSN),
			Routes: kafkaRoutes(spec), TransactionalID: "sluice." + spec.Name + "." + use.what, Logger: logger,
		}
		if use.what == "copy" {
			opts.TransactionalID = fmt.Sprintf("sluice.%s.copy.%d", spec.Name, use.unit)
		}
		if use.what == "apply" {
			opts.TransactionalID = fmt.Sprintf("sluice.%s.apply.%d", spec.Name, use.unit)
			opts.Heartbeats = use.unit == heartbeatGroup
		}
		s, err := kafka.Open(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("connect to destination: %w", err)
		}
		return s, nil
	default:
		conns := use.conns
		if conns == 0 {
			conns = 1
		}
		s, err := postgres.Open(ctx, postgres.Options{
			DSN: spec.Destination.ConnDSN(), MaxConns: conns, Application: "sluice task " + spec.Name + " " + use.String(), Logger: logger,
		})
		if err != nil {
			return nil, fmt.Errorf("connect to destination: %w", err)
		}
		return s, nil
	}
}

// kafkaRoutes gives every table named in the spec's objects its topic,
// partitions and partition key, under its source and its destination
// name (schema sync looks tables up by the first, changes by the second).
func kafkaRoutes(spec *proto.TaskSpec) map[string]kafka.Route {
	names := spec.Names()
	routes := map[string]kafka.Route{}
	for _, o := range spec.Objects {
		seen := map[string]bool{}
		for t := range o.Topics {
			seen[t] = true
		}
		for t := range o.Partitions {
			seen[t] = true
		}
		for t := range o.PartitionKey {
			seen[t] = true
		}
		for name := range seen {
			src := proto.TableID{Schema: o.Schema, Name: name}
			r := kafka.Route{Topic: spec.TopicFor(src), Partitions: spec.PartitionsFor(src), PartitionKey: names.ColumnsOf(src, spec.PartitionKeyOf(src))}
			routes[src.Key()] = r
			routes[names.Table(src).Key()] = r
		}
	}
	return routes
}
