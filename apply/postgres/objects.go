package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/proto"
)

// The rest of a working copy at a PostgreSQL destination
// (proto.ObjectDef): routines and operators before the tables, views,
// materialized views, triggers, rules and comments after the load.
//
// The source's catalog does not order routines against types and tables
// (a function may return a table's row type, a table's default may call
// a function), so objects are created in passes: one that fails because
// something it needs is not there yet is tried again after the others,
// while a pass makes progress. Routines are created with
// check_function_bodies off, as pg_dump restores them: their bodies may
// name tables created later.

// SchemaOptions are a task's choices for schema sync at a PostgreSQL
// destination.
type SchemaOptions struct {
	// Flatten: a partitioned table is created as one plain table
	// (objects[].partitions: flatten); it is kept partitioned otherwise.
	Flatten func(proto.TableID) bool
	// Refresh is a materialized view's refresh setting
	// (objects[].refresh), by schema.
	Refresh func(schema string) string
	// NoReplicaMode: the apply cannot run in replica mode (a destination
	// user without superuser), so user triggers and rules on the synced
	// tables would fire on replicated rows and foreign keys would check
	// each write: triggers and rules are created disabled, foreign keys
	// deferrable (cutover restores the source's definitions).
	NoReplicaMode bool
	// Task names the task in sluice.held_objects (held.go).
	Task   string
	Logger *slog.Logger
	// Dialect is the server's (dialect.go; nil: PostgreSQL).
	Dialect *Dialect
}

func (o *SchemaOptions) flatten(t proto.TableID) bool {
	return o != nil && o.Flatten != nil && o.Flatten(t)
}

func (o *SchemaOptions) refresh(schema string) string {
	if o == nil || o.Refresh == nil {
		return RefreshAfterFull
	}
	return o.Refresh(schema)
}

func (o *SchemaOptions) noReplicaMode() bool { return o != nil && o.NoReplicaMode }

func (o *SchemaOptions) logger() *slog.Logger {
	if o == nil || o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// missingDependency: the statement needs an object not created yet:
// undefined_object (a type), undefined_function, undefined_table,
// invalid_schema_name, undefined_column (a view on a view not yet
// replaced).
func missingDependency(err error) bool {
	return isCode(err, "42704", "42883", "42P01", "3F000", "42703")
}

// createObjects creates the objects of one phase: those that PreData
// says are created before the tables (pre), or the others. Before the
// tables, an object missing a dependency waits for the phase after the
// load, which tries every routine again; after the load, what cannot be
// created is an error naming each object.
func createObjects(ctx context.Context, conn *pgx.Conn, objs []proto.ObjectDef, pre bool, o *SchemaOptions) error {
	var todo []*proto.ObjectDef
	for i := range objs {
		if !pre || objs[i].Kind.PreData() {
			todo = append(todo, &objs[i])
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, "SET check_function_bodies = off"); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "RESET check_function_bodies") //nolint:errcheck // the session goes back to the pool either way
	failed := map[*proto.ObjectDef]error{}
	for {
		var next []*proto.ObjectDef
		for _, obj := range todo {
			err := createObject(ctx, conn, obj, o, false)
			switch {
			case err == nil:
				delete(failed, obj)
			case missingDependency(err):
				failed[obj] = err
				next = append(next, obj)
			case obj.Kind == proto.ObjectComment && isCode(err, "42501"):
				// A comment on an object the destination user does not own
				// (a schema) is not worth stopping a sync for.
				o.logger().Warn("schema sync: comment left out", "comment", obj.Name, "err", err)
			default:
				return fmt.Errorf("create %s: %w", obj.Ident(), err)
			}
		}
		if len(next) == 0 {
			return nil
		}
		if len(next) == len(todo) {
			if pre {
				return nil // the phase after the load tries them again
			}
			var msgs []string
			for _, obj := range next {
				msgs = append(msgs, fmt.Sprintf("%s: %v", obj.Ident(), failed[obj]))
			}
			return fmt.Errorf("create objects: %d could not be created (each needs an object the task does not sync; select its schema, or leave the object's schema out): %s",
				len(next), strings.Join(msgs, "; "))
		}
		todo = next
	}
}

// execQuerier is a session or a transaction.
type execQuerier interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}

// createObject creates one object unless it is there, then runs what
// completes it. replace: a routine that is there is replaced (DDL sync:
// its definition changed).
func createObject(ctx context.Context, conn execQuerier, obj *proto.ObjectDef, o *SchemaOptions, replace bool) error {
	exists, err := objectExists(ctx, conn, obj, replace)
	if err != nil {
		return err
	}
	if !exists {
		ddl := obj.DDL
		if obj.Kind == proto.ObjectMaterializedView && o.refresh(obj.Schema) == RefreshNever {
			ddl = strings.TrimSuffix(ddl, "WITH DATA") + "WITH NO DATA"
		}
		if _, err := conn.Exec(ctx, ddl); err != nil {
			return err
		}
	}
	for _, stmt := range obj.After {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	if o.noReplicaMode() && (obj.Kind == proto.ObjectTrigger || obj.Kind == proto.ObjectRule) && obj.Table != nil {
		what := "TRIGGER"
		if obj.Kind == proto.ObjectRule {
			what = "RULE"
		}
		// Only where the task writes: a view's INSTEAD OF trigger never
		// sees a replicated row.
		var isTable bool
		if err := conn.QueryRow(ctx, `SELECT relkind IN ('r', 'p') FROM pg_catalog.pg_class WHERE oid = $1::text::regclass`,
			ddlTableIdent(*obj.Table)).Scan(&isTable); err != nil {
			return err
		}
		if isTable {
			if _, err := conn.Exec(ctx, "ALTER TABLE "+ddlTableIdent(*obj.Table)+" DISABLE "+what+" "+quoteDDLIdent(obj.Name)); err != nil {
				return err
			}
			if err := hold(ctx, conn, o.Task, *obj.Table, what, obj.Name, proto.FiringAction(obj.Enabled)); err != nil {
				return err
			}
		}
	}
	return nil
}

// objectExists checks first for the kinds whose DDL cannot be run again
// (and routines, unless replace).
func objectExists(ctx context.Context, conn execQuerier, obj *proto.ObjectDef, replace bool) (bool, error) {
	var sql string
	var args []any
	switch obj.Kind {
	case proto.ObjectType:
		sql, args = `SELECT to_regtype($1) IS NOT NULL`, []any{ddlTableIdent(proto.TableID{Schema: obj.Schema, Name: obj.Name})}
	case proto.ObjectFunction, proto.ObjectProcedure, proto.ObjectAggregate:
		if replace {
			return false, nil
		}
		// Replacing a routine that exists would be harmless but slow for
		// thousands of them, and the phase after the load tries every
		// routine again.
		sql, args = `SELECT to_regprocedure($1) IS NOT NULL`, []any{obj.Signature}
	case proto.ObjectOperator:
		// A shell made by another operator's COMMUTATOR is filled in by
		// CREATE OPERATOR.
		sql, args = `SELECT coalesce((SELECT oprcode <> 0 FROM pg_catalog.pg_operator WHERE oid = to_regoperator($1)), false)`, []any{obj.Signature}
	case proto.ObjectTrigger:
		if strings.HasPrefix(obj.DDL, "CREATE OR REPLACE") {
			return false, nil
		}
		sql, args = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2)`,
			[]any{ddlTableIdent(*obj.Table), obj.Name}
	default:
		return false, nil
	}
	var exists bool
	err := conn.QueryRow(ctx, sql, args...).Scan(&exists)
	return exists, err
}

// Materialized view refresh settings (objects[].refresh).
const (
	// RefreshAfterFull: populated once, after the full load (default).
	RefreshAfterFull = "after_full"
	// RefreshNever: created empty; the user refreshes it.
	RefreshNever = "never"
	// RefreshInterval: populated after the load, and refreshed every
	// refresh_interval during incremental sync.
	RefreshInterval = "interval"
)
