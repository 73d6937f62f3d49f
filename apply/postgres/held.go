package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/proto"
)

// Held objects: what a task makes different from the source while it
// runs without replica mode (a destination user that is not a
// superuser): triggers and rules created disabled, foreign keys made
// DEFERRABLE. Each is recorded in sluice.held_objects, by its table's
// OID (tables are renamed after the load), with the action that gives it
// the source's definition back; Release runs those at cutover and when
// the task is deleted.

const heldDDL = `
CREATE TABLE IF NOT EXISTS sluice.held_objects (
	task      text NOT NULL,
	table_oid oid  NOT NULL,
	kind      text NOT NULL,
	name      text NOT NULL,
	restore   text NOT NULL,
	PRIMARY KEY (task, table_oid, kind, name)
);
`

// Kinds of held objects, as ALTER TABLE names them.
const (
	heldTrigger    = "TRIGGER"
	heldRule       = "RULE"
	heldForeignKey = "CONSTRAINT"
)

// holdSQL records a held object of table (as named now).
const holdSQL = `INSERT INTO sluice.held_objects (task, table_oid, kind, name, restore)
SELECT $1, to_regclass($2), $3, $4, $5 WHERE to_regclass($2) IS NOT NULL
ON CONFLICT (task, table_oid, kind, name) DO NOTHING`

// hold records a held object (making the record's table if schema sync
// runs before the sink made its tables).
func hold(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, task string, table proto.TableID, kind, name, restore string) error {
	if _, err := q.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS sluice;"+heldDDL); err != nil {
		return err
	}
	_, err := q.Exec(ctx, holdSQL, task, ddlTableIdent(table), kind, name, restore)
	return err
}

// Release gives the task's held objects the source's definitions back:
// triggers and rules their firing state, foreign keys NOT DEFERRABLE.
// It returns the statements it ran. Objects gone since are skipped.
//
// The task's apply may still be writing (a cutover runs beside it), and
// an ALTER TABLE of a foreign key locks both its tables: a deadlock with
// an apply transaction rolls the release back whole, and it runs again.
func (s *Sink) Release(ctx context.Context, task string) ([]string, error) {
	for attempt := 1; ; attempt++ {
		done, err := s.release(ctx, task)
		if !isCode(err, "40P01") || attempt == 5 { // deadlock_detected
			return done, err
		}
		s.logger.Info("releasing held objects met an apply transaction (deadlock); again", "task", task, "attempt", attempt)
	}
}

func (s *Sink) release(ctx context.Context, task string) ([]string, error) {
	var done []string
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT h.table_oid::regclass::text, h.kind, h.name, h.restore FROM sluice.held_objects h
				WHERE h.task = $1 AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = h.table_oid) ORDER BY 1, 2, 3`, task)
			if err != nil {
				return err
			}
			type held struct{ table, kind, name, restore string }
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (held, error) {
				var h held
				return h, r.Scan(&h.table, &h.kind, &h.name, &h.restore)
			})
			if err != nil {
				return err
			}
			for _, h := range list {
				stmt := "ALTER TABLE " + h.table + " " + h.restore + " " + h.kind + " " + quoteDDLIdent(h.name)
				if h.kind == heldForeignKey {
					stmt = "ALTER TABLE " + h.table + " ALTER CONSTRAINT " + quoteDDLIdent(h.name) + " " + h.restore
					exists, err := constraintNamed(ctx, tx, h.table, h.name)
					if err != nil {
						return err
					}
					if !exists {
						continue
					}
				}
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("give %s %s on %s the source's definition back: %w", h.kind, h.name, h.table, err)
				}
				done = append(done, stmt)
			}
			if _, err = tx.Exec(ctx, `DELETE FROM sluice.held_objects WHERE task = $1`, task); err != nil {
				return err
			}
			keys, err := restoreKeys(ctx, tx, task, nil) // deferkeys.go: a load that did not finish
			done = append(done, keys...)
			return err
		})
	})
	return done, err
}
