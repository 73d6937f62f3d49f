package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// The applied position of each (task, table) lives in the destination,
// written in the same transaction as the rows (invariant 2), with the
// epoch of the writer (invariant 3).

const offsetDDL = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.apply_offsets (
	task        text        NOT NULL,
	schema_name text        NOT NULL,
	table_name  text        NOT NULL,
	lsn         pg_lsn      NOT NULL,
	idx         bigint      NOT NULL,
	epoch       bigint      NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (task, schema_name, table_name)
)`

// offsetUpsert stores positions unless a newer epoch already wrote them.
const offsetUpsert = `INSERT INTO sluice.apply_offsets AS o (task, schema_name, table_name, lsn, idx, epoch)
SELECT $1, u.s, u.t, u.l::pg_lsn, u.i, $2 FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[]) AS u(s, t, l, i)
ON CONFLICT (task, schema_name, table_name) DO UPDATE
SET lsn = EXCLUDED.lsn, idx = EXCLUDED.idx, epoch = EXCLUDED.epoch, updated_at = now()
WHERE o.epoch <= EXCLUDED.epoch`

func (s *Sink) ensureOffsetTable(ctx context.Context) error {
	// Concurrent CREATE ... IF NOT EXISTS can still collide; serialize.
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7420001)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, offsetDDL); err != nil {
			return fmt.Errorf("create sluice.apply_offsets at the destination: %w", err)
		}
		return nil
	})
}

// Offsets returns the task's applied positions.
func (s *Sink) Offsets(ctx context.Context, task string) (map[string]proto.Position, error) {
	rows, err := s.pool.Query(ctx, `SELECT schema_name, table_name, lsn::text, idx FROM sluice.apply_offsets WHERE task = $1`, task)
	if err != nil {
		return nil, err
	}
	out := map[string]proto.Position{}
	for rows.Next() {
		var t proto.TableID
		var lsn string
		var idx int64
		if err := rows.Scan(&t.Schema, &t.Name, &lsn, &idx); err != nil {
			return nil, err
		}
		l, err := proto.ParseLSN(lsn)
		if err != nil {
			return nil, err
		}
		out[t.Key()] = proto.Position{LSN: l, Idx: uint32(idx)}
	}
	return out, rows.Err()
}

// ResetOffsets forgets a task's positions: a new task with the name of a
// deleted one must not skip anything.
func (s *Sink) ResetOffsets(ctx context.Context, task string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sluice.apply_offsets WHERE task = $1`, task)
	return err
}

// writeOffsets stores positions in tx, or fails with apply.ErrFenced.
func writeOffsets(ctx context.Context, tx pgx.Tx, task string, epoch uint64, tables map[string]proto.TableID, pos map[string]proto.Position) error {
	n := len(pos)
	schemas, names, lsns := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	idxs := make([]int64, 0, n)
	for k, p := range pos {
		t := tables[k]
		schemas, names = append(schemas, t.Schema), append(names, t.Name)
		lsns, idxs = append(lsns, p.LSN.String()), append(idxs, int64(p.Idx))
	}
	tag, err := tx.Exec(ctx, offsetUpsert, task, int64(epoch), schemas, names, lsns, idxs)
	if err != nil {
		return fmt.Errorf("store applied positions: %w", err)
	}
	if int(tag.RowsAffected()) != n {
		return apply.ErrFenced
	}
	return nil
}
