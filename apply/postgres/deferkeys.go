package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// Keys built after the load. A bulk load that updates a table's primary
// key and unique indexes row by row spends most of its time there; the
// same indexes built once over the loaded table (a sort, shared with
// parallel workers) cost a fraction, and concurrent chunk loads no
// longer meet in one B-tree. So BeginTable, when it empties a table for a
// load, drops the table's primary key and unique constraints and records
// them in sluice.deferred_keys, in its transaction; FinishTable adds them
// back in its own, before it stores the table's position. The apply
// starts after FinishTable (DESIGN invariant 4), so no change reaches a
// table without its key, and a chunk's rows land once without one (the
// chunk's record commits with them). A task deleted in the middle of a
// load gives them back too (Release).
//
// Only keys that nothing else leans on are dropped: a plain table (not
// partitioned, no partition, no inheritance) that the sink's user owns,
// with no foreign key referring to it, no replica identity on an index,
// and no comment on the constraint.

const deferredKeysDDL = `
CREATE TABLE IF NOT EXISTS sluice.deferred_keys (
	task       text NOT NULL,
	table_oid  oid  NOT NULL,
	name       text NOT NULL,
	definition text NOT NULL,
	PRIMARY KEY (task, table_oid, name)
);
`

// deferrableKeysSQL lists the keys of table $1 that a load may build
// after it.
const deferrableKeysSQL = `
SELECT c.conname::text, pg_catalog.pg_get_constraintdef(c.oid)
FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
WHERE c.conrelid = $1::text::regclass AND c.contype IN ('p', 'u')
  AND r.relkind = 'r' AND NOT r.relispartition AND r.relreplident <> 'i'
  AND pg_catalog.pg_has_role(r.relowner, 'USAGE')
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f WHERE f.confrelid = r.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = r.oid OR i.inhrelid = r.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_description d WHERE d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_constraint'::regclass)
ORDER BY c.contype, c.conname`

// deferKeys drops table t's keys for its load and records them (BeginTable,
// after the table is emptied).
func deferKeys(ctx context.Context, tx pgx.Tx, task string, t proto.TableID) error {
	rows, err := tx.Query(ctx, deferrableKeysSQL, ddlTableIdent(t))
	if err != nil {
		return err
	}
	type key struct{ name, def string }
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
		var k key
		return k, r.Scan(&k.name, &k.def)
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := tx.Exec(ctx, `INSERT INTO sluice.deferred_keys (task, table_oid, name, definition)
			VALUES ($1, $2::text::regclass, $3, $4) ON CONFLICT (task, table_oid, name) DO NOTHING`,
			task, ddlTableIdent(t), k.name, k.def); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+ddlTableIdent(t)+" DROP CONSTRAINT "+quoteDDLIdent(k.name)); err != nil {
			return fmt.Errorf("drop %s for the load (built again after it): %w", k.name, err)
		}
	}
	return nil
}

// restoreKeys adds back the keys deferKeys took from the task's tables:
// the table's (FinishTable), or every table's when table is nil
// (Release). It returns the statements it ran.
func restoreKeys(ctx context.Context, tx pgx.Tx, task string, table *proto.TableID) ([]string, error) {
	query := `SELECT d.table_oid::regclass::text, d.name, d.definition FROM sluice.deferred_keys d
		WHERE d.task = $1 AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.table_oid)`
	args := []any{task}
	if table != nil {
		query += ` AND d.table_oid = $2::text::regclass`
		args = append(args, ddlTableIdent(*table))
	}
	rows, err := tx.Query(ctx, query+" ORDER BY 1, 2", args...)
	if err != nil {
		return nil, err
	}
	type key struct{ table, name, def string }
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
		var k key
		return k, r.Scan(&k.table, &k.name, &k.def)
	})
	if err != nil {
		return nil, err
	}
	var done []string
	for _, k := range keys {
		exists, err := constraintNamed(ctx, tx, k.table, k.name)
		if err != nil {
			return nil, err
		}
		if exists {
			continue
		}
		stmt := "ALTER TABLE " + k.table + " ADD CONSTRAINT " + quoteDDLIdent(k.name) + " " + k.def
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("build %s of %s after the load: %w", k.name, k.table, err)
		}
		done = append(done, stmt)
	}
	if table != nil {
		_, err = tx.Exec(ctx, `DELETE FROM sluice.deferred_keys WHERE task = $1 AND table_oid = $2::text::regclass`, task, ddlTableIdent(*table))
	} else {
		_, err = tx.Exec(ctx, `DELETE FROM sluice.deferred_keys WHERE task = $1`, task)
	}
	return done, err
}
