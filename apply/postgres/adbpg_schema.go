package postgres

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// Schema sync at AnalyticDB for PostgreSQL (Greenplum). A table is
// created as at the source, with what Greenplum needs or cannot hold
// changed:
//
//   - rows are placed on segments by a distribution key: DISTRIBUTED BY
//     the table's objects[].distribution_key, else its primary key (else
//     its first unique key), else DISTRIBUTED RANDOMLY. Greenplum
//     enforces a primary or unique key only when it contains the
//     distribution key, so a key that does not is refused (naming the
//     field to set) rather than created unenforced;
//   - tables are heap tables, whatever the server's default storage:
//     append-optimized tables have no unique indexes, and the apply
//     updates and deletes single rows;
//   - no foreign keys (Greenplum does not enforce them) and no exclusion
//     constraints;
//   - identity columns are plain columns: their values are copied from
//     the source; generated columns are plain columns that the apply
//     fills from the source's expression (the source does not send
//     their values), marked by a comment that says so;
//   - types the server cannot hold are carried as text, in PostgreSQL's
//     text form of the value (adbpgType);
//   - partitioned tables are flattened into one table;
//   - only tables (and the types, sequences and extensions they need):
//     no views, routines, triggers, rules or comments, as the guide.

// adbpgSchema is sc as AnalyticDB creates it, refused when a table's
// distribution key is.
func (d *Dialect) adbpgSchema(sc *proto.Schema) (*proto.Schema, error) {
	var problems []string
	for i := range sc.Tables {
		if _, err := d.distribution(&sc.Tables[i]); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("schema sync at AnalyticDB: %s", strings.Join(problems, "; "))
	}
	return d.adbpgSchemaAsIs(sc), nil
}

// adbpgSchemaAsIs is sc as AnalyticDB creates it, distribution keys
// unchecked (for a plan, which shows the refusals beside).
func (d *Dialect) adbpgSchemaAsIs(sc *proto.Schema) *proto.Schema {
	out := *sc
	out.Tables = make([]proto.TableDef, len(sc.Tables))
	for i := range sc.Tables {
		out.Tables[i] = *d.adbpgTable(&sc.Tables[i])
	}
	// An identity column is a plain column here: its sequence, which
	// CREATE TABLE would have made, is not made.
	out.Sequences = slices.DeleteFunc(slices.Clone(sc.Sequences), func(s proto.SequenceDef) bool { return s.DDL == "" })
	// PostGIS's types are carried as text: its extension is not needed.
	out.Extensions = slices.DeleteFunc(slices.Clone(sc.Extensions), func(e string) bool { return strings.HasPrefix(e, "postgis") })
	out.Objects = nil
	return &out
}

// adbpgTable is table t as AnalyticDB creates it (a copy).
func (d *Dialect) adbpgTable(t *proto.TableDef) *proto.TableDef {
	c := cloneTable(t)
	dist, _ := d.distribution(t)
	var gen []generatedColumn
	for i := range c.Columns {
		col := &c.Columns[i]
		if typ, why := d.adbpgType(*col, slices.Contains(dist, col.Name)); why != "" {
			col.Type = typ
			col.Collation = "" // the source's collation was of another type
		}
		col.Identity, col.IdentityOptions = 0, ""
		if col.Generated != "" {
			gen = append(gen, generatedColumn{name: col.Name, expr: col.Generated})
			col.Generated, col.Uses = "", nil
		}
	}
	c.Constraints = slices.DeleteFunc(c.Constraints, func(k proto.ConstraintDef) bool {
		return k.Kind == proto.ConstraintForeignKey || k.Kind == proto.ConstraintExclusion
	})
	// Replica identity is a source's setting; a warehouse is no source.
	c.ReplicaIdentity, c.IdentityIndex = proto.IdentityDefault, ""
	// Greenplum 6 has no PostgreSQL-style partitions: one table.
	c.PartitionBy, c.Partitions = "", nil
	d.adbpg.setGenerated(t.ID, gen)
	return c
}

// adbpgTableSuffix is t's storage and distribution clauses.
func (d *Dialect) adbpgTableSuffix(t *proto.TableDef) string {
	var b strings.Builder
	switch {
	case !d.srv.greenplum && d.srv.version != 0:
		// A PostgreSQL server (the tests' stand-in): the clauses it takes.
		if d.srv.atLeast(120000) {
			b.WriteString(" USING heap")
		}
		return b.String()
	case d.srv.atLeast(120000):
		b.WriteString(" USING heap")
	default:
		b.WriteString(" WITH (appendonly=false)")
	}
	dist, _ := d.distribution(t)
	if len(dist) == 0 {
		b.WriteString(" DISTRIBUTED RANDOMLY")
		return b.String()
	}
	cols := make([]string, len(dist))
	for i, c := range dist {
		cols[i] = quoteDDLIdent(c)
	}
	b.WriteString(" DISTRIBUTED BY (" + strings.Join(cols, ", ") + ")")
	return b.String()
}

// distError is a distribution key the server cannot take, naming the
// spec's field to change and how.
type distError struct {
	Table proto.TableID
	Field string
	Msg   string
	Fix   string
}

func (e *distError) Error() string { return e.Field + ": " + e.Msg }

// uniqueKey is a primary or unique key (constraint or index) of a table.
type uniqueKey struct {
	name    string
	primary bool
	cols    []string
	// exprs: the key has expressions besides its columns.
	exprs bool
}

func (k uniqueKey) String() string {
	cols := strings.Join(k.cols, ", ")
	if k.exprs {
		cols += ", expressions"
	}
	return fmt.Sprintf("%s (%s)", k.name, cols)
}

// uniqueKeys are t's primary key (first) and unique keys.
func uniqueKeys(t *proto.TableDef) []uniqueKey {
	var out []uniqueKey
	for _, k := range t.Constraints {
		if k.Kind != proto.ConstraintPrimaryKey && k.Kind != proto.ConstraintUnique {
			continue
		}
		uk := uniqueKey{name: k.Name, primary: k.Kind == proto.ConstraintPrimaryKey}
		if elems, ok := firstList(k.Def); ok {
			uk.cols, uk.exprs = listColumns(elems)
		}
		if k.Kind == proto.ConstraintPrimaryKey {
			if len(t.PrimaryKey) > 0 {
				uk.cols, uk.exprs = t.PrimaryKey, false
			}
			out = append([]uniqueKey{uk}, out...)
			continue
		}
		out = append(out, uk)
	}
	for _, ix := range t.Indexes {
		if !ix.Unique {
			continue
		}
		uk := uniqueKey{name: ix.Name, exprs: true}
		if elems, ok := firstList(ix.Def); ok {
			uk.cols, uk.exprs = listColumns(elems)
		}
		out = append(out, uk)
	}
	return out
}

// distribution is t's distribution key (source column names; nil for
// DISTRIBUTED RANDOMLY). It errs when the key is not inside every
// primary and unique key, returning the key all the same.
func (d *Dialect) distribution(t *proto.TableDef) ([]string, error) {
	keys := uniqueKeys(t)
	field, chosen := d.adbpg.field(t.ID)
	cols := d.adbpg.keys[t.ID]
	var dist []string
	what := "the distribution key"
	switch {
	case chosen:
		dist = cols
		for _, c := range cols {
			col, ok := columnNamed(t, c)
			switch {
			case !ok:
				return dist, &distError{Table: t.ID, Field: field, Msg: fmt.Sprintf("%s has no column %q", t.ID, c), Fix: d.adbpg.fixFor(t, keys)}
			case col.Generated != "":
				return dist, &distError{Table: t.ID, Field: field, Msg: fmt.Sprintf("%q is a generated column of %s: its values are computed after each write, and a distribution key never changes in place", c, t.ID),
					Fix: d.adbpg.fixFor(t, keys)}
			}
		}
	case len(keys) == 0:
		return nil, nil
	default:
		dist = keys[0].cols
		what = "its primary key " + keys[0].String()
		if !keys[0].primary {
			what = "its first unique key " + keys[0].String()
		}
		field = d.adbpg.defaultField(t.ID)
		if len(dist) == 0 {
			return nil, &distError{Table: t.ID, Field: field, Msg: fmt.Sprintf("%s has no plain column to distribute %s by (Greenplum enforces a unique key only when it contains the distribution key)", what, t.ID),
				Fix: d.adbpg.fixFor(t, keys)}
		}
		for _, c := range dist {
			if col, ok := columnNamed(t, c); ok && col.Generated != "" {
				return dist, &distError{Table: t.ID, Field: field, Msg: fmt.Sprintf("%s, the default distribution key, has the generated column %q, whose values are computed after each write; a distribution key never changes in place", what, c),
					Fix: d.adbpg.fixFor(t, keys)}
			}
		}
	}
	for _, k := range keys {
		if !subset(dist, k.cols) {
			return dist, &distError{Table: t.ID, Field: field,
				Msg: fmt.Sprintf("%s of %s is not inside its key %s: Greenplum enforces a primary or unique key only when it contains the distribution key", distText(what, dist), t.ID, k),
				Fix: d.adbpg.fixFor(t, keys)}
		}
	}
	return dist, nil
}

func distText(what string, cols []string) string {
	if what == "the distribution key" {
		return what + " (" + strings.Join(cols, ", ") + ")"
	}
	return what
}

// fixFor says which distribution keys t could have.
func (a *adbpgSettings) fixFor(t *proto.TableDef, keys []uniqueKey) string {
	field := a.defaultField(t.ID)
	if f, ok := a.field(t.ID); ok {
		field = f
	}
	if len(keys) == 0 {
		return fmt.Sprintf("set %s to columns of %s (or leave it out: the table has no key, and its rows are distributed randomly)", field, t.ID)
	}
	common := slices.Clone(keys[0].cols)
	for _, k := range keys[1:] {
		common = slices.DeleteFunc(common, func(c string) bool { return !slices.Contains(k.cols, c) })
	}
	common = slices.DeleteFunc(common, func(c string) bool { col, _ := columnNamed(t, c); return col.Generated != "" })
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.String()
	}
	if len(common) == 0 {
		return fmt.Sprintf("no column is in every key of %s (%s), so Greenplum cannot enforce them all: leave the table out, or drop all but one of those keys at the source",
			t.ID, strings.Join(names, "; "))
	}
	return fmt.Sprintf("set %s to columns that every key of %s contains (%s), such as [%s]", field, t.ID, strings.Join(names, "; "), strings.Join(common, ", "))
}

func subset(a, b []string) bool {
	for _, c := range a {
		if !slices.Contains(b, c) {
			return false
		}
	}
	return true
}

func columnNamed(t *proto.TableDef, name string) (proto.ColumnDef, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return proto.ColumnDef{}, false
}

// Types at AnalyticDB. Greenplum 6 is PostgreSQL 9.4 and Greenplum 7
// PostgreSQL 12: a type PostgreSQL added later is carried as text there.
// PostGIS's types are carried as text (its EWKB hex form; ST_GeomFromEWKB
// (decode(col, 'hex')) reads it back where PostGIS is installed), so a
// warehouse without PostGIS takes them. The other types of the guide's
// list (bit, varbit, uuid, tsvector, tsquery, txid_snapshot) are
// Greenplum's own and are kept, except that a distribution key column
// whose type Greenplum cannot hash is carried as text.

// newerTypes are built-in types (and their arrays) by OID, with the
// server_version_num that brought them.
var newerTypes = map[uint32]int{
	774: 100000, 775: 100000, // macaddr8
	4072: 120000, 4073: 120000, // jsonpath
	5038: 130000, 5039: 130000, // pg_snapshot
	5069: 130000, 271: 130000, // xid8
	4451: 140000, 6150: 140000, // int4multirange
	4532: 140000, 6151: 140000, // nummultirange
	4533: 140000, 6152: 140000, // tsmultirange
	4534: 140000, 6153: 140000, // tstzmultirange
	4535: 140000, 6155: 140000, // datemultirange
	4536: 140000, 6157: 140000, // int8multirange
}

// unhashable are built-in types without a hash operator class: Greenplum
// cannot place rows by them.
var unhashable = map[uint32]string{
	1560: "bit", 1562: "bit varying", 3614: "tsvector", 3615: "tsquery", 2970: "txid_snapshot", 790: "money",
	600: "point", 601: "lseg", 602: "path", 603: "box", 604: "polygon", 628: "line", 718: "circle", 114: "json", 142: "xml",
}

// postgisTypes are PostGIS's column types, by name.
var postgisTypes = map[string]bool{"geometry": true, "geography": true, "box2d": true, "box3d": true, "raster": true}

// adbpgType is column c's type at AnalyticDB, and why it is not the
// source's ("" when it is).
func (d *Dialect) adbpgType(c proto.ColumnDef, inDist bool) (string, string) {
	name, dims := baseTypeName(c.Type)
	text := "text" + strings.Repeat("[]", dims)
	switch {
	case postgisTypes[name]:
		return text, "PostGIS type, carried as text (EWKB hex)"
	case newerTypes[c.TypeOID] != 0 && !d.srv.atLeast(newerTypes[c.TypeOID]):
		return text, fmt.Sprintf("a type of PostgreSQL %d, newer than the server", newerTypes[c.TypeOID]/10000)
	case inDist && unhashable[c.TypeOID] != "":
		return "text", fmt.Sprintf("a distribution key column, and Greenplum cannot hash %s", unhashable[c.TypeOID])
	}
	return c.Type, ""
}

// generatedColumn is a column the source computes, and its expression
// (the source's text, naming the source's columns).
type generatedColumn struct {
	name, expr string
}

// generatedMark begins the comment that marks a column the apply fills.
const generatedMark = "sluice: generated as "

// generatedMarks mark t's generated columns, which the apply fills from
// their expressions (noconflict.go: fillGenerated): the mark lives with
// the column, through renames, where every sink of the task reads it.
func (d *Dialect) generatedMarks(t *proto.TableDef) []ddlStep {
	var out []ddlStep
	for _, g := range d.adbpg.generatedOf(t.ID) {
		out = append(out, step("mark generated column "+quoteDDLIdent(g.name)+" of "+t.ID.String(),
			"COMMENT ON COLUMN "+pgx.Identifier{t.ID.Schema, t.ID.Name, g.name}.Sanitize()+" IS "+quoteLiteral(generatedMark+g.expr)))
	}
	return out
}

// gp6Statement rewrites the IF NOT EXISTS forms that came after
// PostgreSQL 9.4 (and so after Greenplum 6) into blocks that check
// first, and drops CREATE SEQUENCE's AS (PostgreSQL 10). Only statements
// Sluice renders itself reach it, in the shapes it renders them.
func (d *Dialect) gp6Statement(sql string) string {
	if d.srv.atLeast(100000) {
		return sql
	}
	for _, head := range []string{"CREATE INDEX IF NOT EXISTS ", "CREATE UNIQUE INDEX IF NOT EXISTS "} {
		rest, ok := strings.CutPrefix(sql, head)
		if !ok {
			continue
		}
		name, after, ok := cutIdent(rest)
		if !ok {
			return sql
		}
		on, ok := strings.CutPrefix(after, " ON ")
		if !ok {
			return sql
		}
		schema, _, ok := cutIdent(on)
		if !ok {
			return sql
		}
		create := strings.TrimSuffix(head, "IF NOT EXISTS ") + rest
		return guarded(pgx.Identifier{schema, name}.Sanitize(), create)
	}
	if rest, ok := strings.CutPrefix(sql, "CREATE SEQUENCE IF NOT EXISTS "); ok {
		schema, after, ok1 := cutIdent(rest)
		dot, ok2 := strings.CutPrefix(after, ".")
		name, params, ok3 := cutIdent(dot)
		if !ok1 || !ok2 || !ok3 {
			return sql
		}
		if as, ok := strings.CutPrefix(params, " AS "); ok {
			// "AS bigint INCREMENT BY ...": the options follow the type.
			if _, opts, ok := strings.Cut(as, " "); ok {
				params = " " + opts
			} else {
				params = ""
			}
		}
		ident := pgx.Identifier{schema, name}.Sanitize()
		return guarded(ident, "CREATE SEQUENCE "+ident+params)
	}
	if before, after, ok := strings.Cut(sql, " ADD COLUMN IF NOT EXISTS "); ok && strings.HasPrefix(sql, "ALTER TABLE ") {
		// DDL sync adds a column once, by position: the guard is a
		// second line of defence that Greenplum 6 does not have.
		return before + " ADD COLUMN " + after
	}
	return sql
}

// guarded runs create unless a relation named ident exists.
func guarded(ident, create string) string {
	body := "BEGIN IF to_regclass(" + quoteLiteral(ident) + ") IS NULL THEN " + create + "; END IF; END"
	return "DO " + quoteLiteral(body)
}

// cutIdent reads one double-quoted identifier (as pgx.Identifier writes
// them) from the start of s: its name and the rest of s.
func cutIdent(s string) (name, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], true
	}
	return "", s, false
}

// firstList is the elements of the first parenthesised list of a
// definition ("PRIMARY KEY (a, b)", "btree (a, lower(b)) WHERE ..."),
// split at its top-level commas.
func firstList(def string) ([]string, bool) {
	start, end, ok := firstListSpan(def)
	if !ok {
		return nil, false
	}
	return splitTopLevel(def[start+1 : end]), true
}

// scanTopLevel calls visit for each byte of s outside double-quoted
// identifiers and string literals, with the parenthesis depth it is at
// (an opening parenthesis at the depth before it, a closing one at the
// depth after it), until visit returns false.
func scanTopLevel(s string, visit func(i int, ch byte, depth int) bool) {
	depth := 0
	inQuote, inString := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inQuote:
			inQuote = ch != '"'
			continue
		case inString:
			inString = ch != '\''
			continue
		case ch == '"':
			inQuote = true
			continue
		case ch == '\'':
			inString = true
			continue
		case ch == ')':
			depth--
		}
		if !visit(i, ch, depth) {
			return
		}
		if ch == '(' {
			depth++
		}
	}
}

// firstListSpan finds the first top-level parenthesised list of def: the
// offsets of its parentheses.
func firstListSpan(def string) (start, end int, ok bool) {
	start = -1
	scanTopLevel(def, func(i int, ch byte, depth int) bool {
		switch {
		case ch == '(' && depth == 0:
			start = i
		case ch == ')' && depth == 0 && start >= 0:
			end, ok = i, true
			return false
		}
		return true
	})
	if !ok {
		return 0, 0, false
	}
	return start, end, true
}

// splitTopLevel splits s at commas outside parentheses, quotes and
// string literals, trimming each part.
func splitTopLevel(s string) []string {
	var out []string
	last := 0
	scanTopLevel(s, func(i int, ch byte, depth int) bool {
		if ch == ',' && depth == 0 {
			out = append(out, strings.TrimSpace(s[last:i]))
			last = i + 1
		}
		return true
	})
	return append(out, strings.TrimSpace(s[last:]))
}

// leadingIdent reads the identifier an element of a key or index list
// starts with, as PostgreSQL prints it (double-quoted when it must be),
// and what follows it.
func leadingIdent(elem string) (name, rest string, ok bool) {
	if strings.HasPrefix(elem, `"`) {
		return cutIdent(elem)
	}
	i := 0
	for i < len(elem) {
		ch := elem[i]
		if ch == '_' || (ch >= 'a' && ch <= 'z') || (i > 0 && (ch >= '0' && ch <= '9' || ch == '$')) || ch >= 0x80 {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return "", elem, false
	}
	return elem[:i], elem[i:], true
}

// listColumns reads a key's or index's elements: the plain columns, and
// whether any element is an expression.
func listColumns(elems []string) (cols []string, exprs bool) {
	for _, e := range elems {
		name, rest, ok := leadingIdent(e)
		if !ok || strings.HasPrefix(strings.TrimSpace(rest), "(") || (rest != "" && !strings.HasPrefix(rest, " ")) {
			exprs = true
			continue
		}
		cols = append(cols, name)
	}
	return cols, exprs
}
