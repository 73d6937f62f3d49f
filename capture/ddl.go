package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// DDL sync, the source's half. An event trigger of the task (two: one at
// the end of every DDL command, one when objects are dropped) compares each
// of the task's tables a command touched with the shape it last recorded
// for it (sluice.ddl_state) and, when it changed, inserts both shapes into
// sluice.ddl_log. The insert is part of the DDL's transaction, so it sits
// in WAL exactly between the rows written before and after the change,
// and the task's publication carries it (its own rows only, a row filter)
// to the capture, which turns it into a proto.DDLEvent. The trigger
// deletes the row again at once: the log table stays empty.
//
// A table created later in a schema the task selects whole is added to
// the publication by the trigger, inside the creating transaction, so not
// one of its rows is missed; a new table without a primary key gets
// REPLICA IDENTITY FULL there too, or its updates and deletes would fail in
// the source now that it is published; so does a new partition without
// one of a table of the task (an identity does not pass down).
//
// Creating event triggers takes a superuser in PostgreSQL 15; the
// functions run as their owner (SECURITY DEFINER), so the trigger works
// whoever runs the DDL.

// DDLLogTable is the log table the event trigger writes.
var DDLLogTable = proto.TableID{Schema: proto.ReservedSchema, Name: "ddl_log"}

// ddlObjectsDDL creates the objects every task's DDL capture shares: the
// log, the recorded definitions, and sluice.table_shape, the catalog read
// of a table's definition (tableDefSQL).
var ddlObjectsDDL = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.ddl_log (
	task text NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, tag text NOT NULL, query text,
	old_shape jsonb, new_shape jsonb, PRIMARY KEY (task, id));
CREATE TABLE IF NOT EXISTS sluice.ddl_state (
	task text NOT NULL, relid oid NOT NULL, shape jsonb NOT NULL, PRIMARY KEY (task, relid));
CREATE OR REPLACE FUNCTION sluice.table_shape(rel oid) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog AS $shape$
SELECT ` + tableDefSQL + `
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel
$shape$`

// ddlFunctionSQL is the task's trigger function. %[1]s is the task as a
// literal, %[2]s the publication, %[3]s the schemas selected whole (a
// text[] literal), %[4]s the function's name.
const ddlFunctionSQL = `CREATE OR REPLACE FUNCTION %[4]s() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $ddl$
DECLARE
	r record;
	prev jsonb;
	cur jsonb;
	obj jsonb;
BEGIN
	-- The commands this function runs itself fire event triggers too.
	IF current_setting('sluice.in_ddl', true) = 'on' THEN
		RETURN;
	END IF;
	IF TG_EVENT = 'sql_drop' THEN
		-- The dropped objects' catalog rows are gone: look at every table
		-- of the task instead (drops are rare).
		FOR r IN SELECT s.relid, s.shape FROM sluice.ddl_state s WHERE s.task = %[1]s ORDER BY s.relid LOOP
			IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
				INSERT INTO sluice.ddl_log (task, tag, query, old_shape) VALUES (%[1]s, TG_TAG, current_query(), r.shape);
				DELETE FROM sluice.ddl_state WHERE task = %[1]s AND relid = r.relid;
			ELSE
				cur := sluice.table_shape(r.relid);
				IF cur IS DISTINCT FROM r.shape THEN
					INSERT INTO sluice.ddl_log (task, tag, query, old_shape, new_shape) VALUES (%[1]s, TG_TAG, current_query(), r.shape, cur);
					UPDATE sluice.ddl_state s SET shape = cur WHERE s.task = %[1]s AND s.relid = r.relid;
				END IF;
			END IF;
		END LOOP;
		-- The task's other objects dropped (objectddl.go), by the command
		-- or with what it dropped; not those that go with a table
		-- (its triggers and rules: the table's drop takes them along).
		FOR r IN SELECT o.classid, o.objid, s.address FROM pg_event_trigger_dropped_objects() o
			JOIN sluice.object_state s ON s.task = %[1]s AND s.classid = o.classid AND s.objid = o.objid
			WHERE o.original OR o.normal
		LOOP
			INSERT INTO sluice.ddl_log (task, tag, query, object) VALUES (%[1]s, TG_TAG, current_query(), jsonb_build_object('dropped', r.address));
		END LOOP;
		DELETE FROM sluice.object_state s USING pg_event_trigger_dropped_objects() o
			WHERE s.task = %[1]s AND s.classid = o.classid AND s.objid = o.objid;
		DELETE FROM sluice.ddl_log WHERE task = %[1]s;
		RETURN;
	END IF;
	-- A new partition of one of the task's tables, without a primary key,
	-- needs REPLICA IDENTITY FULL of its own (its root's does not pass
	-- down), or PostgreSQL refuses the updates and deletes of its rows.
	-- The creating transaction holds its lock already: no wait.
	FOR r IN
		SELECT c.oid AS rel FROM pg_event_trigger_ddl_commands() e JOIN pg_class c ON c.oid = e.objid
		WHERE e.command_tag = 'CREATE TABLE' AND e.object_type = 'table' AND c.relispartition AND c.relreplident = 'd'
			AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
			AND EXISTS (SELECT 1 FROM sluice.ddl_state s WHERE s.task = %[1]s AND s.relid = pg_partition_root(c.oid))
	LOOP
		PERFORM set_config('sluice.in_ddl', 'on', true);
		EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r.rel::regclass);
		PERFORM set_config('sluice.in_ddl', 'off', true);
	END LOOP;
	FOR r IN
		SELECT DISTINCT ON (c.oid) c.oid AS rel, c.relkind, c.relpersistence, c.relispartition, n.nspname, e.command_tag
		FROM pg_event_trigger_ddl_commands() e
		CROSS JOIN LATERAL (SELECT CASE
			WHEN e.object_type IN ('table', 'table column') THEN e.objid
			WHEN e.object_type = 'index' THEN (SELECT indrelid FROM pg_index WHERE indexrelid = e.objid)
			WHEN e.object_type = 'table constraint' THEN (SELECT conrelid FROM pg_constraint WHERE oid = e.objid) END AS rel) t
		-- A partition's changes are its root's (whose shape lists the
		-- partitions): a partition created, attached or detached.
		JOIN pg_class c ON c.oid = coalesce(pg_partition_root(t.rel), t.rel)
		JOIN pg_namespace n ON n.oid = c.relnamespace
		ORDER BY c.oid
	LOOP
		SELECT s.shape INTO prev FROM sluice.ddl_state s WHERE s.task = %[1]s AND s.relid = r.rel;
		IF NOT FOUND THEN
			-- Not one of the task's tables: a new one in a schema it takes whole?
			CONTINUE WHEN r.command_tag <> 'CREATE TABLE' OR NOT (r.nspname = ANY (%[3]s::text[]))
				OR r.relkind NOT IN ('r', 'p') OR r.relpersistence <> 'p' OR r.relispartition;
			PERFORM set_config('sluice.in_ddl', 'on', true);
			EXECUTE format('ALTER PUBLICATION %%I ADD TABLE %%s', %[2]s, r.rel::regclass);
			IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = r.rel AND indisprimary) THEN
				EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r.rel::regclass);
			END IF;
			PERFORM set_config('sluice.in_ddl', 'off', true);
			prev := NULL;
		END IF;
		cur := sluice.table_shape(r.rel);
		CONTINUE WHEN prev IS NOT NULL AND cur = prev;
		INSERT INTO sluice.ddl_log (task, tag, query, old_shape, new_shape) VALUES (%[1]s, r.command_tag, current_query(), prev, cur);
		INSERT INTO sluice.ddl_state (task, relid, shape) VALUES (%[1]s, r.rel, cur)
			ON CONFLICT (task, relid) DO UPDATE SET shape = EXCLUDED.shape;
	END LOOP;
	-- The task's other objects (objectddl.go), after its tables: a new
	-- trigger's table is the task's by now.
	FOR r IN
		-- Once each (CREATE OR REPLACE VIEW reports its view twice), in
		-- the command's order.
		SELECT e.classid, e.objid, e.objsubid, e.command_tag FROM pg_event_trigger_ddl_commands() WITH ORDINALITY e
		WHERE e.command_tag <> 'REFRESH MATERIALIZED VIEW' AND e.classid IN ('pg_proc'::regclass, 'pg_operator'::regclass,
			'pg_class'::regclass, 'pg_trigger'::regclass, 'pg_rewrite'::regclass, 'pg_type'::regclass,
			'pg_constraint'::regclass, 'pg_namespace'::regclass)
		GROUP BY e.classid, e.objid, e.objsubid, e.command_tag ORDER BY min(e.ordinality)
	LOOP
		FOR obj IN SELECT * FROM sluice.object_change(%[1]s, %[3]s::text[], r.classid, r.objid, r.objsubid, r.command_tag) LOOP
			INSERT INTO sluice.ddl_log (task, tag, query, object) VALUES (%[1]s, r.command_tag, current_query(), obj);
		END LOOP;
	END LOOP;
	DELETE FROM sluice.ddl_log WHERE task = %[1]s;
END
$ddl$`

func ddlFunction(task string) string {
	return "sluice." + pgx.Identifier{proto.SlotName(task) + "_ddl"}.Sanitize()
}

func ddlTriggers(task string) (end, drop string) {
	return proto.SlotName(task) + "_ddl", proto.SlotName(task) + "_ddl_drop"
}

// InstallDDLCapture creates the task's DDL capture in the source: the log
// and state tables, the shape function, the task's trigger function and
// its two event triggers, and a recorded shape for each of the task's
// tables that has none (a table's shape, once recorded, is kept current by
// the trigger itself). wholeSchemas are the schemas the task selects
// whole: tables created there later join the task. Idempotent.
func InstallDDLCapture(ctx context.Context, conn *pgx.Conn, task string, tables []proto.TableID, wholeSchemas []string) error {
	if err := ensureDDLLog(ctx, conn); err != nil {
		return err
	}
	fn := ddlFunction(task)
	schemas := "{" + strings.Join(quoteArrayItems(wholeSchemas), ",") + "}"
	stmt := fmt.Sprintf(ddlFunctionSQL, quoteLiteral(task), quoteLiteral(proto.SlotName(task)), quoteLiteral(schemas), fn)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create DDL trigger function %s: %w", fn, err)
	}
	end, drop := ddlTriggers(task)
	for _, tr := range []struct{ name, event string }{{end, "ddl_command_end"}, {drop, "sql_drop"}} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1)`, tr.name).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE EVENT TRIGGER %s ON %s EXECUTE FUNCTION %s()",
				pgx.Identifier{tr.name}.Sanitize(), tr.event, fn)); err != nil {
				return fmt.Errorf("create event trigger %s (DDL sync needs a superuser in PostgreSQL 15; or set sync.ddl: false): %w", tr.name, err)
			}
		}
		// ALWAYS, not the default (ORIGIN): an event trigger in ORIGIN mode
		// does not fire in sessions with session_replication_role =
		// replica, which is how Sluice's own apply (and PostgreSQL's
		// subscriptions) write. In a cascade A->B->C the schema changes
		// task A->B applies at B must reach task B->C's log like any
		// other DDL at B. Run for existing triggers too, which an older
		// Sluice created in ORIGIN mode.
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER EVENT TRIGGER %s ENABLE ALWAYS", pgx.Identifier{tr.name}.Sanitize())); err != nil {
			return fmt.Errorf("enable event trigger %s in replica sessions: %w", tr.name, err)
		}
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	_, err := conn.Exec(ctx, `INSERT INTO sluice.ddl_state (task, relid, shape)
		SELECT $1, c.oid, sluice.table_shape(c.oid) FROM unnest($2::text[]) AS u(name)
		JOIN pg_class c ON c.oid = to_regclass(u.name)
		ON CONFLICT (task, relid) DO NOTHING`, task, names)
	if err != nil {
		return fmt.Errorf("record the definitions of the task's tables: %w", err)
	}
	// Definitions recorded by an older Sluice, in the older form, are
	// read again: the trigger keeps them current, so reading the catalog
	// now gives the same table, and the next change then compares like
	// with like.
	_, err = conn.Exec(ctx, `UPDATE sluice.ddl_state SET shape = sluice.table_shape(relid)
		WHERE task = $1 AND NOT shape ? 'id' AND EXISTS (SELECT 1 FROM pg_class WHERE oid = relid)`, task)
	if err != nil {
		return fmt.Errorf("record the definitions of the task's tables: %w", err)
	}
	if _, err := conn.Exec(ctx, objectStateInit, task, wholeSchemas); err != nil {
		return fmt.Errorf("record the task's views, routines, types, triggers and rules: %w", err)
	}
	return nil
}

func ensureDDLLog(ctx context.Context, conn *pgx.Conn) error {
	// Two tasks creating the shared objects at once would collide on the
	// catalog; a transaction-level advisory lock takes turns.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sluice.ddl_log'))`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, ddlObjectsDDL+";"+objectCaptureDDL); err != nil {
		return fmt.Errorf("create %s: %w", DDLLogTable, err)
	}
	return tx.Commit(ctx)
}

// dropDDLCapture removes the task's DDL capture; the shared tables and
// function go with the last task that has one.
func dropDDLCapture(ctx context.Context, conn *pgx.Conn, task string) error {
	end, drop := ddlTriggers(task)
	for _, tr := range []string{end, drop} {
		if _, err := conn.Exec(ctx, "DROP EVENT TRIGGER IF EXISTS "+pgx.Identifier{tr}.Sanitize()); err != nil {
			return fmt.Errorf("drop event trigger %s: %w", tr, err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP FUNCTION IF EXISTS "+ddlFunction(task)+"()"); err != nil {
		return fmt.Errorf("drop function %s: %w", ddlFunction(task), err)
	}
	var hasState bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('sluice.ddl_state') IS NOT NULL`).Scan(&hasState); err != nil || !hasState {
		return err
	}
	if _, err := conn.Exec(ctx, `DELETE FROM sluice.ddl_state WHERE task = $1`, task); err != nil {
		return fmt.Errorf("delete recorded shapes: %w", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM sluice.ddl_log WHERE task = $1`, task); err != nil {
		return fmt.Errorf("delete DDL log rows: %w", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM sluice.object_state WHERE task = $1`, task); err != nil {
		return fmt.Errorf("delete recorded objects: %w", err)
	}
	var others bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname LIKE 'sluice\_%\_ddl')`).Scan(&others); err != nil {
		return err
	}
	if others {
		return nil
	}
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS sluice.ddl_log, sluice.ddl_state, sluice.object_state;
		DROP FUNCTION IF EXISTS sluice.table_shape(oid);
		DROP FUNCTION IF EXISTS sluice.object_change(text, text[], oid, oid, int, text);
		DROP FUNCTION IF EXISTS sluice.object_def(oid, oid);
		DROP FUNCTION IF EXISTS sluice.object_in_scope(text, text[], oid, oid);
		DROP FUNCTION IF EXISTS sluice.relation_in_scope(text, text[], oid)`); err != nil {
		return fmt.Errorf("drop DDL log: %w", err)
	}
	return nil
}

func quoteArrayItems(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return out
}

// ddlEvent turns an insert into the log table into an event: the values
// are the log row's columns, by name. A row about another object than a
// table gives an object event instead (both nil: an object no working
// copy takes).
func ddlEvent(cols []proto.Column, t proto.Tuple, pos proto.Position) (*proto.DDLEvent, *proto.ObjectEvent, error) {
	if t.Len() != len(cols) {
		return nil, nil, fmt.Errorf("ddl log row has %d columns, its relation %d", t.Len(), len(cols))
	}
	ev := &proto.DDLEvent{Pos: pos}
	var object []byte
	for i, c := range cols {
		if t.Kinds[i] != proto.KindText {
			continue
		}
		v := t.Values[i]
		var err error
		switch c.Name {
		case "tag":
			ev.Tag = string(v)
		case "query":
			ev.Query = string(v)
		case "object":
			object = v
		case "old_shape":
			ev.Old = &proto.TableDef{}
			err = json.Unmarshal(v, ev.Old)
		case "new_shape":
			ev.New = &proto.TableDef{}
			err = json.Unmarshal(v, ev.New)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("DDL log row: column %s: %w", c.Name, err)
		}
	}
	if object != nil {
		obj, err := objectEvent(object, &proto.ObjectEvent{Pos: pos, Tag: ev.Tag, Query: ev.Query})
		return nil, obj, err
	}
	if ev.Old == nil && ev.New == nil {
		return nil, nil, fmt.Errorf("DDL log row without a shape")
	}
	return ev, nil, nil
}

// PresentTables returns those of tables that exist in the source. With
// DDL sync a task's tables are the ones recorded as it ran (renamed,
// created, dropped by DDL), no longer what the spec's selection finds.
func PresentTables(ctx context.Context, q Querier, tables []proto.TableID) ([]proto.TableID, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	rows, err := q.Query(ctx, `SELECT u.i FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i) WHERE to_regclass(u.name) IS NOT NULL ORDER BY u.i`, names)
	if err != nil {
		return nil, fmt.Errorf("look up the task's tables: %w", err)
	}
	defer rows.Close()
	var out []proto.TableID
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return nil, err
		}
		out = append(out, tables[i-1])
	}
	return out, rows.Err()
}

// DDLTables are the tables whose shapes the task's DDL trigger keeps,
// under their current names: the task's tables as the source knows them,
// including ones created since and not yet seen by the capture.
func DDLTables(ctx context.Context, q Querier, task string) ([]proto.TableID, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('sluice.ddl_state') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname FROM sluice.ddl_state s
		JOIN pg_class c ON c.oid = s.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE s.task = $1 ORDER BY 1, 2`, task)
	if err != nil {
		return nil, fmt.Errorf("read the tables of the task's DDL capture: %w", err)
	}
	defer rows.Close()
	var out []proto.TableID
	for rows.Next() {
		var t proto.TableID
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
