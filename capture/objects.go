package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// The rest of a working copy (proto.ObjectDef): what a whole selected
// schema holds beside its tables (routines, aggregates, operators, views,
// materialized views, types no column uses), and what belongs to the
// selected tables (partitions, triggers, rules, comments). Objects that
// belong to an extension are the extension's: it creates them.

// notExtensionMember is a condition on an object (classid, objid) that
// no extension owns, nor another object makes as part of itself (a range
// type's constructor functions: creating the type creates them).
func notExtensionMember(class, oid string) string {
	return `NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '` + class + `'::regclass AND e.objid = ` + oid + ` AND e.deptype IN ('e', 'i'))`
}

// readPartitions reads the partitions of the selected partitioned tables,
// with their bounds and what they have of their own.
func (r *schemaReader) readPartitions(ctx context.Context) error {
	var roots []uint32
	for _, t := range r.tables {
		if t.Partitioned {
			roots = append(roots, t.OID)
		}
	}
	if len(roots) == 0 {
		return nil
	}
	// The definitions (tableDefSQL) list the partitions; here they get
	// their own keys, checks and indexes too.
	for _, oid := range roots {
		r.byOID[oid].Partitions = nil
	}
	return eachCatalogRow(ctx, r.q, `
		SELECT root.oid, `+tableDefSQL+`, pn.nspname, p.relname, pg_get_expr(c.relpartbound, c.oid),
		       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) ELSE '' END,
		       ARRAY(SELECT k.conname::text FROM pg_constraint k WHERE k.conrelid = c.oid AND k.conparentid = 0 AND k.conislocal
		             AND k.contype IN ('p', 'u', 'c', 'f', 'x')),
		       ARRAY(SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid
		             AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid))
		FROM pg_class root
		CROSS JOIN LATERAL pg_partition_tree(root.oid) pt
		JOIN pg_class c ON c.oid = pt.relid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_class p ON p.oid = pt.parentrelid
		JOIN pg_namespace pn ON pn.oid = p.relnamespace
		WHERE root.oid = ANY($1::oid[]) AND pt.level > 0
		ORDER BY root.oid, pt.level, n.nspname, c.relname`, []any{roots},
		func(rows pgx.Rows) error {
			var (
				root                        uint32
				raw                         []byte
				parentSchema, parent, bound string
				by                          string
				ownConstraints, ownIndexes  []string
			)
			if err := rows.Scan(&root, &raw, &parentSchema, &parent, &bound, &by, &ownConstraints, &ownIndexes); err != nil {
				return err
			}
			var def proto.TableDef
			if err := json.Unmarshal(raw, &def); err != nil {
				return err
			}
			part := proto.PartitionDef{ID: def.ID, Parent: proto.TableID{Schema: parentSchema, Name: parent}, Bound: bound, PartitionBy: by}
			for _, k := range def.Constraints {
				if slices.Contains(ownConstraints, k.Name) {
					part.Constraints = append(part.Constraints, k)
				}
			}
			for _, ix := range def.Indexes {
				if slices.Contains(ownIndexes, ix.Name) {
					part.Indexes = append(part.Indexes, ix)
				}
			}
			t := r.byOID[root]
			t.Partitions = append(t.Partitions, part)
			r.schemas[def.ID.Schema] = true
			return nil
		})
}

// readWholeSchemaTypes adds the types of the whole selected schemas that
// no column uses (an unused domain or enum is part of a working copy).
func (r *schemaReader) readWholeSchemaTypes(ctx context.Context) error {
	if len(r.wholeSchemas) == 0 {
		return nil
	}
	return eachCatalogRow(ctx, r.q, `
		SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		LEFT JOIN pg_class rel ON rel.oid = t.typrelid
		WHERE n.nspname = ANY($1::text[]) AND t.typtype IN ('e', 'd', 'r', 'c') AND (t.typtype <> 'c' OR rel.relkind = 'c')
		  AND `+notExtensionMember("pg_type", "t.oid"), []any{r.wholeSchemas},
		func(rows pgx.Rows) error {
			var oid uint32
			if err := rows.Scan(&oid); err != nil {
				return err
			}
			r.typeOIDs[oid] = true
			return nil
		})
}

// objectExtensionsSQL lists the extensions the objects of the whole
// schemas $1 and the triggers of the tables $2 (oids) use: a function's
// language or types, a view's functions, an operator's.
const objectExtensionsSQL = `
	SELECT DISTINCT e.extname FROM pg_depend d
	JOIN pg_depend m ON m.classid = d.refclassid AND m.objid = d.refobjid
	                AND m.refclassid = 'pg_extension'::regclass AND m.deptype = 'e'
	JOIN pg_extension e ON e.oid = m.refobjid
	WHERE (d.classid = 'pg_proc'::regclass AND d.objid IN (
	        SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1::text[])))
	   OR (d.classid = 'pg_rewrite'::regclass AND d.objid IN (
	        SELECT rw.oid FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
	        WHERE n.nspname = ANY($1::text[])))
	   OR (d.classid = 'pg_operator'::regclass AND d.objid IN (
	        SELECT o.oid FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname = ANY($1::text[])))
	   OR (d.classid = 'pg_trigger'::regclass AND d.objid IN (SELECT t.oid FROM pg_trigger t WHERE t.tgrelid = ANY($2::oid[])))
	ORDER BY 1`

// readObjects reads routines, operators, views, triggers, rules and
// comments, in the order they are created, and the extensions they use.
func (r *schemaReader) readObjects(ctx context.Context) error {
	err := eachCatalogRow(ctx, r.q, objectExtensionsSQL, []any{r.wholeSchemas, r.oids}, func(rows pgx.Rows) error {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		r.extensions[name] = true
		return nil
	})
	if err != nil {
		return err
	}
	steps := []func(context.Context) error{r.readRoutines, r.readOperators, r.readViews, r.readTriggers, r.readRules, r.readComments}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// readRoutines reads the functions, procedures and aggregates of the
// whole selected schemas, and the functions the selected tables'
// triggers call wherever they are.
func (r *schemaReader) readRoutines(ctx context.Context) error {
	var aggregates []uint32
	err := eachCatalogRow(ctx, r.q, `
		SELECT p.oid, n.nspname, p.proname, p.prokind::text, p.oid::regprocedure::text,
		       CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE '' END
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE (n.nspname = ANY($1::text[])
		       OR p.oid IN (SELECT t.tgfoid FROM pg_trigger t WHERE t.tgrelid = ANY($2::oid[]) AND NOT t.tgisinternal))
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema', $3)
		  AND `+notExtensionMember("pg_proc", "p.oid")+`
		ORDER BY n.nspname, p.proname, p.oid`, []any{r.wholeSchemas, r.oids, proto.ReservedSchema},
		func(rows pgx.Rows) error {
			var (
				oid                          uint32
				schema, name, kind, sig, ddl string
			)
			if err := rows.Scan(&oid, &schema, &name, &kind, &sig, &ddl); err != nil {
				return err
			}
			r.schemas[schema] = true
			if kind == "a" {
				aggregates = append(aggregates, oid)
				return nil
			}
			r.objects = append(r.objects, routineDef(kind, schema, name, sig, ddl))
			return nil
		})
	if err != nil || len(aggregates) == 0 {
		return err
	}
	return r.readAggregates(ctx, aggregates)
}

// aggregateOptionsSQL prints the options of CREATE AGGREGATE for the
// aggregate a (pg_aggregate) of the routine p (pg_proc).
const aggregateOptionsSQL = `concat_ws(', ',
		         'SFUNC = ' || a.aggtransfn::regproc::text,
		         'STYPE = ' || format_type(a.aggtranstype, NULL),
		         CASE WHEN a.aggtransspace <> 0 THEN 'SSPACE = ' || a.aggtransspace END,
		         CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC = ' || a.aggfinalfn::regproc::text END,
		         CASE WHEN a.aggfinalextra THEN 'FINALFUNC_EXTRA' END,
		         CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC_MODIFY = ' || CASE a.aggfinalmodify WHEN 'r' THEN 'READ_ONLY' WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END END,
		         CASE WHEN a.aggcombinefn <> 0 THEN 'COMBINEFUNC = ' || a.aggcombinefn::regproc::text END,
		         CASE WHEN a.aggserialfn <> 0 THEN 'SERIALFUNC = ' || a.aggserialfn::regproc::text END,
		         CASE WHEN a.aggdeserialfn <> 0 THEN 'DESERIALFUNC = ' || a.aggdeserialfn::regproc::text END,
		         CASE WHEN a.agginitval IS NOT NULL THEN 'INITCOND = ' || quote_literal(a.agginitval) END,
		         CASE WHEN a.aggmtransfn <> 0 THEN 'MSFUNC = ' || a.aggmtransfn::regproc::text END,
		         CASE WHEN a.aggminvtransfn <> 0 THEN 'MINVFUNC = ' || a.aggminvtransfn::regproc::text END,
		         CASE WHEN a.aggmtransfn <> 0 THEN 'MSTYPE = ' || format_type(a.aggmtranstype, NULL) END,
		         CASE WHEN a.aggmtransspace <> 0 THEN 'MSSPACE = ' || a.aggmtransspace END,
		         CASE WHEN a.aggmfinalfn <> 0 THEN 'MFINALFUNC = ' || a.aggmfinalfn::regproc::text END,
		         CASE WHEN a.aggmfinalextra THEN 'MFINALFUNC_EXTRA' END,
		         CASE WHEN a.aggminitval IS NOT NULL THEN 'MINITCOND = ' || quote_literal(a.aggminitval) END,
		         CASE WHEN a.aggsortop <> 0 THEN 'SORTOP = ' || (SELECT CASE WHEN on_.nspname = 'pg_catalog' THEN o.oprname
		              ELSE 'OPERATOR(' || quote_ident(on_.nspname) || '.' || o.oprname || ')' END
		              FROM pg_operator o JOIN pg_namespace on_ ON on_.oid = o.oprnamespace WHERE o.oid = a.aggsortop) END,
		         CASE WHEN a.aggkind = 'h' THEN 'HYPOTHETICAL' END,
		         CASE p.proparallel WHEN 's' THEN 'PARALLEL = SAFE' WHEN 'r' THEN 'PARALLEL = RESTRICTED' END)`

// routineDef is a function or procedure (prokind f, p, w) as
// pg_get_functiondef prints it.
func routineDef(kind, schema, name, sig, ddl string) proto.ObjectDef {
	k := proto.ObjectFunction
	if kind == "p" {
		k = proto.ObjectProcedure
	}
	return proto.ObjectDef{Kind: k, Schema: schema, Name: name, Signature: sig, DDL: strings.TrimSpace(ddl)}
}

// aggregateDef builds CREATE AGGREGATE: ident is the aggregate's
// qualified name, args its arguments, body aggregateOptionsSQL's output.
func aggregateDef(schema, name, sig, ident, args, body string) proto.ObjectDef {
	if args == "" {
		args = "*"
	}
	ddl := fmt.Sprintf("CREATE OR REPLACE AGGREGATE %s (%s) (%s)", ident, args, body)
	return proto.ObjectDef{Kind: proto.ObjectAggregate, Schema: schema, Name: name, Signature: sig, DDL: ddl}
}

// readAggregates builds CREATE AGGREGATE from pg_aggregate (PostgreSQL
// has no function that prints it).
func (r *schemaReader) readAggregates(ctx context.Context, oids []uint32) error {
	return eachCatalogRow(ctx, r.q, `
		SELECT n.nspname, p.proname, p.oid::regprocedure::text, quote_ident(n.nspname) || '.' || quote_ident(p.proname),
		       pg_get_function_arguments(p.oid), a.aggkind::text, `+aggregateOptionsSQL+`
		FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.oid = ANY($1::oid[])
		ORDER BY n.nspname, p.proname, p.oid`, []any{oids},
		func(rows pgx.Rows) error {
			var schema, name, sig, ident, args, kind, body string
			if err := rows.Scan(&schema, &name, &sig, &ident, &args, &kind, &body); err != nil {
				return err
			}
			r.objects = append(r.objects, aggregateDef(schema, name, sig, ident, args, body))
			return nil
		})
}

// operatorDDLSQL prints CREATE OPERATOR for the operator o (pg_operator)
// in the schema n.
const operatorDDLSQL = `'CREATE OPERATOR ' || quote_ident(n.nspname) || '.' || o.oprname || ' (' || concat_ws(', ',
		         'FUNCTION = ' || o.oprcode::regproc::text,
		         CASE WHEN o.oprleft <> 0 THEN 'LEFTARG = ' || format_type(o.oprleft, NULL) END,
		         CASE WHEN o.oprright <> 0 THEN 'RIGHTARG = ' || format_type(o.oprright, NULL) END,
		         CASE WHEN o.oprcom <> 0 THEN 'COMMUTATOR = ' || (SELECT 'OPERATOR(' || quote_ident(cn.nspname) || '.' || c.oprname || ')'
		              FROM pg_operator c JOIN pg_namespace cn ON cn.oid = c.oprnamespace WHERE c.oid = o.oprcom) END,
		         CASE WHEN o.oprnegate <> 0 THEN 'NEGATOR = ' || (SELECT 'OPERATOR(' || quote_ident(cn.nspname) || '.' || c.oprname || ')'
		              FROM pg_operator c JOIN pg_namespace cn ON cn.oid = c.oprnamespace WHERE c.oid = o.oprnegate) END,
		         CASE WHEN o.oprrest <> 0 THEN 'RESTRICT = ' || o.oprrest::regproc::text END,
		         CASE WHEN o.oprjoin <> 0 THEN 'JOIN = ' || o.oprjoin::regproc::text END,
		         CASE WHEN o.oprcanhash THEN 'HASHES' END,
		         CASE WHEN o.oprcanmerge THEN 'MERGES' END) || ')'`

// readOperators builds CREATE OPERATOR for the operators of the whole
// selected schemas. It has no OR REPLACE: apply checks first (Signature
// is the operator's regoperator text).
func (r *schemaReader) readOperators(ctx context.Context) error {
	if len(r.wholeSchemas) == 0 {
		return nil
	}
	return eachCatalogRow(ctx, r.q, `
		SELECT n.nspname, o.oprname, o.oid::regoperator::text,
		       `+operatorDDLSQL+`
		FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
		WHERE n.nspname = ANY($1::text[]) AND o.oprcode <> 0 AND `+notExtensionMember("pg_operator", "o.oid")+`
		ORDER BY n.nspname, o.oprname, o.oid`, []any{r.wholeSchemas},
		func(rows pgx.Rows) error {
			var d proto.ObjectDef
			if err := rows.Scan(&d.Schema, &d.Name, &d.Signature, &d.DDL); err != nil {
				return err
			}
			d.Kind = proto.ObjectOperator
			r.objects = append(r.objects, d)
			return nil
		})
}

// readViews reads the views and materialized views of the whole selected
// schemas, each after the views it reads.
func (r *schemaReader) readViews(ctx context.Context) error {
	if len(r.wholeSchemas) == 0 {
		return nil
	}
	type view struct {
		def  proto.ObjectDef
		deps []uint32
	}
	views := map[uint32]*view{}
	var order []uint32
	err := eachCatalogRow(ctx, r.q, `
		SELECT c.oid, n.nspname, c.relname, c.relkind::text,
		       coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', ''),
		       pg_get_viewdef(c.oid),
		       ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
		             WHERE rw.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid),
		       ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		             WHERE i.indrelid = c.oid ORDER BY ic.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('v', 'm') AND `+notExtensionMember("pg_class", "c.oid")+`
		ORDER BY n.nspname, c.relname`, []any{r.wholeSchemas},
		func(rows pgx.Rows) error {
			var (
				oid                             uint32
				schema, name, kind, opts, query string
				deps                            []uint32
				indexes                         []string
			)
			if err := rows.Scan(&oid, &schema, &name, &kind, &opts, &query, &deps, &indexes); err != nil {
				return err
			}
			v := &view{def: viewDef(schema, name, kind, opts, query, indexes), deps: deps}
			views[oid] = v
			order = append(order, oid)
			r.viewOIDs = append(r.viewOIDs, oid)
			r.schemas[schema] = true
			return nil
		})
	if err != nil {
		return err
	}
	// Depth first, in name order: each view after the views it reads.
	done := map[uint32]bool{}
	var visit func(oid uint32)
	visit = func(oid uint32) {
		v, ok := views[oid]
		if !ok || done[oid] {
			return
		}
		done[oid] = true
		deps := slices.Clone(v.deps)
		slices.Sort(deps)
		for _, d := range deps {
			visit(d)
		}
		r.objects = append(r.objects, v.def)
	}
	for _, oid := range order {
		visit(oid)
	}
	return nil
}

// viewDef is a view (relkind v) or materialized view (m) with its
// options (reloptions as a WITH clause), query (pg_get_viewdef) and, for
// a materialized view, indexes (pg_get_indexdef).
func viewDef(schema, name, kind, opts, query string, indexes []string) proto.ObjectDef {
	ident := pgx.Identifier{schema, name}.Sanitize()
	query = strings.TrimSuffix(strings.TrimSpace(query), ";")
	if kind != "m" {
		return proto.ObjectDef{Kind: proto.ObjectView, Schema: schema, Name: name,
			DDL: "CREATE OR REPLACE VIEW " + ident + opts + " AS\n" + query}
	}
	d := proto.ObjectDef{Kind: proto.ObjectMaterializedView, Schema: schema, Name: name,
		DDL: "CREATE MATERIALIZED VIEW IF NOT EXISTS " + ident + opts + " AS\n" + query + "\nWITH DATA"}
	for _, ix := range indexes {
		d.After = append(d.After, addIfNotExists(ix))
	}
	return d
}

// addIfNotExists makes pg_get_indexdef's CREATE [UNIQUE] INDEX safe to
// run again.
func addIfNotExists(indexDef string) string {
	for _, head := range []string{"CREATE UNIQUE INDEX ", "CREATE INDEX "} {
		if rest, ok := strings.CutPrefix(indexDef, head); ok {
			return head + "IF NOT EXISTS " + rest
		}
	}
	return indexDef
}

// syncedRelations are the selected tables' and the read views' OIDs
// (readViews runs first).
func (r *schemaReader) syncedRelations() []uint32 {
	return append(slices.Clone(r.oids), r.viewOIDs...)
}

// firingSQL is the ALTER TABLE that gives a trigger or rule its firing
// state ('O', the default, needs none).
func firingSQL(kind string, table proto.TableID, name string, state proto.Char) string {
	if state == 'O' || state == 0 {
		return ""
	}
	return "ALTER TABLE " + pgx.Identifier{table.Schema, table.Name}.Sanitize() + " " + proto.FiringAction(state) + " " + kind + " " + pgx.Identifier{name}.Sanitize()
}

// triggerDef is a trigger as pg_get_triggerdef prints it (made CREATE OR
// REPLACE, which constraint triggers do not take), with its firing state
// (tgenabled).
func triggerDef(schema, table, name, enabled, ddl string, constraint bool) proto.ObjectDef {
	on := proto.TableID{Schema: schema, Name: table}
	if !constraint {
		ddl = strings.Replace(ddl, "CREATE TRIGGER ", "CREATE OR REPLACE TRIGGER ", 1)
	}
	d := proto.ObjectDef{Kind: proto.ObjectTrigger, Schema: schema, Name: name, Table: &on, DDL: ddl, Enabled: firstChar(enabled)}
	if f := firingSQL("TRIGGER", on, name, d.Enabled); f != "" {
		d.After = []string{f}
	}
	return d
}

// ruleDef is a rule as pg_get_ruledef prints it, with its firing state
// (ev_enabled).
func ruleDef(schema, table, name, enabled, ddl string) proto.ObjectDef {
	on := proto.TableID{Schema: schema, Name: table}
	ddl = strings.TrimSuffix(strings.Replace(ddl, "CREATE RULE ", "CREATE OR REPLACE RULE ", 1), ";")
	d := proto.ObjectDef{Kind: proto.ObjectRule, Schema: schema, Name: name, Table: &on, DDL: ddl, Enabled: firstChar(enabled)}
	if f := firingSQL("RULE", on, name, d.Enabled); f != "" {
		d.After = []string{f}
	}
	return d
}

func firstChar(s string) proto.Char {
	if s == "" {
		return 0
	}
	return proto.Char(s[0])
}

// readTriggers reads the user triggers of the selected tables and views
// (not those of foreign keys, nor partitions' clones of their parent's).
func (r *schemaReader) readTriggers(ctx context.Context) error {
	rels := r.syncedRelations()
	return eachCatalogRow(ctx, r.q, `
		SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text, pg_get_triggerdef(t.oid), t.tgconstraint <> 0
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_proc f ON f.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = f.pronamespace
		WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal AND t.tgparentid = 0 AND fn.nspname <> $2
		ORDER BY n.nspname, c.relname, t.tgname`, []any{rels, proto.ReservedSchema},
		func(rows pgx.Rows) error {
			var (
				schema, table, name, enabled, ddl string
				constraint                        bool
			)
			if err := rows.Scan(&schema, &table, &name, &enabled, &ddl, &constraint); err != nil {
				return err
			}
			r.objects = append(r.objects, triggerDef(schema, table, name, enabled, ddl, constraint))
			return nil
		})
}

// readRules reads the rules of the selected tables and views (not the
// _RETURN rule that makes a view).
func (r *schemaReader) readRules(ctx context.Context) error {
	rels := r.syncedRelations()
	return eachCatalogRow(ctx, r.q, `
		SELECT n.nspname, c.relname, rw.rulename, rw.ev_enabled::text, pg_get_ruledef(rw.oid)
		FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE rw.ev_class = ANY($1::oid[]) AND rw.rulename <> '_RETURN'
		ORDER BY n.nspname, c.relname, rw.rulename`, []any{rels},
		func(rows pgx.Rows) error {
			var schema, table, name, enabled, ddl string
			if err := rows.Scan(&schema, &table, &name, &enabled, &ddl); err != nil {
				return err
			}
			r.objects = append(r.objects, ruleDef(schema, table, name, enabled, ddl))
			return nil
		})
}

// commentTargets maps pg_identify_object's type to COMMENT ON's keyword.
var commentTargets = map[string]string{
	"table": "TABLE", "table column": "COLUMN", "view": "VIEW", "view column": "COLUMN",
	"materialized view": "MATERIALIZED VIEW", "materialized view column": "COLUMN",
	"index": "INDEX", "sequence": "SEQUENCE", "function": "FUNCTION", "procedure": "PROCEDURE",
	"aggregate": "AGGREGATE", "operator": "OPERATOR", "type": "TYPE", "domain": "DOMAIN",
	"schema": "SCHEMA", "table constraint": "CONSTRAINT", "trigger": "TRIGGER", "rule": "RULE",
	"domain constraint": "CONSTRAINT",
}

// commentDef is COMMENT ON an object pg_identify_object names (typ,
// identity); comment is a literal, or NULL to remove it. ok is false for
// kinds a working copy does not take.
func commentDef(typ, identity, comment string) (proto.ObjectDef, bool) {
	target, ok := commentTargets[typ]
	if !ok {
		return proto.ObjectDef{}, false
	}
	return proto.ObjectDef{Kind: proto.ObjectComment, Name: identity,
		DDL: "COMMENT ON " + target + " " + identity + " IS " + comment}, true
}

// readComments reads the comments on everything the schema creates.
func (r *schemaReader) readComments(ctx context.Context) error {
	rels := r.syncedRelations()
	// The selected tables' columns that are synced (objects[].columns
	// may leave some out).
	synced := map[uint32]map[int]bool{}
	for _, t := range r.tables {
		cols := map[int]bool{}
		for _, c := range t.Columns {
			cols[c.Num] = true
		}
		synced[t.OID] = cols
	}
	var typeOIDs []uint32
	if r.types != nil {
		typeOIDs = r.types.created
	}
	var seqNames []string
	for _, s := range r.sequences {
		seqNames = append(seqNames, pgx.Identifier{s.Schema, s.Name}.Sanitize())
	}
	var out []proto.ObjectDef
	err := eachCatalogRow(ctx, r.q, `
		WITH targets(classid, objid) AS (
			SELECT 'pg_class'::regclass, unnest($1::oid[])
			UNION ALL SELECT 'pg_class'::regclass, i.indexrelid FROM pg_index i WHERE i.indrelid = ANY($1::oid[])
			UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.conrelid = ANY($1::oid[])
			UNION ALL SELECT 'pg_trigger'::regclass, t.oid FROM pg_trigger t WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal AND t.tgparentid = 0
			UNION ALL SELECT 'pg_rewrite'::regclass, rw.oid FROM pg_rewrite rw WHERE rw.ev_class = ANY($1::oid[]) AND rw.rulename <> '_RETURN'
			UNION ALL SELECT 'pg_type'::regclass, unnest($2::oid[])
			UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.contypid = ANY($2::oid[])
			UNION ALL SELECT 'pg_class'::regclass, to_regclass(s) FROM unnest($3::text[]) s
			UNION ALL SELECT 'pg_namespace'::regclass, n.oid FROM pg_namespace n WHERE n.nspname = ANY($4::text[])
			UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = ANY($4::text[]) AND `+notExtensionMember("pg_proc", "p.oid")+`
			UNION ALL SELECT 'pg_operator'::regclass, o.oid FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
				WHERE n.nspname = ANY($4::text[]) AND `+notExtensionMember("pg_operator", "o.oid")+`)
		SELECT d.objoid, d.objsubid, io.type, io.identity, quote_literal(d.description)
		FROM targets tg
		JOIN pg_description d ON d.classoid = tg.classid AND d.objoid = tg.objid
		CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) io
		ORDER BY io.type, io.identity`, []any{rels, typeOIDs, seqNames, r.wholeSchemas},
		func(rows pgx.Rows) error {
			var (
				oid                    uint32
				sub                    int
				typ, identity, comment string
			)
			if err := rows.Scan(&oid, &sub, &typ, &identity, &comment); err != nil {
				return err
			}
			if cols, ok := synced[oid]; ok && sub > 0 && !cols[sub] {
				return nil // a column the task leaves out
			}
			if d, ok := commentDef(typ, identity, comment); ok {
				out = append(out, d)
			}
			return nil
		})
	if err != nil {
		return err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].DDL < out[j].DDL })
	r.objects = append(r.objects, out...)
	return nil
}
