package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// DDL sync of the objects beside tables (proto.ObjectEvent): a view,
// routine, operator, type, trigger, rule or comment created, replaced,
// renamed or dropped at the source. Every apply group reaches each event
// in its stream; it records that in sluice.object_barrier, and the event
// is applied, once, when all groups have: everything before it is then
// at the destination (a view finds the column added before it), and
// nothing after it (a column type changed after a view was dropped finds
// the view gone). Row -1 of a task is the last event applied: a group
// that comes to an event at or below it goes on at once.

const objectBarrierDDL = `
CREATE TABLE IF NOT EXISTS sluice.object_barrier (
	task text   NOT NULL,
	grp  int    NOT NULL,
	lsn  pg_lsn NOT NULL,
	idx  bigint NOT NULL,
	PRIMARY KEY (task, grp)
);
`

// appliedGroup is object_barrier's row of the last event applied.
const appliedGroup = -1

// objectPoll is how often a group waiting at an event looks again.
const objectPoll = 50 * time.Millisecond

const objectArriveSQL = `INSERT INTO sluice.object_barrier AS b (task, grp, lsn, idx) VALUES ($1, $2, $3::pg_lsn, $4)
ON CONFLICT (task, grp) DO UPDATE SET lsn = EXCLUDED.lsn, idx = EXCLUDED.idx
WHERE (EXCLUDED.lsn, EXCLUDED.idx) > (b.lsn, b.idx)`

// ApplyObject applies ev once every one of the task's groups has reached
// it, and returns in each group after that.
func (s *Sink) ApplyObject(ctx context.Context, task string, epoch uint64, group, groups int, ev *proto.ObjectEvent, ops proto.DDLOpSet) error {
	if s.dialect.isADBPG() {
		return nil // a warehouse copy takes tables only (adbpgSchema)
	}
	selected := false
	for _, op := range ev.Operations() {
		selected = selected || ops.Has(op)
	}
	if !selected {
		return nil
	}
	lsn := ev.Pos.LSN.String()
	if _, err := s.pool.Exec(ctx, objectArriveSQL, task, group, lsn, int64(ev.Pos.Idx)); err != nil {
		return fmt.Errorf("record the group at the change: %w", err)
	}
	waitingSince := time.Now()
	for {
		done, err := s.applyObjectOnce(ctx, task, groups, ev, ops)
		if err != nil || done {
			return err
		}
		if time.Since(waitingSince) > time.Minute {
			s.logger.Warn("DDL of an object waits for other apply groups to reach it", "task", task, "group", group, "object", ev.What(), "pos", ev.Pos.String())
			waitingSince = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(objectPoll):
		}
	}
}

// applyObjectOnce applies the event if it is not applied yet and every
// group has reached it; done reports that it is applied.
func (s *Sink) applyObjectOnce(ctx context.Context, task string, groups int, ev *proto.ObjectEvent, ops proto.DDLOpSet) (done bool, err error) {
	tx, end, err := s.beginDDL(ctx, ev.Pos.LSN)
	if err != nil {
		return false, err
	}
	defer end()
	lsn, idx := ev.Pos.LSN.String(), int64(ev.Pos.Idx)
	// One group at a time decides (and applies).
	if _, err := tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('sluice.object_barrier'), pg_catalog.hashtext($1))`, task); err != nil {
		return false, err
	}
	var applied bool
	var reached int
	err = tx.QueryRow(ctx, `SELECT
		coalesce(bool_or(grp = $2 AND (lsn, idx) >= ($3::pg_lsn, $4)), false),
		count(*) FILTER (WHERE grp >= 0 AND grp < $5 AND (lsn, idx) >= ($3::pg_lsn, $4))
		FROM sluice.object_barrier WHERE task = $1`, task, appliedGroup, lsn, idx, groups).Scan(&applied, &reached)
	if err != nil {
		return false, err
	}
	if applied {
		return true, nil
	}
	if reached < groups {
		return false, nil
	}
	stmts, err := s.applyObjectEvent(ctx, tx, task, ev, ops)
	if err != nil {
		return false, fmt.Errorf("%s: %w", ev.What(), err)
	}
	if _, err := tx.Exec(ctx, objectArriveSQL, task, appliedGroup, lsn, idx); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	for _, stmt := range stmts {
		s.logger.Info("applied DDL", "task", task, "object", ev.What(), "tag", ev.Tag, "pos", ev.Pos.String(), "statement", firstLine(stmt))
	}
	return true, nil
}

// applyObjectEvent runs the event's statements in tx: the drop, or the
// rename and then the object's definition (CREATE OR REPLACE, or created
// when missing), as schema sync creates it.
func (s *Sink) applyObjectEvent(ctx context.Context, tx pgx.Tx, task string, ev *proto.ObjectEvent, ops proto.DDLOpSet) ([]string, error) {
	var done []string
	if _, err := tx.Exec(ctx, "SET LOCAL check_function_bodies = off"); err != nil {
		return nil, err
	}
	if ev.Dropped != nil {
		if !ops.Has(proto.DDLDropObject) {
			return nil, nil
		}
		stmt, ok := dropObjectSQL(ev.Dropped)
		if !ok {
			return nil, nil
		}
		// A trigger or rule whose table is gone at the destination went
		// with it.
		if err := s.tolerant(ctx, tx, stmt, "42P01", "3F000"); err != nil {
			return nil, err
		}
		return []string{stmt}, nil
	}
	obj := ev.Object
	if ev.Renamed != nil {
		for _, stmt := range renameObjectSQL(ev.Renamed, obj) {
			// Not there under its old name (or there already under its
			// new one): the definition below makes it.
			if err := s.tolerant(ctx, tx, stmt, "42883", "42704", "42P01", "3F000", "42710", "42723", "42P07"); err != nil {
				return nil, err
			}
			done = append(done, stmt)
		}
	}
	if obj.Schema != "" {
		// A trigger's function may live in a schema the task does not
		// take whole.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, obj.Schema).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			stmt := "CREATE SCHEMA IF NOT EXISTS " + quoteDDLIdent(obj.Schema)
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return nil, err
			}
			done = append(done, stmt)
		}
	}
	o := s.schemaOptions()
	o.Task = task
	err := s.savepoint(ctx, tx, func(tx pgx.Tx) error { return createObject(ctx, tx, obj, o, true) })
	switch {
	case err == nil:
	case obj.Kind == proto.ObjectComment && (missingDependency(err) || isCode(err, "42501")):
		// A comment on what the task leaves out (a column it does not
		// select) or the destination user may not comment on.
		s.logger.Warn("DDL sync: comment left out", "task", task, "comment", obj.Name, "err", err)
		return done, nil
	default:
		return nil, err
	}
	return append(append(done, obj.DDL), obj.After...), nil
}

// tolerant runs stmt in a savepoint, taking the errors of codes as
// nothing to do.
func (s *Sink) tolerant(ctx context.Context, tx pgx.Tx, stmt string, codes ...string) error {
	err := s.savepoint(ctx, tx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, stmt)
		return err
	})
	if err != nil && !isCode(err, codes...) {
		return fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	return nil
}

// savepoint runs fn in a subtransaction of tx: its failure leaves tx
// usable.
func (s *Sink) savepoint(ctx context.Context, tx pgx.Tx, fn func(pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(sp); err != nil {
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	return sp.Commit(ctx)
}

func firstLine(stmt string) string {
	line, _, _ := strings.Cut(stmt, "\n")
	return line
}

// objectKeyword is the word DDL names an object's kind with, by its
// address type (pg_identify_object_as_address).
var objectKeyword = map[string]string{
	"function": "FUNCTION", "procedure": "PROCEDURE", "aggregate": "AGGREGATE", "operator": "OPERATOR",
	"view": "VIEW", "materialized view": "MATERIALIZED VIEW", "type": "TYPE", "composite type": "TYPE",
	"enum type": "TYPE", "domain": "DOMAIN", "trigger": "TRIGGER", "rule": "RULE",
}

// addressName is the object's name as DDL takes it: schema.name, with
// the argument types of a routine or operator; name ON schema.table for
// a trigger or rule.
func addressName(a *proto.ObjectAddress) (string, bool) {
	quoted := make([]string, len(a.Names))
	for i, n := range a.Names {
		quoted[i] = quoteDDLIdent(n)
	}
	switch a.Type {
	case "trigger", "rule":
		if len(a.Names) != 3 {
			return "", false
		}
		return quoted[2] + " ON " + quoted[0] + "." + quoted[1], true
	case "operator":
		if len(a.Names) != 2 || len(a.Args) != 2 {
			return "", false
		}
		args := make([]string, 2)
		for i, t := range a.Args {
			args[i] = t
			if t == "" {
				args[i] = "NONE"
			}
		}
		// An operator's name is not an identifier.
		return quoted[0] + "." + a.Names[1] + " (" + strings.Join(args, ", ") + ")", true
	}
	if len(a.Names) != 2 {
		return "", false
	}
	name := quoted[0] + "." + quoted[1]
	switch a.Type {
	case "function", "procedure":
		name += "(" + strings.Join(a.Args, ", ") + ")"
	case "aggregate":
		if len(a.Args) == 0 {
			name += "(*)"
		} else {
			name += "(" + strings.Join(a.Args, ", ") + ")"
		}
	}
	return name, true
}

// dropObjectSQL drops the object at a, if it is there.
func dropObjectSQL(a *proto.ObjectAddress) (string, bool) {
	kw, ok := objectKeyword[a.Type]
	if !ok {
		return "", false
	}
	name, ok := addressName(a)
	if !ok {
		return "", false
	}
	return "DROP " + kw + " IF EXISTS " + name, true
}

// renameObjectSQL moves the object at old to obj's name: a rename in
// its old schema, then a move to the new one.
func renameObjectSQL(old *proto.ObjectAddress, obj *proto.ObjectDef) []string {
	kw, ok := objectKeyword[old.Type]
	if !ok || old.Type == "operator" {
		return nil
	}
	from, ok := addressName(old)
	if !ok {
		return nil
	}
	if old.Type == "trigger" || old.Type == "rule" {
		if obj.Table == nil || old.Names[2] == obj.Name {
			return nil // its table was renamed: DDL sync of tables did that
		}
		return []string{"ALTER " + kw + " " + from + " RENAME TO " + quoteDDLIdent(obj.Name)}
	}
	var out []string
	if old.Names[1] != obj.Name {
		out = append(out, "ALTER "+kw+" "+from+" RENAME TO "+quoteDDLIdent(obj.Name))
		renamed := *old
		renamed.Names = []string{old.Names[0], obj.Name}
		from, _ = addressName(&renamed)
	}
	if old.Names[0] != obj.Schema {
		out = append(out, "ALTER "+kw+" "+from+" SET SCHEMA "+quoteDDLIdent(obj.Schema))
	}
	return out
}
