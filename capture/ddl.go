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
// for it (sluice.ddl_state) and, when it changed, writes both shapes as a
// transactional logical decoding message (prefix DDLPrefix, messages.go).
// The message is part of the DDL's transaction, so it sits in WAL exactly
// between the rows written before and after the change, and reaches the
// task's capture (pgoutput's messages option; no publication needed),
// which turns it into a proto.DDLEvent. Older versions inserted it into a
// table, sluice.ddl_log, which a user's FOR ALL TABLES publication
// published too; such rows still in the slot are decoded as before.
//
// The recorded shapes (sluice.ddl_state) and objects (sluice.object_state)
// are UNLOGGED tables, which no publication carries. A crash of the source
// empties them: a third event trigger, at the start of every DDL command,
// reads them again from the catalog (the task's tables: its publication),
// before the command changes anything, when the task's marker row
// (relid 0) is gone. What a change made without the triggers (disabled,
// or in single-user mode) left unrecorded is then lost; it would be
// reported with the next change otherwise.
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

// DDLLogTable is the log table the event trigger of older versions wrote.
var DDLLogTable = proto.TableID{Schema: proto.ReservedSchema, Name: "ddl_log"}

// ddlObjectsDDL creates the objects every task's DDL capture shares: the
// recorded definitions (unlogged, see above), sluice.table_shape, the
// catalog read of a table's definition (tableDefSQL), and
// sluice.ddl_message, which writes a DDL log message.
var ddlObjectsDDL = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE UNLOGGED TABLE IF NOT EXISTS sluice.ddl_state (
	task text NOT NULL, relid oid NOT NULL, shape jsonb NOT NULL, PRIMARY KEY (task, relid));
CREATE OR REPLACE FUNCTION sluice.ddl_message(tsk text, tag text, old_shape jsonb, new_shape jsonb, object jsonb) RETURNS void
LANGUAGE sql SET search_path = pg_catalog AS $msg$
SELECT FROM pg_logical_emit_message(true, '` + DDLPrefix + `', jsonb_build_object('task', tsk, 'tag', tag, 'query', current_query(),
	'old_shape', old_shape, 'new_shape', new_shape, 'object', object)::text)
$msg$;
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
	IF TG_EVENT = 'ddl_command_start' THEN
		-- Before the command changes the catalog: the recorded shapes,
		-- lost if the source crashed (unlogged tables), are read again.
		PERFORM sluice.ddl_restore(%[1]s, %[3]s::text[], %[2]s);
		RETURN;
	END IF;
	IF TG_EVENT = 'sql_drop' THEN
		-- The dropped objects' catalog rows are gone: look at every table
		-- of the task instead (drops are rare).
		FOR r IN SELECT s.relid, s.shape FROM sluice.ddl_state s WHERE s.task = %[1]s AND s.relid <> 0 ORDER BY s.relid LOOP
			IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
				PERFORM sluice.ddl_message(%[1]s, TG_TAG, r.shape, NULL, NULL);
				DELETE FROM sluice.ddl_state WHERE task = %[1]s AND relid = r.relid;
			ELSE
				cur := sluice.table_shape(r.relid);
				IF cur IS DISTINCT FROM r.shape THEN
					PERFORM sluice.ddl_message(%[1]s, TG_TAG, r.shape, cur, NULL);
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
			PERFORM sluice.ddl_message(%[1]s, TG_TAG, NULL, NULL, jsonb_build_object('dropped', r.address));
		END LOOP;
		DELETE FROM sluice.object_state s USING pg_event_trigger_dropped_objects() o
			WHERE s.task = %[1]s AND s.classid = o.classid AND s.objid = o.objid;
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
		PERFORM sluice.ddl_message(%[1]s, r.command_tag, prev, cur, NULL);
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
			PERFORM sluice.ddl_message(%[1]s, r.command_tag, NULL, NULL, obj);
		END LOOP;
	END LOOP;
END
$ddl$`

func ddlFunction(task string) string {
	return "sluice." + pgx.Identifier{proto.SlotName(task) + "_ddl"}.Sanitize()
}

func ddlTriggers(task string) (end, drop, start string) {
	return proto.SlotName(task) + "_ddl", proto.SlotName(task) + "_ddl_drop", proto.SlotName(task) + "_ddl_start"
}

// InstallDDLCapture creates the task's DDL capture in the source: the log
// and state tables, the shape function, the task's trigger function and
// its two event triggers, and a recorded shape for each of the task's
// tables that has none (a table's shape, once recorded, is kept current by
// the trigger itself). wholeSchemas are the schemas the task selects
// whole: tables created there later join the task. Idempotent.
func InstallDDLCapture(ctx context.Context, conn *pgx.Conn, task string, tables []proto.TableID, wholeSchemas []string) error {
	if err := ensureDDLShared(ctx, conn); err != nil {
		return err
	}
	fn := ddlFunction(task)
	schemas := "{" + strings.Join(quoteArrayItems(wholeSchemas), ",") + "}"
	stmt := fmt.Sprintf(ddlFunctionSQL, quoteLiteral(task), quoteLiteral(proto.SlotName(task)), quoteLiteral(schemas), fn)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create DDL trigger function %s: %w", fn, err)
	}
	// The function writes messages now: an older one's log table leaves
	// the publication (PrepareSource kept it while that one could still
	// write it).
	if _, err := conn.Exec(ctx, `DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
			WHERE p.pubname = `+quoteLiteral(proto.SlotName(task))+` AND pr.prrelid = to_regclass('sluice.ddl_log')) THEN
			EXECUTE format('ALTER PUBLICATION %I DROP TABLE sluice.ddl_log', `+quoteLiteral(proto.SlotName(task))+`);
		END IF; END $$`); err != nil {
		return fmt.Errorf("drop %s from publication %s: %w", DDLLogTable, proto.SlotName(task), err)
	}
	end, drop, start := ddlTriggers(task)
	for _, tr := range []struct{ name, event string }{{end, "ddl_command_end"}, {drop, "sql_drop"}, {start, "ddl_command_start"}} {
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
	// The marker row: its absence tells the trigger a crash emptied the
	// recorded state.
	if _, err := conn.Exec(ctx, `SELECT sluice.ddl_restore($1, $2, $3)`, task, wholeSchemas, proto.SlotName(task)); err != nil {
		return fmt.Errorf("record the task's DDL capture marker: %w", err)
	}
	if err := dropUnusedLegacyTables(ctx, conn); err != nil {
		return err
	}
	return nil
}

func ensureDDLShared(ctx context.Context, conn *pgx.Conn) error {
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
	if _, err := tx.Exec(ctx, ddlObjectsDDL+";"+objectCaptureDDL+";"+ddlRestoreDDL); err != nil {
		return fmt.Errorf("create the DDL capture's shared objects in schema sluice: %w", err)
	}
	// Older versions made the recorded state logged tables, which a FOR
	// ALL TABLES publication carries.
	if _, err := tx.Exec(ctx, `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'sluice' AND c.relname IN ('ddl_state', 'object_state') AND c.relpersistence = 'p'
		LOOP
			EXECUTE format('ALTER TABLE %s SET UNLOGGED', r.rel);
		END LOOP; END $$`); err != nil {
		return fmt.Errorf("make sluice.ddl_state and sluice.object_state unlogged: %w", err)
	}
	return tx.Commit(ctx)
}

// dropDDLCapture removes the task's DDL capture; the shared tables and
// function go with the last task that has one.
func dropDDLCapture(ctx context.Context, conn *pgx.Conn, task string) error {
	end, drop, start := ddlTriggers(task)
	for _, tr := range []string{end, drop, start} {
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
		DROP FUNCTION IF EXISTS sluice.ddl_restore(text, text[], text);
		DROP FUNCTION IF EXISTS sluice.ddl_message(text, text, jsonb, jsonb, jsonb);
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

// ddlLogRow reads a row of sluice.ddl_log, the DDL log of older
// versions (still decoded: the slot may hold rows written before the
// upgrade), by column name.
func ddlLogRow(cols []proto.Column, t proto.Tuple) (*ddlLogEntry, error) {
	if t.Len() != len(cols) {
		return nil, fmt.Errorf("ddl log row has %d columns, its relation %d", t.Len(), len(cols))
	}
	e := &ddlLogEntry{}
	for i, c := range cols {
		if t.Kinds[i] != proto.KindText {
			continue
		}
		v := t.Values[i]
		switch c.Name {
		case "task":
			e.Task = string(v)
		case "tag":
			e.Tag = string(v)
		case "query":
			e.Query = string(v)
		case "object":
			e.Object = append(json.RawMessage(nil), v...)
		case "old_shape":
			e.OldShape = append(json.RawMessage(nil), v...)
		case "new_shape":
			e.NewShape = append(json.RawMessage(nil), v...)
		}
	}
	return e, nil
}

// ddlEvent turns an insert into the log table into an event (see
// ddlLogEntry.event).
func ddlEvent(cols []proto.Column, t proto.Tuple, pos proto.Position) (*proto.DDLEvent, *proto.ObjectEvent, error) {
	e, err := ddlLogRow(cols, t)
	if err != nil {
		return nil, nil, err
	}
	return e.event(pos)
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
	// With the publication's tables: the recorded shapes are lost until
	// the next DDL after a crash of the source (unlogged), the trigger's
	// additions to the publication are not.
	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname FROM (
			SELECT s.relid FROM sluice.ddl_state s WHERE s.task = $1
			UNION SELECT pr.prrelid FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $2) s
		JOIN pg_class c ON c.oid = s.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname <> 'sluice' ORDER BY 1, 2`, task, proto.SlotName(task))
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
