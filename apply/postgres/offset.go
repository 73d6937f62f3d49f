package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// The applied position of each (task, table, shard) lives in the
// destination, written in the same transaction as the rows (invariant 2),
// with the epoch of the writer (invariant 3). A table's rows are split by
// key into shards that are written in parallel, each in its own
// transaction with its own position (see shard.go).

const offsetDDL = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.apply_offsets (
	task        text        NOT NULL,
	schema_name text        NOT NULL,
	table_name  text        NOT NULL,
	shard       int         NOT NULL,
	lsn         pg_lsn      NOT NULL,
	idx         bigint      NOT NULL,
	epoch       bigint      NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (task, schema_name, table_name, shard)
);
CREATE TABLE IF NOT EXISTS sluice.copy_tables (
	task        text    NOT NULL,
	schema_name text    NOT NULL,
	table_name  text    NOT NULL,
	plan        bigint  NOT NULL,
	finished    boolean NOT NULL DEFAULT false,
	PRIMARY KEY (task, schema_name, table_name)
);
CREATE TABLE IF NOT EXISTS sluice.copy_chunks (
	task        text        NOT NULL,
	schema_name text        NOT NULL,
	table_name  text        NOT NULL,
	chunk       int         NOT NULL,
	plan        bigint      NOT NULL,
	rows        bigint      NOT NULL,
	copied_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (task, schema_name, table_name, chunk)
);
` + conflictsDDL + ";" + heldDDL + objectBarrierDDL + deferredKeysDDL

// offsetUpsert stores positions unless a newer epoch already wrote them.
// A position never moves back: a batch replayed after a crash can end
// below what one shard had already committed.
const offsetUpsert = `INSERT INTO sluice.apply_offsets AS o (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1, u.s, u.t, u.h, u.l::pg_lsn, u.i, $2 FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS u(s, t, h, l, i)
ON CONFLICT (task, schema_name, table_name, shard) DO UPDATE
SET lsn = CASE WHEN (EXCLUDED.lsn, EXCLUDED.idx) > (o.lsn, o.idx) THEN EXCLUDED.lsn ELSE o.lsn END,
	idx = CASE WHEN (EXCLUDED.lsn, EXCLUDED.idx) > (o.lsn, o.idx) THEN EXCLUDED.idx ELSE o.idx END,
	epoch = EXCLUDED.epoch, updated_at = now()
WHERE o.epoch <= EXCLUDED.epoch`

func (s *Sink) ensureOffsetTable(ctx context.Context) error {
	// Concurrent CREATE ... IF NOT EXISTS can still collide; serialize.
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7420001)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.dialect.ownTables(offsetDDL)); err != nil { // dialect.go
			return fmt.Errorf("create sluice's tables at the destination: %w", err)
		}
		return nil
	})
}

// Offsets returns, per table, the lowest position of its shards: every
// change at or below it is applied. Changes above it may be applied in
// some shards already; Apply skips those shard by shard. A shard with no
// position yet counts as nothing applied.
func (s *Sink) Offsets(ctx context.Context, task string) (map[string]proto.Position, error) {
	rows, err := s.pool.Query(ctx, `SELECT schema_name, table_name, shard, lsn::text, idx FROM sluice.apply_offsets WHERE task = $1`, task)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	shards := map[string][]proto.Position{}
	for rows.Next() {
		var t proto.TableID
		var shard int
		var lsn string
		var idx int64
		if err := rows.Scan(&t.Schema, &t.Name, &shard, &lsn, &idx); err != nil {
			return nil, err
		}
		l, err := proto.ParseLSN(lsn)
		if err != nil {
			return nil, err
		}
		if shard < 0 || shard >= s.shards {
			return nil, fmt.Errorf("sluice.apply_offsets has shard %d of %s, but the sink writes %d shards: the shard count of a task cannot change", shard, t, s.shards)
		}
		pos := shards[t.Key()]
		if pos == nil {
			pos = make([]proto.Position, s.shards)
			shards[t.Key()] = pos
		}
		pos[shard] = proto.Position{LSN: l, Idx: uint32(idx)}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]proto.Position{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, pos := range shards {
		s.positions[k] = pos
		low := pos[0]
		for _, p := range pos[1:] {
			if p.Less(low) {
				low = p
			}
		}
		out[k] = low
	}
	return out, nil
}

// ResetOffsets forgets a task's positions and full-sync chunks: a new task
// with the name of a deleted one must not skip anything. A two-way sink
// drops its direction's replication origins too. sluice.conflicts keeps
// its rows: they are the history users look back on.
func (s *Sink) ResetOffsets(ctx context.Context, task string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, table := range []string{"apply_offsets", "copy_tables", "copy_chunks", "object_barrier"} {
			if _, err := tx.Exec(ctx, "DELETE FROM sluice."+table+" WHERE task = $1", task); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.Lock()
	s.positions = map[string][]proto.Position{}
	s.mu.Unlock()
	if err == nil && s.tw != nil {
		// The origins' progress belongs to the run that ends here.
		err = s.dropOrigins(ctx)
	}
	return err
}

// shardPosition is one row of sluice.apply_offsets to write.
type shardPosition struct {
	table proto.TableID
	shard int
	pos   proto.Position
}

// Fencing (invariant 3). Two owners of one apply group can overlap for a
// moment after a failover: the old one has not noticed yet. Each apply
// transaction therefore first locks its offset rows (creating them at
// position zero, epoch zero, if missing) and checks them: a newer epoch
// means this writer is fenced; a position beyond what this writer thought
// applied means another owner wrote meanwhile, so the batch is planned
// again against the new positions. The row locks serialise the owners, so
// a change is never written twice.

// offsetLock locks a transaction's offset rows and reads them: one probe
// of the key index per row asked for. As a plain join the planner, with
// hash and merge joins off in the apply's sessions and the table's
// statistics often stale (its rows are rewritten by every batch), chose
// to compare every row asked for with every row of the task: 360 ms for
// 700 rows of a 5,000-table task, against 5 ms this way. OFFSET 0 keeps
// the subquery from being flattened back into that join.
const offsetLock = `SELECT u.s, u.t, u.h, o.lsn::text, o.idx, o.epoch
FROM unnest($2::text[], $3::text[], $4::int[]) AS u(s, t, h)
CROSS JOIN LATERAL (SELECT o.lsn, o.idx, o.epoch FROM sluice.apply_offsets o
	WHERE o.task = $1 AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h OFFSET 0 FOR UPDATE) o`

// offsetLockJoin is offsetLock as a join, for Greenplum, whose LATERAL
// and row locks in subqueries are narrower than PostgreSQL's.
const offsetLockJoin = `SELECT u.s, u.t, u.h, o.lsn::text, o.idx, o.epoch
FROM unnest($2::text[], $3::text[], $4::int[]) AS u(s, t, h)
JOIN sluice.apply_offsets o ON o.task = $1 AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h
FOR UPDATE OF o`

// offsetCreate adds missing offset rows at position zero.
const offsetCreate = `INSERT INTO sluice.apply_offsets (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1, u.s, u.t, u.h, '0/0', 0, 0 FROM unnest($2::text[], $3::text[], $4::int[]) AS u(s, t, h)
ON CONFLICT DO NOTHING`

// errFloorMoved: another owner advanced a shard since this writer planned
// its batch; plan again.
var errFloorMoved = errors.New("apply positions moved under this writer")

// lockOffsets locks and checks the offset rows of positions in tx.
func (s *Sink) lockOffsets(ctx context.Context, tx pgx.Tx, task string, epoch uint64, positions []shardPosition) error {
	n := len(positions)
	if n == 0 {
		return nil
	}
	schemas, names, shards := make([]string, n), make([]string, n), make([]int32, n)
	for i, p := range positions {
		schemas[i], names[i], shards[i] = p.table.Schema, p.table.Name, int32(p.shard)
	}
	for attempt := 0; ; attempt++ {
		lock := offsetLock
		if s.dialect.isADBPG() {
			lock = offsetLockJoin
		}
		rows, err := tx.Query(ctx, lock, task, schemas, names, shards)
		if err != nil {
			return fmt.Errorf("lock applied positions: %w", err)
		}
		found := 0
		var moved []shardPosition
		var fencedBy uint64
		for rows.Next() {
			var sp shardPosition
			var shard int32
			var lsn string
			var idx, ep int64
			if err := rows.Scan(&sp.table.Schema, &sp.table.Name, &shard, &lsn, &idx, &ep); err != nil {
				rows.Close()
				return err
			}
			found++
			sp.shard = int(shard)
			if uint64(ep) > epoch {
				fencedBy = uint64(ep)
				continue
			}
			l, err := proto.ParseLSN(lsn)
			if err != nil {
				rows.Close()
				return err
			}
			sp.pos = proto.Position{LSN: l, Idx: uint32(idx)}
			if floors := s.shardFloors(sp.table); floors[sp.shard].Less(sp.pos) {
				moved = append(moved, sp)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock applied positions: %w", err)
		}
		switch {
		case fencedBy != 0:
			return fmt.Errorf("%w: epoch %d wrote here, this writer has %d", apply.ErrFenced, fencedBy, epoch)
		case len(moved) > 0:
			s.remember(moved)
			return errFloorMoved
		case found == n:
			return nil
		case attempt > 0:
			return fmt.Errorf("lock applied positions: %d of %d rows missing after creating them", n-found, n)
		}
		if err := s.createOffsets(ctx, tx, task, schemas, names, shards); err != nil { // noconflict.go
			return fmt.Errorf("create applied positions: %w", err)
		}
	}
}

// writeOffsets stores positions in tx, or fails with apply.ErrFenced.
func (s *Sink) writeOffsets(ctx context.Context, tx pgx.Tx, task string, epoch uint64, positions []shardPosition) error {
	n := len(positions)
	if n == 0 {
		return nil
	}
	schemas, names, lsns := make([]string, n), make([]string, n), make([]string, n)
	shards, idxs := make([]int32, n), make([]int64, n)
	for i, p := range positions {
		schemas[i], names[i], shards[i] = p.table.Schema, p.table.Name, int32(p.shard)
		lsns[i], idxs[i] = p.pos.LSN.String(), int64(p.pos.Idx)
	}
	written, err := s.storeOffsets(ctx, tx, task, int64(epoch), schemas, names, shards, lsns, idxs) // noconflict.go
	if err != nil {
		return fmt.Errorf("store applied positions: %w", err)
	}
	if int(written) != n {
		return apply.ErrFenced
	}
	return nil
}

// allShards is the position of every shard of each table.
func (s *Sink) allShards(tables map[string]proto.TableID, pos map[string]proto.Position) []shardPosition {
	out := make([]shardPosition, 0, len(pos)*s.shards)
	for k, p := range pos {
		for h := 0; h < s.shards; h++ {
			out = append(out, shardPosition{table: tables[k], shard: h, pos: p})
		}
	}
	return out
}

// remember records committed positions, for the shard filter.
func (s *Sink) remember(written []shardPosition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range written {
		k := w.table.Key()
		pos := s.positions[k]
		if pos == nil {
			pos = make([]proto.Position, s.shards)
			s.positions[k] = pos
		}
		if pos[w.shard].Less(w.pos) {
			pos[w.shard] = w.pos
		}
	}
}

// shardFloors returns a copy of a table's shard positions.
func (s *Sink) shardFloors(t proto.TableID) []proto.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]proto.Position, s.shards)
	copy(out, s.positions[t.Key()])
	return out
}
