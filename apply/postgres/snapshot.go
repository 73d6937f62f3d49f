package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Full-sync chunks load exactly once (see apply.Snapshotter). Each table
// being copied has a row in sluice.copy_tables naming the plan that loads
// it; each loaded chunk has a row in sluice.copy_chunks written in the
// transaction that loaded it. A chunk's transaction holds its table's row
// FOR SHARE while it loads, so a new plan (BeginTable) or the table's end
// (FinishTable), which update that row, wait for loads in flight and
// fence every later one; two owners of one chunk collide on its
// copy_chunks key, and the second rolls back.

// BeginTable empties a table and binds it to plan.
func (s *Sink) BeginTable(ctx context.Context, task string, t proto.TableID, plan uint64, keep bool) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		bound, err := s.bindPlan(ctx, tx, task, t, plan) // noconflict.go
		if err != nil {
			return wrapTable(t, "bind to full-sync plan", err)
		}
		if bound == 0 {
			return fmt.Errorf("%w: a newer full-sync plan than %d loads %s", apply.ErrFenced, plan, t)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sluice.copy_chunks WHERE task = $1 AND schema_name = $2 AND table_name = $3`, task, t.Schema, t.Name); err != nil {
			return err
		}
		if keep {
			return nil // its own rows stay; chunks load with ON CONFLICT DO NOTHING
		}
		if err := (&writer{tx: tx}).truncate(ctx, t); err != nil {
			return wrapTable(t, "empty", err)
		}
		if !s.dialect.keysAfterLoad() {
			return nil
		}
		return wrapTable(t, "defer keys", deferKeys(ctx, tx, task, t))
	})
}

// CopyChunk loads a chunk's COPY rows into its table. They come straight
// from the source's COPY TO: no value is parsed or converted on the way.
func (s *Sink) CopyChunk(ctx context.Context, c apply.ChunkLoad, read func(w io.Writer) (int64, error)) (int64, error) {
	t := c.Table
	var rows int64
	err := s.beginOwn(ctx, func(tx pgx.Tx) error {
		var plan int64
		var finished bool
		err := tx.QueryRow(ctx, `SELECT plan, finished FROM sluice.copy_tables WHERE task = $1 AND schema_name = $2 AND table_name = $3 FOR SHARE`,
			c.Task, t.Schema, t.Name).Scan(&plan, &finished)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%w: %s is not bound to full-sync plan %d", apply.ErrFenced, t, c.Plan)
		case err != nil:
			return err
		case uint64(plan) != c.Plan || finished:
			return fmt.Errorf("%w: %s is loaded by full-sync plan %d (finished: %t), not %d", apply.ErrFenced, t, plan, finished, c.Plan)
		}
		err = tx.QueryRow(ctx, `SELECT rows FROM sluice.copy_chunks WHERE task = $1 AND schema_name = $2 AND table_name = $3 AND chunk = $4`,
			c.Task, t.Schema, t.Name, c.Chunk).Scan(&rows)
		if err == nil {
			return nil // loaded by an earlier attempt
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if c.Keep {
			rows, err = s.copyKeeping(ctx, tx, c, read)
		} else {
			rows, err = copyFrom(ctx, tx.Conn().PgConn(), c, read)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO sluice.copy_chunks (task, schema_name, table_name, chunk, plan, rows) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.Task, t.Schema, t.Name, c.Chunk, int64(c.Plan), rows)
		if isCode(err, "23505") { // unique_violation
			return fmt.Errorf("%w: chunk %d of %s was loaded by another owner meanwhile", apply.ErrFenced, c.Chunk, t)
		}
		return err
	})
	return rows, err
}

// copyKeeping loads a chunk into a table that keeps its own rows: COPY
// into a temporary table shaped like it, then INSERT ... ON CONFLICT DO
// NOTHING (without ON CONFLICT: WHERE NOT EXISTS, keepInsertSQL), so a
// row whose key the table has already stays as it is.
func (s *Sink) copyKeeping(ctx context.Context, tx pgx.Tx, c apply.ChunkLoad, read func(w io.Writer) (int64, error)) (int64, error) {
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE sluice_keep (LIKE %s) ON COMMIT DROP", tableName(c.Table))); err != nil {
		return 0, wrapTable(c.Table, "stage", err)
	}
	staged := c
	staged.Table = proto.TableID{Schema: "pg_temp", Name: "sluice_keep"}
	rows, err := copyFrom(ctx, tx.Conn().PgConn(), staged, read)
	if err != nil {
		return 0, err
	}
	cols := make([]string, len(c.Columns))
	for i, name := range c.Columns {
		cols[i] = ident(name)
	}
	list := strings.Join(cols, ", ")
	insert, err := s.keepInsertSQL(ctx, tx, c.Table, list) // noconflict.go
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, insert); err != nil {
		return 0, wrapTable(c.Table, "load", err)
	}
	_, err = tx.Exec(ctx, "DROP TABLE pg_temp.sluice_keep")
	return rows, err
}

// copyFrom pipes read's output into COPY FROM on conn.
func copyFrom(ctx context.Context, conn *pgconn.PgConn, c apply.ChunkLoad, read func(w io.Writer) (int64, error)) (int64, error) {
	cols := make([]string, len(c.Columns))
	for i, name := range c.Columns {
		cols[i] = ident(name)
	}
	opts := ""
	if c.Format == proto.CopyBinary {
		opts = " (FORMAT binary)"
	}
	pr, done := apply.PipeChunk(read)
	tag, err := conn.CopyFrom(ctx, pr, fmt.Sprintf("COPY %s (%s) FROM STDIN%s", tableName(c.Table), strings.Join(cols, ", "), opts))
	if rerr := done(); rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, wrapTable(c.Table, "load", err)
	}
	return tag.RowsAffected(), nil
}

// FinishTable closes a table to chunks and stores its copy's position.
func (s *Sink) FinishTable(ctx context.Context, task string, t proto.TableID, plan uint64, at proto.Position, epoch uint64) error {
	positions := s.allShards(map[string]proto.TableID{t.Key(): t}, map[string]proto.Position{t.Key(): at})
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sluice.copy_tables SET finished = true WHERE task = $1 AND schema_name = $2 AND table_name = $3 AND plan = $4`,
			task, t.Schema, t.Name, int64(plan))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s is not loaded by full-sync plan %d", apply.ErrFenced, t, plan)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sluice.copy_chunks WHERE task = $1 AND schema_name = $2 AND table_name = $3`, task, t.Schema, t.Name); err != nil {
			return err
		}
		if err := s.fillGeneratedTable(ctx, tx, t); err != nil { // AnalyticDB (noconflict.go)
			return err
		}
		if _, err := restoreKeys(ctx, tx, task, &t); err != nil {
			return wrapTable(t, "build keys", err)
		}
		return s.writeOffsets(ctx, tx, task, epoch, positions)
	})
	if err == nil {
		s.remember(positions)
	}
	return err
}

// CopyFormatFor picks binary COPY when the destination runs the source's
// major version and the table has built-in types only: the binary form is
// then the same on both sides, and cheaper to produce and to load.
func (s *Sink) CopyFormatFor(ctx context.Context, t *proto.TableDef, sourceMajor int) (proto.CopyFormat, error) {
	if !t.BuiltinTypesOnly() || !s.dialect.binaryCopy() {
		return proto.CopyText, nil
	}
	var major int
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&major); err != nil {
		return proto.CopyText, err
	}
	if major != sourceMajor {
		return proto.CopyText, nil
	}
	return proto.CopyBinary, nil
}

// RenameTables gives the tables of a full sync their destination names
// (task spec renames and name_case) once they are loaded and indexed:
// created and loaded under their source names, they are renamed by
// PostgreSQL, which carries their constraints, indexes, foreign keys and
// owned sequences along. The task's positions and chunk records move
// with them, in the same transaction. It can run again: a table already
// renamed is left as it is.
func (s *Sink) RenameTables(ctx context.Context, task string, names *proto.NameMap, tables []*proto.TableDef) error {
	if names == nil {
		return nil
	}
	for _, def := range tables {
		src, dst := def.ID, names.Table(def.ID)
		var renames [][2]string
		for _, c := range def.Columns {
			if to := names.Column(src, c.Name); to != c.Name {
				renames = append(renames, [2]string{c.Name, to})
			}
		}
		if src == dst && len(renames) == 0 {
			continue
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var srcExists, dstExists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
				tableName(src), tableName(dst)).Scan(&srcExists, &dstExists); err != nil {
				return err
			}
			switch {
			case srcExists && dstExists && src != dst:
				return fmt.Errorf("both %s and %s exist at the destination: drop one, Sluice renames the first to the second", src, dst)
			case srcExists:
				for _, r := range renames {
					if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tableName(src), ident(r[0]), ident(r[1]))); err != nil {
						return err
					}
				}
				cur := src
				if dst.Name != src.Name {
					if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", tableName(cur), ident(dst.Name))); err != nil {
						return err
					}
					cur.Name = dst.Name
				}
				if dst.Schema != src.Schema {
					if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s; ALTER TABLE %s SET SCHEMA %s", ident(dst.Schema), tableName(cur), ident(dst.Schema))); err != nil {
						return err
					}
				}
			}
			for _, table := range []string{"apply_offsets", "copy_tables", "copy_chunks"} {
				if _, err := tx.Exec(ctx, "UPDATE sluice."+table+" SET schema_name = $4, table_name = $5 WHERE task = $1 AND schema_name = $2 AND table_name = $3",
					task, src.Schema, src.Name, dst.Schema, dst.Name); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return wrapTable(src, "rename to "+dst.String(), err)
		}
	}
	s.mu.Lock()
	s.positions = map[string][]proto.Position{} // read again under the new names
	s.mu.Unlock()
	return nil
}
