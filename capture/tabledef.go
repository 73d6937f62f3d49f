package capture

// The one catalog read of a table's definition (proto.TableDef). The
// schema read (ReadSchema) runs it over the selected tables, and the DDL
// capture's event trigger runs it, as the function sluice.table_shape, for
// every table a DDL command touched: the two see a table alike, so the
// destination compares and creates one model.
//
// Both run it with search_path = pg_catalog, so that every name outside
// pg_catalog comes out schema-qualified; the index and foreign-key
// definitions are cut by that rule (see indexDefSQL, fkRestSQL).
//
// Fingerprints are taken from the catalog's parse trees (pg_node_tree),
// in which columns, tables, types and functions are numbers: two
// definitions with the same fingerprint differ at most in names, so a
// renamed column changes no constraint's fingerprint. The trees' token
// positions (:location) depend on how the statement was written and are
// left out.

// stripLocations removes the :location fields of a pg_node_tree's text.
func stripLocations(expr string) string {
	return `regexp_replace(coalesce(` + expr + `::text, ''), ' :location -?[0-9]+', '', 'g')`
}

// indexDefSQL is an index's definition from its method on, as
// pg_get_indexdef prints it after "CREATE [UNIQUE] INDEX name ON [ONLY]
// schema.table USING "; NULL if the printed head is not that.
const indexDefSQL = `(SELECT CASE WHEN left(rest, length(tbl) + 7) = tbl || ' USING ' THEN substr(rest, length(tbl) + 8) END
	FROM (SELECT regexp_replace(substr(pg_get_indexdef(i.indexrelid),
			length('CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname) || ' ON ') + 1), '^ONLY ', '') AS rest,
		quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS tbl) h)`

// indexColumnsSQL lists the columns an index uses: its keys and INCLUDE
// columns, and those its expressions and predicate read.
const indexColumnsSQL = `(SELECT jsonb_agg(u.num ORDER BY u.num) FROM (
	SELECT k.num::int AS num FROM unnest(i.indkey::int2[]) AS k(num) WHERE k.num > 0
	UNION SELECT dep.refobjsubid FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass AND dep.objid = i.indexrelid
		AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = i.indrelid AND dep.refobjsubid > 0) u)`

// indexFingerprintSQL is an index's fingerprint (over ix, its pg_index
// row, and its pg_class row ixc).
func indexFingerprintSQL(ix, ixc string) string {
	return `md5(concat_ws('|', ` + ix + `.indisunique, ` + ix + `.indnullsnotdistinct, (SELECT amname FROM pg_am WHERE oid = ` + ixc + `.relam),
		` + ix + `.indkey::text, ` + ix + `.indnkeyatts, ` + ix + `.indclass::text, ` + ix + `.indcollation::text, ` + ix + `.indoption::text,
		` + stripLocations(ix+".indexprs") + `, ` + stripLocations(ix+".indpred") + `, ` + ixc + `.reloptions::text))`
}

// fkHeadSQL is how pg_get_constraintdef begins a foreign key: its columns
// and the referenced table and columns, each quoted.
const fkHeadSQL = `'FOREIGN KEY (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY o.ord) FROM unnest(k.conkey) WITH ORDINALITY o(num, ord)
		JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = o.num)
	|| ') REFERENCES ' || quote_ident(rn.nspname) || '.' || quote_ident(rc.relname) || '('
	|| (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY o.ord) FROM unnest(k.confkey) WITH ORDINALITY o(num, ord)
		JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = o.num) || ')'`

// tableDefSQL builds a table's definition as JSON, for the pg_class row c
// and its pg_namespace row n.
var tableDefSQL = `jsonb_build_object(
	'id', jsonb_build_object('schema', n.nspname, 'name', c.relname),
	'oid', c.oid::int8,
	'replica_identity', c.relreplident::text,
	'identity_index', (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid AND i.indisreplident),
	'columns', coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
			'num', a.attnum, 'name', a.attname,
			'type', format_type(a.atttypid, a.atttypmod), 'type_oid', a.atttypid::int8,
			'not_null', CASE WHEN a.attnotnull THEN true END,
			'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
			'generated', CASE WHEN a.attgenerated = 's' THEN pg_get_expr(d.adbin, d.adrelid) END,
			'uses', CASE WHEN a.attgenerated = 's' THEN (SELECT jsonb_agg(dep.refobjsubid ORDER BY dep.refobjsubid) FROM pg_depend dep
				WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
				  AND dep.refobjid = c.oid AND dep.refobjsubid > 0 AND dep.refobjsubid <> a.attnum) END,
			'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN a.attcollation::regcollation::text END,
			'identity', nullif(a.attidentity::text, ''))) ORDER BY a.attnum)
		FROM pg_attribute a
		JOIN pg_type ty ON ty.oid = a.atttypid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::jsonb),
	'primary_key', (SELECT jsonb_agg(a.attname ORDER BY o.ord) FROM pg_constraint pk
		CROSS JOIN unnest(pk.conkey) WITH ORDINALITY o(num, ord)
		JOIN pg_attribute a ON a.attrelid = pk.conrelid AND a.attnum = o.num
		WHERE pk.conrelid = c.oid AND pk.contype = 'p'),
	'constraints', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
			'name', k.conname, 'kind', k.contype::text, 'def', pg_get_constraintdef(k.oid),
			'columns', (SELECT jsonb_agg(u.num ORDER BY u.num) FROM (
				SELECT o.num::int AS num FROM unnest(k.conkey) AS o(num)
				UNION SELECT x.num::int FROM pg_index ki CROSS JOIN unnest(ki.indkey::int2[]) AS x(num)
					WHERE ki.indexrelid = k.conindid AND k.contype IN ('p', 'u', 'x') AND x.num > 0) u),
			'validated', CASE WHEN k.convalidated THEN true END,
			'references', CASE WHEN k.contype = 'f' THEN (SELECT CASE WHEN left(f.def, length(f.head)) = f.head THEN jsonb_build_object(
					'from', (SELECT jsonb_agg(a.attname ORDER BY o.ord) FROM unnest(k.conkey) WITH ORDINALITY o(num, ord)
						JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = o.num),
					'table', jsonb_build_object('schema', rn.nspname, 'name', rc.relname),
					'columns', (SELECT jsonb_agg(a.attname ORDER BY o.ord) FROM unnest(k.confkey) WITH ORDINALITY o(num, ord)
						JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = o.num),
					'rest', substr(f.def, length(f.head) + 1)) END
				FROM (SELECT pg_get_constraintdef(k.oid) AS def, ` + fkHeadSQL + ` AS head) f) END,
			'fingerprint', md5(concat_ws('|', k.contype, k.conkey::text, k.confrelid, k.confkey::text, k.confupdtype, k.confdeltype,
				k.confmatchtype, k.confdelsetcols::text, k.condeferrable, k.condeferred, k.connoinherit, k.conexclop::text,
				` + stripLocations("k.conbin") + `,
				(SELECT ` + indexFingerprintSQL("ki", "kic") + ` FROM pg_index ki JOIN pg_class kic ON kic.oid = ki.indexrelid
					WHERE ki.indexrelid = k.conindid AND k.contype IN ('p', 'u', 'x')))))) 
		ORDER BY CASE k.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 ELSE 2 END, k.conname)
		FROM pg_constraint k
		LEFT JOIN pg_class rc ON rc.oid = k.confrelid
		LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
		WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u', 'c', 'f', 'x')),
	'indexes', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
			'name', ic.relname, 'unique', CASE WHEN i.indisunique THEN true END,
			'def', ` + indexDefSQL + `,
			'columns', ` + indexColumnsSQL + `,
			'fingerprint', ` + indexFingerprintSQL("i", "ic") + `)) ORDER BY ic.relname)
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = c.oid AND i.indisvalid AND i.indisready AND i.indislive
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))),
	'partition_by', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
	'partitions', CASE WHEN c.relkind = 'p' THEN (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
			'id', jsonb_build_object('schema', pn.nspname, 'name', pc.relname),
			'parent', jsonb_build_object('schema', ppn.nspname, 'name', pp.relname),
			'bound', pg_get_expr(pc.relpartbound, pc.oid),
			'partition_by', CASE WHEN pc.relkind = 'p' THEN pg_get_partkeydef(pc.oid) END)) ORDER BY pt.level, pn.nspname, pc.relname)
		FROM pg_partition_tree(c.oid) pt
		JOIN pg_class pc ON pc.oid = pt.relid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
		JOIN pg_class pp ON pp.oid = pt.parentrelid JOIN pg_namespace ppn ON ppn.oid = pp.relnamespace
		WHERE pt.level > 0) END,
	'sequences', (SELECT jsonb_agg(DISTINCT jsonb_build_object('schema', sn.nspname, 'name', s.relname))
		FROM pg_attrdef ad
		JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid AND dep.refclassid = 'pg_class'::regclass
		JOIN pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S'
		JOIN pg_namespace sn ON sn.oid = s.relnamespace
		WHERE ad.adrelid = c.oid))`
