package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/proto"
)

// Querier is what schema reading needs: a *pgx.Conn or a pgx.Tx (the
// full-sync snapshot transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SelectionError lists what a selection names that cannot be synced, all
// of it at once so that the user fixes the task spec in one go.
type SelectionError struct {
	// Missing are schemas and tables that do not exist.
	Missing []string
	// Unsupported are relations that exist but cannot be synced (yet),
	// each with the reason.
	Unsupported []string
}

func (e *SelectionError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "not found: "+strings.Join(e.Missing, ", "))
	}
	if len(e.Unsupported) > 0 {
		parts = append(parts, "not supported yet: "+strings.Join(e.Unsupported, ", "))
	}
	return "selected objects: " + strings.Join(parts, "; ")
}

// selectedTable is a table of the selection with its OID, which the
// catalog queries join on.
type selectedTable struct {
	id  proto.TableID
	oid uint32
	// columns selects the columns synced (nil: all).
	columns []string
}

// ListTables resolves the selection to existing ordinary tables (sorted),
// for prechecks.
func ListTables(ctx context.Context, q Querier, objects []proto.ObjectSpec) ([]proto.TableID, error) {
	sel, err := selectTables(ctx, q, objects)
	if err != nil {
		return nil, err
	}
	ids := make([]proto.TableID, len(sel))
	for i, t := range sel {
		ids[i] = t.id
	}
	return ids, nil
}

// selectTables resolves the selection, sorted by schema and name.
func selectTables(ctx context.Context, q Querier, objects []proto.ObjectSpec) ([]selectedTable, error) {
	selErr := &SelectionError{}
	seen := map[uint32]bool{}
	var out []selectedTable
	for _, o := range objects {
		if o.Schema == proto.ReservedSchema || o.Schema == "information_schema" || strings.HasPrefix(o.Schema, "pg_") {
			selErr.Unsupported = append(selErr.Unsupported, fmt.Sprintf("schema %s (reserved for the system or Sluice)", quoteIdentName(o.Schema)))
			continue
		}
		tables, err := selectInSchema(ctx, q, o, selErr)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			if !seen[t.oid] {
				seen[t.oid] = true
				out = append(out, t)
			}
		}
	}
	if len(selErr.Missing) > 0 || len(selErr.Unsupported) > 0 {
		return nil, selErr
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].id.Schema != out[j].id.Schema {
			return out[i].id.Schema < out[j].id.Schema
		}
		return out[i].id.Name < out[j].id.Name
	})
	return out, nil
}

// selectInSchema returns the ordinary tables one ObjectSpec selects and
// records in selErr what it names that is missing or unsupported.
func selectInSchema(ctx context.Context, q Querier, o proto.ObjectSpec, selErr *SelectionError) ([]selectedTable, error) {
	var nsOID uint32
	err := q.QueryRow(ctx, `SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1`, o.Schema).Scan(&nsOID)
	if errors.Is(err, pgx.ErrNoRows) {
		selErr.Missing = append(selErr.Missing, "schema "+quoteIdentName(o.Schema))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up schema %s: %w", quoteIdentName(o.Schema), err)
	}
	// A whole schema means its tables of every kind, so that partitioned
	// and unlogged ones are reported rather than silently left out; views,
	// sequences and foreign tables are not tables and are skipped.
	rows, err := q.Query(ctx, `
		SELECT c.oid, c.relname, c.relkind::text, c.relispartition, c.relpersistence::text,
		       CASE WHEN c.relispartition THEN (SELECT rn.nspname || '.' || r.relname FROM pg_catalog.pg_class r
		            JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace WHERE r.oid = pg_catalog.pg_partition_root(c.oid)) END,
		       CASE WHEN c.relispartition THEN (SELECT r.relnamespace FROM pg_catalog.pg_class r WHERE r.oid = pg_catalog.pg_partition_root(c.oid)) END
		FROM pg_catalog.pg_class c
		WHERE c.relnamespace = $1
		  AND (CASE WHEN coalesce(cardinality($2::text[]), 0) = 0 THEN c.relkind IN ('r', 'p')
		            ELSE c.relname = ANY($2::text[]) AND c.relkind NOT IN ('i', 'I', 'c', 't') END)
		ORDER BY c.relname`, nsOID, o.Tables)
	if err != nil {
		return nil, fmt.Errorf("list tables of schema %s: %w", quoteIdentName(o.Schema), err)
	}
	found := map[string]bool{}
	var out []selectedTable
	for rows.Next() {
		var (
			t                    selectedTable
			relkind, persistence string
			isPartition          bool
			root                 *string
			rootNS               *uint32
		)
		if err := rows.Scan(&t.oid, &t.id.Name, &relkind, &isPartition, &persistence, &root, &rootNS); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables of schema %s: %w", quoteIdentName(o.Schema), err)
		}
		t.id.Schema = o.Schema
		t.columns = o.Columns[t.id.Name]
		found[t.id.Name] = true
		if isPartition {
			// Partitions sync through their root: skipped when the whole
			// schema of the root is selected, named otherwise.
			if len(o.Tables) == 0 && rootNS != nil && *rootNS == nsOID {
				continue
			}
			selErr.Unsupported = append(selErr.Unsupported, fmt.Sprintf("%s (a partition of %s: select %s, partitions sync through their root)", t.id, deref(root), deref(root)))
			continue
		}
		if why := unsupportedRelation(relkind, isPartition, persistence); why != "" {
			selErr.Unsupported = append(selErr.Unsupported, fmt.Sprintf("%s (%s)", t.id, why))
			continue
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of schema %s: %w", quoteIdentName(o.Schema), err)
	}
	for _, name := range o.Tables {
		if !found[name] {
			selErr.Missing = append(selErr.Missing, "table "+proto.TableID{Schema: o.Schema, Name: name}.String())
		}
	}
	return out, nil
}

// unsupportedRelation says why a relation cannot be synced, or "".
func unsupportedRelation(relkind string, isPartition bool, persistence string) string {
	switch {
	case relkind == "p" && !isPartition:
		return "" // synced through the root, as one table
	case isPartition:
		return "partition"
	case relkind == "v":
		return "a view, not a table"
	case relkind == "m":
		return "a materialized view, not a table"
	case relkind == "f":
		return "a foreign table"
	case relkind == "S":
		return "a sequence, not a table"
	case relkind != "r":
		return "not a table"
	case persistence == "u":
		return "unlogged table"
	case persistence == "t":
		return "temporary table"
	}
	return ""
}

func quoteIdentName(s string) string { return pgx.Identifier{s}.Sanitize() }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ReadSchema describes the selected tables and everything they need.
//
// Run it in the snapshot transaction so that the schema matches the data
// full sync copies. It sets search_path to pg_catalog inside a savepoint
// (or its own transaction when q is an idle *pgx.Conn), so that every name
// outside pg_catalog comes out schema-qualified, and rolls that back
// before returning: the caller's transaction is left as it was.
func ReadSchema(ctx context.Context, q Querier, objects []proto.ObjectSpec) (*proto.Schema, error) {
	var s *proto.Schema
	err := inCatalogScope(ctx, q, func(q Querier) error {
		sel, err := selectTables(ctx, q, objects)
		if err != nil {
			return err
		}
		r := newSchemaReader(q)
		r.wholeSchemas = wholeSchemas(objects)
		if r.selectedSequences, err = selectSequences(ctx, q, objects); err != nil {
			return err
		}
		s, err = r.read(ctx, sel)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

const scopeSavepoint = "sluice_read_schema"

// inCatalogScope runs fn with search_path = pg_catalog, transaction-local
// and undone afterwards.
func inCatalogScope(ctx context.Context, q Querier, fn func(Querier) error) (err error) {
	if conn, ok := q.(*pgx.Conn); ok && conn.PgConn().TxStatus() == 'I' {
		// A repeatable-read transaction of our own: one snapshot for all
		// the catalog queries.
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return fmt.Errorf("read schema: begin: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
		q = tx
	} else {
		// Inside the caller's transaction: rolling back to a savepoint
		// restores search_path, and also leaves the transaction usable if
		// a query fails.
		if _, err := q.Exec(ctx, "SAVEPOINT "+scopeSavepoint); err != nil {
			return fmt.Errorf("read schema: savepoint: %w", err)
		}
		defer func() {
			_, rbErr := q.Exec(context.WithoutCancel(ctx), "ROLLBACK TO SAVEPOINT "+scopeSavepoint+"; RELEASE SAVEPOINT "+scopeSavepoint)
			if err == nil && rbErr != nil {
				err = fmt.Errorf("read schema: release savepoint: %w", rbErr)
			}
		}()
	}
	if _, err := q.Exec(ctx, "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)"); err != nil {
		return fmt.Errorf("read schema: set search_path: %w", err)
	}
	return fn(q)
}

// schemaReader accumulates the schema of a selection. Its queries take
// all the selected tables at once (oid = ANY($1)) so that a selection of
// thousands of tables costs a handful of round trips.
type schemaReader struct {
	q Querier
	// columns are the columns selected per table (absent: all).
	columns    map[uint32]map[string]bool
	tables     []*proto.TableDef
	byOID      map[uint32]*proto.TableDef
	oids       []uint32
	schemas    map[string]bool
	extensions map[string]bool
	extSchemas map[string]string
	typeOIDs   map[uint32]bool // column types, roots of the type closure
	types      *typeGraph
	sequences  []proto.SequenceDef
	// wholeSchemas are the schemas selected whole (no table list): their
	// views, routines, operators and types come along (objects.go).
	wholeSchemas []string
	objects      []proto.ObjectDef
	viewOIDs     []uint32 // the views and materialized views read
	// selectedSequences are those objects select themselves (sequences.go).
	selectedSequences []uint32
}

// wholeSchemas are the schemas objects selects without a table list.
func wholeSchemas(objects []proto.ObjectSpec) []string {
	var out []string
	for _, o := range objects {
		if len(o.Tables) == 0 && !slices.Contains(out, o.Schema) {
			out = append(out, o.Schema)
		}
	}
	sort.Strings(out)
	return out
}

func newSchemaReader(q Querier) *schemaReader {
	return &schemaReader{
		q:          q,
		byOID:      map[uint32]*proto.TableDef{},
		schemas:    map[string]bool{},
		extensions: map[string]bool{},
		typeOIDs:   map[uint32]bool{},
		columns:    map[uint32]map[string]bool{},
	}
}

func (r *schemaReader) read(ctx context.Context, sel []selectedTable) (*proto.Schema, error) {
	for _, t := range sel {
		if t.columns != nil {
			r.columns[t.oid] = map[string]bool{}
			for _, c := range t.columns {
				r.columns[t.oid][c] = true
			}
		}
		td := &proto.TableDef{ID: t.id, OID: t.oid}
		r.tables = append(r.tables, td)
		r.byOID[t.oid] = td
		r.oids = append(r.oids, t.oid)
		r.schemas[t.id.Schema] = true
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"tables", r.readDefinitions},
		{"sizes", r.readTables},
		{"partitions", r.readPartitions},
		{"sequences", r.readSequences},
		{"unused types", r.readWholeSchemaTypes},
		{"types", r.readTypes},
		{"extensions", r.readExtensions},
		{"objects", r.readObjects},
		{"extension schemas", r.readExtensionSchemas},
	}
	for _, st := range steps {
		if err := st.fn(ctx); err != nil {
			return nil, fmt.Errorf("read schema: %s: %w", st.name, err)
		}
	}
	return r.result(), nil
}

func (r *schemaReader) result() *proto.Schema {
	s := &proto.Schema{
		Schemas:    sortedSet(r.schemas),
		Extensions: sortedSet(r.extensions),
		Sequences:  r.sequences,
		Tables:     make([]proto.TableDef, len(r.tables)),
		Objects:    r.objects,
	}
	if len(r.extSchemas) > 0 {
		s.ExtensionSchemas = r.extSchemas
	}
	if r.types != nil {
		s.Types = r.types.defs
	}
	for i, t := range r.tables {
		s.Tables[i] = *t
	}
	return s
}

func sortedSet(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// forRows runs a query and calls scan for each row.
func eachCatalogRow(ctx context.Context, q Querier, sql string, args []any, scan func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (r *schemaReader) readTables(ctx context.Context) error {
	var unanalysed []*proto.TableDef
	err := eachCatalogRow(ctx, r.q, `
		SELECT c.oid, c.relkind = 'p',
		       CASE WHEN c.relkind = 'p' THEN (SELECT CASE WHEN bool_or(l.reltuples < 0) THEN -1 ELSE coalesce(sum(l.reltuples), 0)::int8 END
		            FROM pg_partition_tree(c.oid) pt JOIN pg_class l ON l.oid = pt.relid WHERE pt.isleaf) ELSE c.reltuples::int8 END,
		       CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_relation_size(pt.relid)), 0)::int8 FROM pg_partition_tree(c.oid) pt WHERE pt.isleaf)
		            ELSE pg_relation_size(c.oid) END
		FROM pg_class c WHERE c.oid = ANY($1::oid[])`, []any{r.oids},
		func(rows pgx.Rows) error {
			var oid uint32
			var partitioned bool
			var est, size int64
			if err := rows.Scan(&oid, &partitioned, &est, &size); err != nil {
				return err
			}
			t := r.byOID[oid]
			t.Partitioned = partitioned
			t.EstimatedRows, t.EstimatedBytes = max(est, 0), size
			if est < 0 && size > 0 {
				unanalysed = append(unanalysed, t)
			}
			return nil
		})
	if err != nil {
		return err
	}
	// reltuples is -1 until a table is first analysed or vacuumed; the
	// planner then estimates from its size, and so does progress.
	for _, t := range unanalysed {
		var plan []struct {
			Plan struct {
				Rows float64 `json:"Plan Rows"`
			} `json:"Plan"`
		}
		sql := "EXPLAIN (FORMAT JSON) SELECT 1 FROM " + t.FromClause()
		if err := r.q.QueryRow(ctx, sql).Scan(&plan); err != nil {
			return fmt.Errorf("estimate rows of %s: %w", t.ID, err)
		}
		if len(plan) > 0 {
			t.EstimatedRows = int64(plan[0].Plan.Rows)
		}
	}
	return nil
}

// collationSQL prints the collation of an object (expression coll) when it
// differs from its type's default (expression typcoll), schema-qualified.
func collationSQL(coll, typcoll string) string {
	return `coalesce((SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
		FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
		WHERE co.oid = ` + coll + ` AND ` + coll + ` <> 0 AND ` + coll + ` <> ` + typcoll + `), '')`
}

// readDefinitions reads the tables' definitions (tableDefSQL, the read
// DDL capture makes too), narrowed to the columns the task selects.
func (r *schemaReader) readDefinitions(ctx context.Context) error {
	return eachCatalogRow(ctx, r.q, `SELECT c.oid, `+tableDefSQL+`
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::oid[])`, []any{r.oids},
		func(rows pgx.Rows) error {
			var oid uint32
			var raw []byte
			if err := rows.Scan(&oid, &raw); err != nil {
				return err
			}
			t := r.byOID[oid]
			var def proto.TableDef
			if err := json.Unmarshal(raw, &def); err != nil {
				return fmt.Errorf("%s: %w", t.ID, err)
			}
			def.ID, def.OID = t.ID, t.OID
			if cols := r.columns[oid]; cols != nil {
				def.KeepColumns(func(name string) bool { return cols[name] })
			}
			*t = def
			for _, c := range t.Columns {
				r.typeOIDs[c.TypeOID] = true
			}
			return nil
		})
}

func (r *schemaReader) readSequences(ctx context.Context) error {
	seqOIDs, err := tableSequences(ctx, r.q, r.oids)
	if err != nil {
		return err
	}
	if seqOIDs = unionOIDs(seqOIDs, r.selectedSequences); len(seqOIDs) == 0 {
		return nil
	}
	if err := r.readSequenceDefs(ctx, seqOIDs); err != nil {
		return err
	}
	return r.readSequenceValues(ctx)
}

func (r *schemaReader) readSequenceDefs(ctx context.Context, seqOIDs []uint32) error {
	return eachCatalogRow(ctx, r.q, `
		SELECT n.nspname, s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement,
		       q.seqmin, q.seqmax, q.seqcache, q.seqcycle,
		       coalesce(own.refobjid, 0), coalesce(own.attname, ''), coalesce(own.deptype, '')
		FROM pg_class s
		JOIN pg_namespace n ON n.oid = s.relnamespace
		JOIN pg_sequence q ON q.seqrelid = s.oid
		LEFT JOIN LATERAL (
		    SELECT d.refobjid, a.attname, d.deptype::text AS deptype
		    FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
		    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_class'::regclass
		      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
		    LIMIT 1) own ON true
		WHERE s.oid = ANY($1::oid[])
		ORDER BY n.nspname, s.relname`, []any{seqOIDs},
		func(rows pgx.Rows) error {
			var (
				seq                           proto.SequenceDef
				typ, ownCol, deptype          string
				start, inc, minv, maxv, cache int64
				cycle                         bool
				ownOID                        uint32
			)
			if err := rows.Scan(&seq.Schema, &seq.Name, &typ, &start, &inc, &minv, &maxv, &cache, &cycle, &ownOID, &ownCol, &deptype); err != nil {
				return err
			}
			params := sequenceParams(inc, minv, maxv, start, cache, cycle)
			owner := r.byOID[ownOID]
			if owner != nil {
				seq.OwnedBy = pgx.Identifier{owner.ID.Schema, owner.ID.Name, ownCol}.Sanitize()
			}
			if deptype == "i" && owner != nil {
				r.setIdentityOptions(owner, ownCol, "SEQUENCE NAME "+pgx.Identifier{seq.Schema, seq.Name}.Sanitize()+" "+params)
			} else {
				seq.DDL = "CREATE SEQUENCE IF NOT EXISTS " + pgx.Identifier{seq.Schema, seq.Name}.Sanitize() + " AS " + typ + " " + params
			}
			r.schemas[seq.Schema] = true
			r.sequences = append(r.sequences, seq)
			return nil
		})
}

// sequenceParams are the options of CREATE SEQUENCE after AS, all of
// them, so that the destination's defaults do not matter.
func sequenceParams(inc, minv, maxv, start, cache int64, cycle bool) string {
	s := fmt.Sprintf("INCREMENT BY %d MINVALUE %d MAXVALUE %d START WITH %d CACHE %d", inc, minv, maxv, start, cache)
	if cycle {
		return s + " CYCLE"
	}
	return s + " NO CYCLE"
}

func (r *schemaReader) setIdentityOptions(t *proto.TableDef, column, opts string) {
	for i := range t.Columns {
		if t.Columns[i].Name == column {
			t.Columns[i].IdentityOptions = opts
		}
	}
}

// sequenceValueBatch bounds the size of one UNION ALL query.
const sequenceValueBatch = 500

// readSequenceValues reads last_value and is_called from the sequences
// themselves: pg_sequences hides last_value when is_called is false, and
// setval(seq, v, false) makes v matter.
func (r *schemaReader) readSequenceValues(ctx context.Context) error {
	for lo := 0; lo < len(r.sequences); lo += sequenceValueBatch {
		hi := min(lo+sequenceValueBatch, len(r.sequences))
		parts := make([]string, 0, hi-lo)
		for i := lo; i < hi; i++ {
			s := r.sequences[i]
			parts = append(parts, fmt.Sprintf("SELECT %d, last_value, is_called FROM %s", i, pgx.Identifier{s.Schema, s.Name}.Sanitize()))
		}
		err := eachCatalogRow(ctx, r.q, strings.Join(parts, " UNION ALL "), nil, func(rows pgx.Rows) error {
			var i int
			var v int64
			var called bool
			if err := rows.Scan(&i, &v, &called); err != nil {
				return err
			}
			r.sequences[i].LastValue, r.sequences[i].IsCalled = v, called
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readExtensions finds the extensions the tables need: members of an
// extension that a table (its column types), an index (operator classes),
// a default or a constraint (functions, operators), or a created type
// depends on.
func (r *schemaReader) readExtensions(ctx context.Context) error {
	var typeOIDs []uint32
	if r.types != nil {
		typeOIDs = r.types.created
	}
	return eachCatalogRow(ctx, r.q, `
		SELECT DISTINCT e.extname
		FROM pg_depend d
		JOIN pg_depend m ON m.classid = d.refclassid AND m.objid = d.refobjid
		                AND m.refclassid = 'pg_extension'::regclass AND m.deptype = 'e'
		JOIN pg_extension e ON e.oid = m.refobjid
		WHERE (d.classid = 'pg_class'::regclass AND (d.objid = ANY($1::oid[])
		        OR d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY($1::oid[]))))
		   OR (d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = ANY($1::oid[])))
		   OR (d.classid = 'pg_constraint'::regclass AND d.objid IN (
		        SELECT oid FROM pg_constraint WHERE conrelid = ANY($1::oid[]) OR contypid = ANY($2::oid[])))
		   OR (d.classid = 'pg_type'::regclass AND d.objid = ANY($2::oid[]))`, []any{r.oids, typeOIDs},
		func(rows pgx.Rows) error {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			r.extensions[name] = true
			return nil
		})
}

// typeInfo is a type a selected column needs, directly or through another
// type, with what it depends on.
type typeInfo struct {
	oid          uint32
	schema, name string
	typtype      string // b c d e p r m
	relkind      string // of typrelid, for composites
	extension    string // the extension the type belongs to, or ""
	isArray      bool
	deps         []uint32
	builtin      bool
	isComposite  bool
	multirangeOf uint32
}

func (t *typeInfo) String() string { return quoteIdentName(t.schema) + "." + quoteIdentName(t.name) }

// typeGraph is the closure of the column types over element, base,
// attribute and subtype links; defs lists the types to create, each after
// the types it depends on.
type typeGraph struct {
	info    map[uint32]*typeInfo
	visited map[uint32]bool
	defs    []proto.TypeDef
	created []uint32
}

func (r *schemaReader) readTypes(ctx context.Context) error {
	g := &typeGraph{info: map[uint32]*typeInfo{}, visited: map[uint32]bool{}}
	r.types = g
	var roots []uint32
	for oid := range r.typeOIDs {
		roots = append(roots, oid)
	}
	if err := r.loadTypeClosure(ctx, roots); err != nil {
		return err
	}
	// Visit in name order so that the output does not depend on OIDs.
	sort.Slice(roots, func(i, j int) bool {
		a, b := g.info[roots[i]], g.info[roots[j]]
		if a.schema != b.schema {
			return a.schema < b.schema
		}
		return a.name < b.name
	})
	for _, oid := range roots {
		if err := r.visitType(ctx, oid); err != nil {
			return err
		}
	}
	return nil
}

// loadTypeClosure loads typeInfo for the given types and, level by level,
// everything they depend on.
func (r *schemaReader) loadTypeClosure(ctx context.Context, pending []uint32) error {
	g := r.types
	for len(pending) > 0 {
		var batch []*typeInfo
		err := eachCatalogRow(ctx, r.q, `
			SELECT t.oid, n.nspname, t.typname, t.typtype::text, coalesce(rel.relkind::text, ''),
			       coalesce((SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
			                 WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
			                   AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' LIMIT 1), ''),
			       t.typelem <> 0 AND t.typsubscript = 'array_subscript_handler'::regproc,
			       t.typelem, t.typbasetype, coalesce(rng.rngsubtype, 0), coalesce(mr.rngtypid, 0),
			       n.nspname IN ('pg_catalog', 'information_schema'),
			       ARRAY(SELECT a.atttypid FROM pg_attribute a
			             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
			FROM pg_type t
			JOIN pg_namespace n ON n.oid = t.typnamespace
			LEFT JOIN pg_class rel ON rel.oid = t.typrelid
			LEFT JOIN pg_range rng ON rng.rngtypid = t.oid
			LEFT JOIN pg_range mr ON mr.rngmultitypid = t.oid
			WHERE t.oid = ANY($1::oid[])`, []any{pending},
			func(rows pgx.Rows) error {
				ti := &typeInfo{}
				var elem, base, sub uint32
				var attrs []uint32
				if err := rows.Scan(&ti.oid, &ti.schema, &ti.name, &ti.typtype, &ti.relkind, &ti.extension,
					&ti.isArray, &elem, &base, &sub, &ti.multirangeOf, &ti.builtin, &attrs); err != nil {
					return err
				}
				ti.isComposite = ti.typtype == "c" && ti.relkind == "c"
				switch {
				case ti.isArray:
					ti.deps = []uint32{elem}
				case ti.typtype == "d":
					ti.deps = []uint32{base}
				case ti.isComposite:
					ti.deps = attrs
				case ti.typtype == "r":
					ti.deps = []uint32{sub}
				case ti.typtype == "m":
					ti.deps = []uint32{ti.multirangeOf}
				}
				batch = append(batch, ti)
				return nil
			})
		if err != nil {
			return err
		}
		pending = nil
		for _, ti := range batch {
			g.info[ti.oid] = ti
		}
		for _, ti := range batch {
			if ti.builtin || ti.extension != "" {
				continue
			}
			for _, dep := range ti.deps {
				if _, ok := g.info[dep]; !ok && !containsOID(pending, dep) {
					pending = append(pending, dep)
				}
			}
		}
	}
	return nil
}

func containsOID(list []uint32, oid uint32) bool {
	for _, o := range list {
		if o == oid {
			return true
		}
	}
	return false
}

// visitType appends the type's definition after those of its
// dependencies (a depth-first, post-order walk).
func (r *schemaReader) visitType(ctx context.Context, oid uint32) error {
	g := r.types
	if g.visited[oid] {
		return nil
	}
	g.visited[oid] = true
	ti := g.info[oid]
	switch {
	case ti == nil:
		return fmt.Errorf("type oid %d vanished while reading", oid)
	case ti.builtin:
		return nil
	case ti.extension != "":
		// The extension creates it at the destination.
		r.extensions[ti.extension] = true
		return nil
	}
	for _, dep := range ti.deps {
		if err := r.visitType(ctx, dep); err != nil {
			return err
		}
	}
	var ddl string
	var err error
	switch {
	case ti.isArray, ti.typtype == "m":
		// Made together with the element type or the range.
		return nil
	case ti.typtype == "e":
		ddl, err = r.enumDDL(ctx, ti)
	case ti.typtype == "d":
		ddl, err = r.domainDDL(ctx, ti)
	case ti.isComposite:
		ddl, err = r.compositeDDL(ctx, ti)
	case ti.typtype == "r":
		ddl, err = r.rangeDDL(ctx, ti)
	case ti.typtype == "c":
		return fmt.Errorf("type %s is the row type of a table; columns of a table's row type are not supported yet", ti)
	default:
		return fmt.Errorf("type %s is a base type defined outside an extension; it is not supported", ti)
	}
	if err != nil {
		return fmt.Errorf("type %s: %w", ti, err)
	}
	kinds := map[string]string{"e": "enum", "d": "domain", "c": "composite", "r": "range"}
	g.defs = append(g.defs, proto.TypeDef{Schema: ti.schema, Name: ti.name, Kind: kinds[ti.typtype], DDL: ddl})
	g.created = append(g.created, ti.oid)
	r.schemas[ti.schema] = true
	return nil
}

func typeIdent(ti *typeInfo) string { return pgx.Identifier{ti.schema, ti.name}.Sanitize() }

func (r *schemaReader) enumDDL(ctx context.Context, ti *typeInfo) (string, error) {
	// quote_literal writes E'' when a label holds a backslash, so the
	// literal reads the same whatever standard_conforming_strings is.
	var labels []string
	err := eachCatalogRow(ctx, r.q, `SELECT quote_literal(enumlabel) FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder`,
		[]any{ti.oid}, func(rows pgx.Rows) error {
			var l string
			if err := rows.Scan(&l); err != nil {
				return err
			}
			labels = append(labels, l)
			return nil
		})
	if err != nil {
		return "", err
	}
	return enumTypeDDL(typeIdent(ti), labels), nil
}

// enumTypeDDL creates an enum type; labels are literals.
func enumTypeDDL(ident string, labels []string) string {
	return "CREATE TYPE " + ident + " AS ENUM (" + strings.Join(labels, ", ") + ")"
}

// compositeTypeDDL creates a composite type of attrs ("name type [COLLATE c]").
func compositeTypeDDL(ident string, attrs []string) string {
	return "CREATE TYPE " + ident + " AS (" + strings.Join(attrs, ", ") + ")"
}

// domainTypeDDL creates a domain: checks are its validated CHECK
// constraints ("name CHECK (...)"), later the others, which CREATE DOMAIN
// cannot take NOT VALID: they follow as ALTER DOMAIN in the same
// (multi-statement, so atomic) DDL.
func domainTypeDDL(ident, base, coll, def string, notNull bool, checks, later []string) string {
	ddl := "CREATE DOMAIN " + ident + " AS " + base
	if coll != "" {
		ddl += " COLLATE " + coll
	}
	if def != "" {
		ddl += " DEFAULT " + def
	}
	if notNull {
		ddl += " NOT NULL"
	}
	for _, c := range checks {
		ddl += " CONSTRAINT " + c
	}
	stmts := []string{ddl}
	for _, c := range later {
		stmts = append(stmts, "ALTER DOMAIN "+ident+" ADD CONSTRAINT "+c)
	}
	return strings.Join(stmts, "; ")
}

func (r *schemaReader) domainDDL(ctx context.Context, ti *typeInfo) (string, error) {
	var base, def, coll string
	var notNull bool
	err := r.q.QueryRow(ctx, `
		SELECT format_type(t.typbasetype, t.typtypmod), t.typnotnull, coalesce(pg_get_expr(t.typdefaultbin, 0), ''),
		       `+collationSQL("t.typcollation", "bt.typcollation")+`
		FROM pg_type t JOIN pg_type bt ON bt.oid = t.typbasetype
		WHERE t.oid = $1`, ti.oid).Scan(&base, &notNull, &def, &coll)
	if err != nil {
		return "", err
	}
	var checks, later []string
	err = eachCatalogRow(ctx, r.q, `
		SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
		WHERE contypid = $1 AND contype = 'c' ORDER BY conname`, []any{ti.oid},
		func(rows pgx.Rows) error {
			var name, cdef string
			var validated bool
			if err := rows.Scan(&name, &cdef, &validated); err != nil {
				return err
			}
			if validated {
				checks = append(checks, quoteIdentName(name)+" "+cdef)
			} else {
				later = append(later, quoteIdentName(name)+" "+cdef)
			}
			return nil
		})
	if err != nil {
		return "", err
	}
	return domainTypeDDL(typeIdent(ti), base, coll, def, notNull, checks, later), nil
}

func (r *schemaReader) compositeDDL(ctx context.Context, ti *typeInfo) (string, error) {
	var attrs []string
	err := eachCatalogRow(ctx, r.q, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), `+collationSQL("a.attcollation", "t.typcollation")+`
		FROM pg_type ct
		JOIN pg_attribute a ON a.attrelid = ct.typrelid
		JOIN pg_type t ON t.oid = a.atttypid
		WHERE ct.oid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, []any{ti.oid},
		func(rows pgx.Rows) error {
			var name, typ, coll string
			if err := rows.Scan(&name, &typ, &coll); err != nil {
				return err
			}
			attr := quoteIdentName(name) + " " + typ
			if coll != "" {
				attr += " COLLATE " + coll
			}
			attrs = append(attrs, attr)
			return nil
		})
	if err != nil {
		return "", err
	}
	return compositeTypeDDL(typeIdent(ti), attrs), nil
}

func (r *schemaReader) rangeDDL(ctx context.Context, ti *typeInfo) (string, error) {
	var (
		sub, opclass, coll, subdiff, mrSchema, mrName string
		opcDefault, subdiffBuiltin                    bool
		canonical                                     uint32
	)
	err := r.q.QueryRow(ctx, `
		SELECT format_type(r.rngsubtype, NULL), opc.opcdefault,
		       quote_ident(opn.nspname) || '.' || quote_ident(opc.opcname),
		       `+collationSQL("r.rngcollation", "st.typcollation")+`,
		       r.rngcanonical::oid,
		       coalesce(quote_ident(pn.nspname) || '.' || quote_ident(p.proname), ''),
		       coalesce(pn.nspname = 'pg_catalog', true),
		       mn.nspname, mt.typname
		FROM pg_range r
		JOIN pg_type st ON st.oid = r.rngsubtype
		JOIN pg_opclass opc ON opc.oid = r.rngsubopc
		JOIN pg_namespace opn ON opn.oid = opc.opcnamespace
		LEFT JOIN pg_proc p ON p.oid = r.rngsubdiff
		LEFT JOIN pg_namespace pn ON pn.oid = p.pronamespace
		JOIN pg_type mt ON mt.oid = r.rngmultitypid
		JOIN pg_namespace mn ON mn.oid = mt.typnamespace
		WHERE r.rngtypid = $1`, ti.oid).Scan(&sub, &opcDefault, &opclass, &coll, &canonical, &subdiff, &subdiffBuiltin, &mrSchema, &mrName)
	if err != nil {
		return "", err
	}
	if canonical != 0 {
		return "", errors.New("range types with a canonical function are not supported")
	}
	if !subdiffBuiltin {
		return "", fmt.Errorf("range types with a user-defined subtype_diff function (%s) are not supported", subdiff)
	}
	opts := []string{"SUBTYPE = " + sub}
	if !opcDefault {
		opts = append(opts, "SUBTYPE_OPCLASS = "+opclass)
	}
	if coll != "" {
		opts = append(opts, "COLLATION = "+coll)
	}
	if subdiff != "" {
		opts = append(opts, "SUBTYPE_DIFF = "+subdiff)
	}
	if mrSchema != ti.schema || mrName != defaultMultirangeName(ti.name) {
		opts = append(opts, "MULTIRANGE_TYPE_NAME = "+pgx.Identifier{mrSchema, mrName}.Sanitize())
	}
	return "CREATE TYPE " + typeIdent(ti) + " AS RANGE (" + strings.Join(opts, ", ") + ")", nil
}

// defaultMultirangeName is the name PostgreSQL gives a range's multirange
// type (makeMultirangeTypeName); naming it explicitly only when it differs
// keeps the DDL valid for servers before 14 whenever possible.
func defaultMultirangeName(rangeName string) string {
	if i := strings.Index(rangeName, "range"); i >= 0 {
		return rangeName[:i] + "multi" + rangeName[i:]
	}
	if len(rangeName) > 63-12 {
		rangeName = rangeName[:63-12]
	}
	return rangeName + "_multirange"
}

// readExtensionSchemas records where each extension lives: column types
// and operator classes are printed qualified with that schema, so the
// destination must install the extension there too.
func (r *schemaReader) readExtensionSchemas(ctx context.Context) error {
	if len(r.extensions) == 0 {
		return nil
	}
	r.extSchemas = map[string]string{}
	return eachCatalogRow(ctx, r.q, `
		SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = ANY($1::text[]) AND n.nspname <> 'pg_catalog'`, []any{sortedSet(r.extensions)},
		func(rows pgx.Rows) error {
			var ext, schema string
			if err := rows.Scan(&ext, &schema); err != nil {
				return err
			}
			r.extSchemas[ext] = schema
			r.schemas[schema] = true
			return nil
		})
}

// ReadTableDef reads one table's definition (name: a qualified, quoted
// table name), as the schema read and the DDL capture do; nil when there
// is no such table.
func ReadTableDef(ctx context.Context, q Querier, name string) (*proto.TableDef, error) {
	var def *proto.TableDef
	err := inCatalogScope(ctx, q, func(q Querier) error {
		var raw []byte
		err := q.QueryRow(ctx, `SELECT `+tableDefSQL+` FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = pg_catalog.to_regclass($1)`, name).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		def = &proto.TableDef{}
		return json.Unmarshal(raw, def)
	})
	if err != nil {
		return nil, fmt.Errorf("read the definition of %s: %w", name, err)
	}
	return def, nil
}
