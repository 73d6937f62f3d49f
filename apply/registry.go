package apply

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// The destination registry. A destination is one package under apply/
// that implements Destination and is registered by one line in
// apply/destinations; nothing outside apply names a destination type.

// Destination is one type of destination.
type Destination interface {
	// Kind names the type (destination.type) and makes its config: the
	// destination: block and its keys in objects entries decode into
	// them, and validate by them (proto.DestinationConfig).
	Kind() proto.DestinationKind
	// Capabilities says what the destination can do beyond the base.
	Capabilities() Capabilities
	// Open connects a sink for one use: a unit of a task.
	Open(ctx context.Context, spec *proto.TaskSpec, use Use) (TaskSink, error)
	// Precheck checks the destination for a task before anything is
	// created, creating nothing (or nothing a task would not create
	// itself): the source's checks found src.
	Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks)
	// Classify sorts an error of the destination's client library into a
	// retry window: connection or other; "" when it is not one of its.
	Classify(err error) proto.ErrorKind
	// Endpoints names the servers the task writes to (host:port), so that
	// tasks sharing one share the shortest retry window (invariant 7).
	Endpoints(spec *proto.TaskSpec) []string
}

// Capabilities are what a destination can do beyond the base contract:
// the conformance suites (apply/sinktest, pipeline/pipelinetest) choose
// their cases by them. The pipeline asks the sink itself (the optional
// interfaces it implements).
type Capabilities struct {
	// SchemaSync: the sink creates the source's tables (or their topics)
	// before the load (SchemaApplier does the work).
	SchemaSync bool
	// RenamesAfterLoad: with schema sync, tables are created and loaded
	// under the source's names and renamed after the load (TableRenamer);
	// otherwise the sink writes under the destination's names throughout.
	RenamesAfterLoad bool
	// DDL: the sink applies the source's schema changes (DDLApplier).
	DDL bool
	// Heartbeats: the sink writes the source's heartbeats where readers
	// see them (HeartbeatWriter).
	Heartbeats bool
	// KeepsExistingTables: conflicting_tables: ignore can write into
	// tables the destination had before the task.
	KeepsExistingTables bool
	// Sequences: the destination has sequences, which the sink keeps in
	// step with the source's (SequenceSyncer).
	Sequences bool
}

// TaskSink is everything a task's units use of its destination; every
// destination's sink implements it. What only some can do is said by the
// optional interfaces (DDLApplier, HeartbeatWriter, TableRenamer).
type TaskSink interface {
	ChangeApplier
	Snapshotter
	SchemaApplier
	// ResetOffsets forgets a task's positions and loaded chunks, before a
	// new slot starts it over.
	ResetOffsets(ctx context.Context, task string) error
}

// TableRenamer is a destination that creates and loads tables under the
// source's names and renames them after the load (PostgreSQL: its
// constraints, indexes and sequences follow the rename).
type TableRenamer interface {
	RenameTables(ctx context.Context, task string, names *proto.NameMap, tables []*proto.TableDef) error
}

// UseKind says which unit opens a sink.
type UseKind uint8

const (
	// UseTask is the capture unit's bookkeeping: schema, plans, resets.
	UseTask UseKind = iota + 1
	// UseApply is an apply group (Use.Unit is the group).
	UseApply
	// UseCopy is a copy unit of the full sync (Use.Unit is its share).
	UseCopy
	// UseCleanup removes a deleted task's objects.
	UseCleanup
	// UseCutover is a cutover's final steps (the node answering the API,
	// beside the task's running units): it writes no changes.
	UseCutover
	// UseVerify is a verification (sluice verify): it reads, and repairs
	// rows when asked.
	UseVerify
)

func (k UseKind) String() string {
	switch k {
	case UseTask:
		return "task"
	case UseApply:
		return "apply"
	case UseCopy:
		return "copy"
	case UseCleanup:
		return "cleanup"
	case UseCutover:
		return "cutover"
	case UseVerify:
		return "verify"
	}
	return fmt.Sprintf("use(%d)", k)
}

// Use says who opens a sink, for its sessions and its fencing.
type Use struct {
	Kind UseKind
	Unit int // the apply group or copy unit's share
	// HeartbeatWriter: this unit is the task's one writer of heartbeat
	// messages (HeartbeatWriter sinks write them only then).
	HeartbeatWriter bool
	Logger          *slog.Logger
}

func (u Use) String() string {
	if u.Kind == UseApply || u.Kind == UseCopy {
		return fmt.Sprintf("%s %d", u.Kind, u.Unit)
	}
	return u.Kind.String()
}

var (
	registryMu   sync.RWMutex
	destinations = map[string]Destination{}
)

// Register adds a destination type; registering one twice panics.
func Register(d Destination) {
	kind := d.Kind()
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := destinations[kind.Type]; dup {
		panic("apply: destination " + kind.Type + " registered twice")
	}
	destinations[kind.Type] = d
	proto.RegisterDestinationKind(kind)
}

// Lookup returns the destination registered for a type.
func Lookup(typ string) (Destination, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	d, ok := destinations[typ]
	if !ok {
		return nil, fmt.Errorf("unknown destination type %q (this build writes to: %v)", typ, slices.Sorted(maps.Keys(destinations)))
	}
	return d, nil
}

// Registered lists the registered destinations, sorted by type.
func Registered() []Destination {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Destination, 0, len(destinations))
	for _, typ := range slices.Sorted(maps.Keys(destinations)) {
		out = append(out, destinations[typ])
	}
	return out
}

// Open connects to a task's destination for one use.
func Open(ctx context.Context, spec *proto.TaskSpec, use Use) (TaskSink, error) {
	d, err := Lookup(spec.Destination.Type)
	if err != nil {
		return nil, err
	}
	if use.Logger == nil {
		use.Logger = slog.Default()
	}
	s, err := d.Open(ctx, spec, use)
	if err != nil {
		return nil, fmt.Errorf("connect to destination: %w", err)
	}
	return s, nil
}

// ClassifyError asks every destination whether err is one of its client
// library's, and returns the kind the first one knows ("" if none does).
func ClassifyError(err error) proto.ErrorKind {
	for _, d := range Registered() {
		if k := d.Classify(err); k != "" {
			return k
		}
	}
	return ""
}

// Endpoints names the servers a task's destination writes to.
func Endpoints(spec *proto.TaskSpec) []string {
	d, err := Lookup(spec.Destination.Type)
	if err != nil {
		return nil
	}
	return d.Endpoints(spec)
}

// Planner is a destination that says what schema sync would make of a
// schema, for a task's plan (sluice task plan): it fills in each planned
// table's Storage and, for SQL, the statements, creating nothing.
type Planner interface {
	Plan(spec *proto.TaskSpec, s *proto.Schema, plan *proto.TaskPlan)
}

// Periodic is work a sink does at intervals while its task is
// incremental (a materialized view refresh): the task's capture unit runs
// it, and logs a failure without failing the task.
type Periodic struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context) error
}

// PeriodicWorker is a sink with periodic work for a task.
type PeriodicWorker interface {
	Periodic(spec *proto.TaskSpec) []Periodic
}

// Releaser is a sink that makes its destination differ from the source
// while its task runs (PostgreSQL without replica mode: triggers and
// rules held, foreign keys deferrable), and gives it the source's
// definitions back at cutover and when the task is deleted. Release
// returns what it did.
type Releaser interface {
	Release(ctx context.Context, task string) ([]string, error)
}
