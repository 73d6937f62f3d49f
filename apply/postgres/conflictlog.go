package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Two-way conflicts are logged where users look for them, in the
// destination's sluice.conflicts, in the transaction that applies them
// (so each is logged once, like the change), and counted per process for
// /metrics.

// conflictsDDL creates the log (with the offset table, ensureOffsetTable).
const conflictsDDL = `CREATE TABLE IF NOT EXISTS sluice.conflicts (
	id                   bigserial   PRIMARY KEY,
	detected_at          timestamptz NOT NULL DEFAULT now(),
	task                 text        NOT NULL,
	direction            text        NOT NULL,
	table_name           text        NOT NULL,
	key                  jsonb       NOT NULL,
	kind                 text        NOT NULL,
	resolution           text        NOT NULL,
	local_row            jsonb,
	incoming_row         jsonb,
	local_commit_time    timestamptz,
	incoming_commit_time timestamptz NOT NULL,
	local_lsn            pg_lsn,
	incoming_lsn         pg_lsn      NOT NULL
)`

// conflictKind is what a change met at the destination.
type conflictKind uint8

const (
	// kindInsertExists: an insert (or a key change) met a row with its key.
	kindInsertExists conflictKind = iota + 1
	// kindUpdateMissing: an update found no row.
	kindUpdateMissing
	// kindDeleteMissing: a delete found no row.
	kindDeleteMissing
	// kindUpdateStale: last_writer_wins: the row changed later here.
	kindUpdateStale
	// kindDeleteStale: last_writer_wins: the row a delete removes changed
	// later here (the delete applies all the same).
	kindDeleteStale
	// kindUniqueConflict: another row holds a unique value of the change.
	kindUniqueConflict
)

// kindNames are the kinds as sluice.conflicts and /metrics name them.
var kindNames = [...]string{kindInsertExists: "insert_exists", kindUpdateMissing: "update_missing", kindDeleteMissing: "delete_missing",
	kindUpdateStale: "update_stale", kindDeleteStale: "delete_stale", kindUniqueConflict: "unique_conflict"}

func (k conflictKind) String() string { return enumName(kindNames[:], uint8(k), "kind") }

// resolution is what became of a conflicting change.
type resolution uint8

const (
	// resFailed: task_failed: the task stops; nothing of the batch is
	// written.
	resFailed resolution = iota + 1
	// resKeptLocal: the destination's row stays as it is.
	resKeptLocal
	// resOverwritten: the change's row replaces the destination's.
	resOverwritten
	// resInserted: an update of a missing row is written as an insert.
	resInserted
	// resSkipped: the change is left out.
	resSkipped
	// resDeleted: the delete applies.
	resDeleted
)

// resolutionNames are the resolutions as sluice.conflicts and /metrics
// name them.
var resolutionNames = [...]string{resFailed: "failed", resKeptLocal: "kept_local", resOverwritten: "overwritten",
	resInserted: "inserted", resSkipped: "skipped", resDeleted: "deleted"}

func (r resolution) String() string { return enumName(resolutionNames[:], uint8(r), "resolution") }

// enumName is names[v], or what "type(v)" for a value without one.
func enumName(names []string, v uint8, what string) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", what, v)
}

// conflict is one row of sluice.conflicts.
type conflict struct {
	table proto.TableID
	key   string // JSON: key column -> text value
	kind  conflictKind
	res   resolution
	// local is the destination's row (JSON, column -> text value; "":
	// none), with its commit time when known (localUS, hasLocal).
	local    string
	localUS  int64
	hasLocal bool
	// incoming is the change's row (JSON; "": a delete).
	incoming    string
	incomingUS  int64
	incomingLSN proto.LSN
}

const conflictInsert = `INSERT INTO sluice.conflicts (task, direction, table_name, key, kind, resolution, local_row, incoming_row,
	local_commit_time, incoming_commit_time, local_lsn, incoming_lsn)
SELECT $1, $2, u.t, u.k::jsonb, u.kind, u.res, u.l::jsonb, u.i::jsonb,
	` + "%s, %s" + `, pg_catalog.pg_current_wal_insert_lsn(), u.il::pg_lsn
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[])
	AS u(t, k, kind, res, l, i, lt, it, il)`

var conflictInsertSQL = fmt.Sprintf(conflictInsert, fromMicros("u.lt"), fromMicros("u.it"))

// writeConflicts logs cs in tx, in one statement.
func writeConflicts(ctx context.Context, tx pgx.Tx, tw *twoWay, cs []conflict) error {
	n := len(cs)
	if n == 0 {
		return nil
	}
	tables, keys, kinds, res := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	locals, incomings := make([]*string, n), make([]*string, n)
	localUS, incomingUS := make([]*int64, n), make([]int64, n)
	lsns := make([]string, n)
	for i := range cs {
		c := &cs[i]
		tables[i], keys[i], kinds[i], res[i] = c.table.String(), c.key, c.kind.String(), c.res.String()
		if c.local != "" {
			locals[i] = &c.local
		}
		if c.incoming != "" {
			incomings[i] = &c.incoming
		}
		if c.hasLocal {
			localUS[i] = &c.localUS
		}
		incomingUS[i], lsns[i] = c.incomingUS, c.incomingLSN.String()
	}
	if _, err := tx.Exec(ctx, conflictInsertSQL, tw.Task, tw.Direction, tables, keys, kinds, res, locals, incomings, localUS, incomingUS, lsns); err != nil {
		return fmt.Errorf("log two-way conflicts in sluice.conflicts: %w", err)
	}
	return nil
}

// stopError stops the task on a conflict under task_failed.
type stopError struct {
	tw        *twoWay
	conflicts []conflict // resolution failed; the first is the change's
}

func (e *stopError) Error() string {
	c := &e.conflicts[0]
	return fmt.Sprintf("two-way conflict in %s, %s direction: %s on key %s, and two_way.conflicts is task_failed, so the task stops "+
		"(sluice.conflicts in the database this direction writes to has the rows); fix the row there, or change two_way.conflicts "+
		"(ignore, overwrite, last_writer_wins), then run `sluice task resume %s`",
		c.table, e.tw.Direction, c.kind, c.key, e.tw.Task)
}

// Unwrap makes the task stop at once, without retries.
func (e *stopError) Unwrap() error { return apply.ErrStopTask }

// stopOn logs the conflicts that stop the task in a transaction of their
// own (the batch's is rolled back), so users see what to fix, and
// returns the error.
func (s *Sink) stopOn(ctx context.Context, e *stopError) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return writeConflicts(ctx, tx, s.tw, e.conflicts) })
	if err != nil {
		s.logger.Warn("cannot log the two-way conflict that stops the task", "task", s.tw.Task, "err", err)
	} else {
		s.tw.count(e.conflicts)
	}
	return e
}

// ConflictCount is how many two-way conflicts this process has applied
// (or stopped on) of one kind and resolution, for one direction of a
// task.
type ConflictCount struct {
	Task, Direction, Kind, Resolution string
	N                                 int64
}

type conflictCountKey struct {
	task, direction string
	kind            conflictKind
	res             resolution
}

var conflictCounts struct {
	sync.Mutex
	n map[conflictCountKey]int64
}

// count adds committed conflicts to the process's counts.
func (tw *twoWay) count(cs []conflict) {
	if len(cs) == 0 {
		return
	}
	conflictCounts.Lock()
	defer conflictCounts.Unlock()
	if conflictCounts.n == nil {
		conflictCounts.n = map[conflictCountKey]int64{}
	}
	for i := range cs {
		conflictCounts.n[conflictCountKey{tw.Task, tw.Direction, cs[i].kind, cs[i].res}]++
	}
}

// ConflictCounts returns the process's two-way conflict counts, ordered
// by task, direction, kind and resolution.
func ConflictCounts() []ConflictCount {
	conflictCounts.Lock()
	out := make([]ConflictCount, 0, len(conflictCounts.n))
	for k, n := range conflictCounts.n {
		out = append(out, ConflictCount{Task: k.task, Direction: k.direction, Kind: k.kind.String(), Resolution: k.res.String(), N: n})
	}
	conflictCounts.Unlock()
	slices.SortFunc(out, func(a, b ConflictCount) int {
		return cmp.Or(cmp.Compare(a.Task, b.Task), cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Resolution, b.Resolution))
	})
	return out
}
