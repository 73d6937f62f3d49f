package capture

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// DDL sync of the objects of a working copy beside tables
// (proto.ObjectEvent): the task's event trigger hands each command's
// objects to sluice.object_change, which keeps those of the task's scope
// (what schema sync copies: routines, operators, views, materialized
// views and types of the schemas selected whole; triggers and rules of
// the task's tables; comments on all of these) and returns each as the
// command left it, read from the catalog inside the command's
// transaction: a later change cannot leak into an earlier event.
//
// sluice.object_state records, per task, the objects it syncs and their
// addresses: an object whose address changed was renamed (the event says
// from where), and a dropped object the task had is dropped at the
// destination too. A trigger created on a task table brings the function
// it calls, when the task does not have it yet.
var objectCaptureDDL = `
CREATE UNLOGGED TABLE IF NOT EXISTS sluice.object_state (
	task text NOT NULL, classid oid NOT NULL, objid oid NOT NULL, address jsonb NOT NULL,
	PRIMARY KEY (task, classid, objid));
CREATE OR REPLACE FUNCTION sluice.relation_in_scope(tsk text, scopes text[], rel oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $scope$
SELECT EXISTS (SELECT 1 FROM sluice.ddl_state s WHERE s.task = $1 AND s.relid = $3)
	OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = $3 AND c.relkind IN ('v', 'm') AND n.nspname = ANY ($2))
$scope$;
CREATE OR REPLACE FUNCTION sluice.object_in_scope(tsk text, scopes text[], cls oid, obj oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $scope$
SELECT NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = $3 AND e.objid = $4 AND e.deptype IN ('e', 'i')) AND CASE $3
	WHEN 'pg_class'::regclass::oid THEN
		sluice.relation_in_scope($1, $2, coalesce((SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = $4), $4))
	WHEN 'pg_proc'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.oid = $4 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'sluice')
		AND (n.nspname = ANY ($2) OR EXISTS (SELECT 1 FROM pg_trigger t JOIN sluice.ddl_state s ON s.relid = t.tgrelid AND s.task = $1
			WHERE t.tgfoid = p.oid)))
	WHEN 'pg_operator'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
		WHERE o.oid = $4 AND o.oprcode <> 0 AND n.nspname = ANY ($2))
	WHEN 'pg_type'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		LEFT JOIN pg_class rel ON rel.oid = t.typrelid
		WHERE t.oid = $4 AND n.nspname = ANY ($2) AND t.typtype IN ('e', 'd', 'c') AND (t.typtype <> 'c' OR rel.relkind = 'c'))
	WHEN 'pg_trigger'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_trigger t
		WHERE t.oid = $4 AND NOT t.tgisinternal AND t.tgparentid = 0 AND sluice.relation_in_scope($1, $2, t.tgrelid))
	WHEN 'pg_rewrite'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_rewrite r
		WHERE r.oid = $4 AND r.rulename <> '_RETURN' AND sluice.relation_in_scope($1, $2, r.ev_class))
	WHEN 'pg_constraint'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_constraint k WHERE k.oid = $4
		AND (sluice.relation_in_scope($1, $2, k.conrelid) OR EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE k.contypid <> 0 AND t.oid = k.contypid AND n.nspname = ANY ($2))))
	WHEN 'pg_namespace'::regclass::oid THEN EXISTS (SELECT 1 FROM pg_namespace n WHERE n.oid = $4 AND n.nspname = ANY ($2))
	ELSE false END
$scope$;
CREATE OR REPLACE FUNCTION sluice.object_def(cls oid, obj oid) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog AS $def$
SELECT CASE $1
	WHEN 'pg_proc'::regclass::oid THEN (SELECT jsonb_build_object('class', 'routine', 'kind', p.prokind, 'schema', n.nspname,
		'name', p.proname, 'signature', p.oid::regprocedure::text,
		'ddl', CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END,
		'ident', quote_ident(n.nspname) || '.' || quote_ident(p.proname), 'args', pg_get_function_arguments(p.oid),
		'body', (SELECT ` + aggregateOptionsSQL + ` FROM pg_aggregate a WHERE a.aggfnoid = p.oid))
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $2)
	WHEN 'pg_operator'::regclass::oid THEN (SELECT jsonb_build_object('class', 'operator', 'schema', n.nspname, 'name', o.oprname,
		'signature', o.oid::regoperator::text, 'ddl', ` + operatorDDLSQL + `)
		FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE o.oid = $2)
	WHEN 'pg_class'::regclass::oid THEN (SELECT jsonb_build_object('class', 'view', 'kind', c.relkind, 'schema', n.nspname,
		'name', c.relname, 'opts', coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', ''),
		'query', pg_get_viewdef(c.oid),
		'indexes', ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
			WHERE i.indrelid = c.oid ORDER BY ic.relname))
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $2 AND c.relkind IN ('v', 'm'))
	WHEN 'pg_trigger'::regclass::oid THEN (SELECT jsonb_build_object('class', 'trigger', 'schema', n.nspname, 'table', c.relname,
		'name', t.tgname, 'enabled', t.tgenabled, 'ddl', pg_get_triggerdef(t.oid), 'constraint', t.tgconstraint <> 0)
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.oid = $2)
	WHEN 'pg_rewrite'::regclass::oid THEN (SELECT jsonb_build_object('class', 'rule', 'schema', n.nspname, 'table', c.relname,
		'name', r.rulename, 'enabled', r.ev_enabled, 'ddl', pg_get_ruledef(r.oid))
		FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.oid = $2)
	WHEN 'pg_type'::regclass::oid THEN (SELECT jsonb_build_object('class', 'type', 'kind', t.typtype, 'schema', n.nspname,
		'name', t.typname,
		'labels', ARRAY(SELECT quote_literal(e.enumlabel) FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
		'attributes', ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
			|| coalesce(' COLLATE ' || nullif(` + attributeCollationSQL + `, ''), '')
			FROM pg_attribute a JOIN pg_type att ON att.oid = a.atttypid
			WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
		'base', format_type(t.typbasetype, t.typtypmod), 'collation', ` + domainCollationSQL + `,
		'default', pg_get_expr(t.typdefaultbin, 0), 'not_null', t.typnotnull,
		'checks', ARRAY(SELECT jsonb_build_object('name', k.conname, 'def', pg_get_constraintdef(k.oid), 'valid', k.convalidated)
			FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname))
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
		WHERE t.oid = $2)
	END
$def$;
CREATE OR REPLACE FUNCTION sluice.object_change(tsk text, scopes text[], cls oid, obj oid, sub int, tag text) RETURNS SETOF jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS $change$
DECLARE
	d jsonb;
	addr jsonb;
	prev jsonb;
	rel oid;
BEGIN
	IF NOT sluice.object_in_scope(tsk, scopes, cls, obj) THEN
		RETURN;
	END IF;
	IF tag = 'COMMENT' THEN
		RETURN QUERY SELECT jsonb_build_object('comment', jsonb_build_object('type', io.type, 'identity', io.identity,
			'text', coalesce(quote_literal(ds.description), 'NULL')))
			FROM pg_identify_object(cls, obj, sub) io
			LEFT JOIN pg_description ds ON ds.classoid = cls AND ds.objoid = obj AND ds.objsubid = sub;
		RETURN;
	END IF;
	IF cls = 'pg_class'::regclass THEN
		-- An index: its relation, which matters when it is a materialized
		-- view (the view comes again, with its indexes).
		SELECT i.indrelid INTO rel FROM pg_index i WHERE i.indexrelid = obj;
		IF FOUND THEN
			obj := rel;
		END IF;
		IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = obj AND c.relkind IN ('v', 'm')) THEN
			RETURN; -- a table: DDL sync of tables has it
		END IF;
	ELSIF cls IN ('pg_constraint'::regclass, 'pg_namespace'::regclass) THEN
		RETURN; -- their comments only
	ELSIF cls = 'pg_trigger'::regclass THEN
		SELECT t.tgfoid INTO rel FROM pg_trigger t WHERE t.oid = obj;
		IF NOT EXISTS (SELECT 1 FROM sluice.object_state s WHERE s.task = tsk AND s.classid = 'pg_proc'::regclass AND s.objid = rel) THEN
			RETURN QUERY SELECT * FROM sluice.object_change(tsk, scopes, 'pg_proc'::regclass, rel, 0, tag);
		END IF;
	END IF;
	d := sluice.object_def(cls, obj);
	IF d IS NULL THEN
		RETURN;
	END IF;
	SELECT jsonb_build_object('type', a.type, 'names', a.object_names, 'args', a.object_args) INTO addr
		FROM pg_identify_object_as_address(cls, obj, 0) a;
	SELECT s.address INTO prev FROM sluice.object_state s WHERE s.task = tsk AND s.classid = cls AND s.objid = obj;
	IF prev IS NOT NULL AND prev->'names' IS DISTINCT FROM addr->'names' THEN
		d := d || jsonb_build_object('renamed', prev);
	END IF;
	INSERT INTO sluice.object_state AS s (task, classid, objid, address) VALUES (tsk, cls, obj, addr)
		ON CONFLICT ON CONSTRAINT object_state_pkey DO UPDATE SET address = EXCLUDED.address;
	RETURN NEXT d;
END
$change$`

// objectStateInit records the objects of the task's scope ($1 the task,
// $2 the schemas selected whole) that exist when its DDL capture is
// installed: a later drop or rename of one of them is synced too.
const objectStateInit = `
INSERT INTO sluice.object_state (task, classid, objid, address)
SELECT $1, x.cls, x.obj, jsonb_build_object('type', a.type, 'names', a.object_names, 'args', a.object_args)
FROM (
	SELECT 'pg_proc'::regclass::oid, p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = ANY ($2::text[])
		   OR p.oid IN (SELECT t.tgfoid FROM pg_trigger t JOIN sluice.ddl_state s ON s.relid = t.tgrelid AND s.task = $1)
	UNION ALL SELECT 'pg_operator'::regclass::oid, o.oid FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
		WHERE n.nspname = ANY ($2::text[])
	UNION ALL SELECT 'pg_type'::regclass::oid, t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = ANY ($2::text[])
	UNION ALL SELECT 'pg_class'::regclass::oid, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY ($2::text[]) AND c.relkind IN ('v', 'm')
	UNION ALL SELECT 'pg_trigger'::regclass::oid, t.oid FROM pg_trigger t WHERE sluice.relation_in_scope($1, $2::text[], t.tgrelid)
	UNION ALL SELECT 'pg_rewrite'::regclass::oid, r.oid FROM pg_rewrite r WHERE sluice.relation_in_scope($1, $2::text[], r.ev_class)
) x(cls, obj)
CROSS JOIN LATERAL pg_identify_object_as_address(x.cls, x.obj, 0) a
WHERE sluice.object_in_scope($1, $2::text[], x.cls, x.obj)
ON CONFLICT (task, classid, objid) DO NOTHING`

// ddlRestoreDDL creates sluice.ddl_restore(task, scopes, publication):
// when the task's marker row is missing from sluice.ddl_state (a crash
// emptied the unlogged tables; see ddl.go), it records again the shapes
// of the publication's tables and the objects of the scope, as the
// catalog has them before the command under way, and the marker.
var ddlRestoreDDL = `
CREATE OR REPLACE FUNCTION sluice.ddl_restore(tsk text, scopes text[], pub text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $restore$
BEGIN
	IF EXISTS (SELECT 1 FROM sluice.ddl_state WHERE task = $1 AND relid = 0) THEN
		RETURN;
	END IF;
	INSERT INTO sluice.ddl_state (task, relid, shape)
		SELECT $1, pr.prrelid, sluice.table_shape(pr.prrelid)
		FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
		JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $3 AND n.nspname <> 'sluice'
		ON CONFLICT (task, relid) DO NOTHING;
	` + objectStateInit + `;
	INSERT INTO sluice.ddl_state (task, relid, shape) VALUES ($1, 0, '{}') ON CONFLICT (task, relid) DO NOTHING;
END
$restore$`

// attributeCollationSQL and domainCollationSQL: the collation of a
// composite type's attribute a (its type att) and of a domain t (its base
// type bt), when they differ from their type's default.
var (
	attributeCollationSQL = collationSQL("a.attcollation", "att.typcollation")
	domainCollationSQL    = collationSQL("t.typcollation", "bt.typcollation")
)

// loggedObject is the object column of a DDL log row: one change that
// sluice.object_change returned (or the trigger's drop branch wrote).
type loggedObject struct {
	Class      string               `json:"class"`
	Kind       string               `json:"kind"`
	Schema     string               `json:"schema"`
	Name       string               `json:"name"`
	Signature  string               `json:"signature"`
	DDL        string               `json:"ddl"`
	Ident      string               `json:"ident"`
	Args       string               `json:"args"`
	Body       string               `json:"body"`
	Opts       string               `json:"opts"`
	Query      string               `json:"query"`
	Indexes    []string             `json:"indexes"`
	Table      string               `json:"table"`
	Enabled    string               `json:"enabled"`
	Constraint bool                 `json:"constraint"`
	Labels     []string             `json:"labels"`
	Attrs      []string             `json:"attributes"`
	Base       string               `json:"base"`
	Collation  string               `json:"collation"`
	Default    string               `json:"default"`
	NotNull    bool                 `json:"not_null"`
	Checks     []domainCheck        `json:"checks"`
	Comment    *loggedComment       `json:"comment"`
	Renamed    *proto.ObjectAddress `json:"renamed"`
	Dropped    *proto.ObjectAddress `json:"dropped"`
}

type loggedComment struct {
	Type     string `json:"type"`
	Identity string `json:"identity"`
	Text     string `json:"text"`
}

// objectEvent turns a DDL log row's object column into an event; nil
// when the object is of no kind a working copy takes.
func objectEvent(raw []byte, ev *proto.ObjectEvent) (*proto.ObjectEvent, error) {
	var o loggedObject
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("DDL log row: column object: %w", err)
	}
	if o.Dropped != nil {
		ev.Dropped = o.Dropped
		return ev, nil
	}
	def, ok, err := o.def()
	if err != nil || !ok {
		return nil, err
	}
	ev.Object, ev.Renamed = &def, o.Renamed
	return ev, nil
}

// def builds the object's definition, as schema sync's reads do.
func (o *loggedObject) def() (proto.ObjectDef, bool, error) {
	if o.Comment != nil {
		d, ok := commentDef(o.Comment.Type, o.Comment.Identity, o.Comment.Text)
		return d, ok, nil
	}
	switch o.Class {
	case "routine":
		if o.Kind == "a" {
			return aggregateDef(o.Schema, o.Name, o.Signature, o.Ident, o.Args, o.Body), true, nil
		}
		return routineDef(o.Kind, o.Schema, o.Name, o.Signature, o.DDL), true, nil
	case "operator":
		return proto.ObjectDef{Kind: proto.ObjectOperator, Schema: o.Schema, Name: o.Name, Signature: o.Signature, DDL: o.DDL}, true, nil
	case "view":
		return viewDef(o.Schema, o.Name, o.Kind, o.Opts, o.Query, o.Indexes), true, nil
	case "trigger":
		return triggerDef(o.Schema, o.Table, o.Name, o.Enabled, o.DDL, o.Constraint), true, nil
	case "rule":
		return ruleDef(o.Schema, o.Table, o.Name, o.Enabled, o.DDL), true, nil
	case "type":
		return o.typeDef()
	}
	return proto.ObjectDef{}, false, fmt.Errorf("DDL log row: object of unknown class %q", o.Class)
}

// typeDef is an enum, composite or domain type. An enum that exists
// gets the labels it lacks (ADD VALUE IF NOT EXISTS, each after the one
// before it), so ALTER TYPE ... ADD VALUE reaches the destination.
func (o *loggedObject) typeDef() (proto.ObjectDef, bool, error) {
	ident := pgx.Identifier{o.Schema, o.Name}.Sanitize()
	d := proto.ObjectDef{Kind: proto.ObjectType, Schema: o.Schema, Name: o.Name}
	switch o.Kind {
	case "e":
		d.DDL = enumTypeDDL(ident, o.Labels)
		for i := 1; i < len(o.Labels); i++ {
			d.After = append(d.After, "ALTER TYPE "+ident+" ADD VALUE IF NOT EXISTS "+o.Labels[i]+" AFTER "+o.Labels[i-1])
		}
	case "c":
		d.DDL = compositeTypeDDL(ident, o.Attrs)
	case "d":
		var checks, later []string
		for _, c := range o.Checks {
			if c.Valid {
				checks = append(checks, quoteIdentName(c.Name)+" "+c.Def)
			} else {
				later = append(later, quoteIdentName(c.Name)+" "+c.Def)
			}
		}
		d.DDL = domainTypeDDL(ident, o.Base, o.Collation, o.Default, o.NotNull, checks, later)
	default:
		return d, false, nil
	}
	return d, true, nil
}

// domainCheck is a domain's CHECK constraint.
type domainCheck struct {
	Name  string `json:"name"`
	Def   string `json:"def"`
	Valid bool   `json:"valid"`
}
