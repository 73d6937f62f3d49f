package doris

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// The extra columns of a Duplicate-model table: every change is a row of
// its own, and these say what it was (the guide's "additional columns").
const (
	colIsDeleted = "_is_deleted" // 1 for a DELETE
	colVersion   = "_version"    // the source commit time in seconds; 0 in full sync
	colRecordID  = "_record_id"  // the change's id, increasing per table; 0 in full sync
)

// Load-only columns of a Unique-model table's loads: the delete flag
// (merge_type MERGE) and the sequence (function_column.sequence_col).
const (
	loadOp  = "__sluice_op"
	loadSeq = "__sluice_seq"
)

// sequenceType is the type of the hidden sequence column of the Unique
// tables Sluice creates: a position (commit LSN, index) needs 96 bits.
const sequenceType = "LARGEINT"

// quote quotes a Doris identifier.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// quoteString quotes a string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// tableInfo is what the sink knows of a Doris table.
type tableInfo struct {
	name   string
	model  string // "unique", "duplicate" (or "aggregate", refused)
	keys   []string
	cols   []string // in order
	types  map[string]string
	hasSeq bool   // a hidden sequence column (function_column.sequence_type)
	seqCol string // or a real column mapped as the sequence
	light  bool   // light_schema_change
	extras bool   // the Duplicate extra columns are there
}

var (
	modelRe    = regexp.MustCompile("(?i)\\b(UNIQUE|DUPLICATE|AGGREGATE)\\s+KEY\\s*\\(([^)]*)\\)")
	columnRe   = regexp.MustCompile("(?m)^\\s*`((?:[^`]|``)+)`\\s+([A-Za-z0-9_]+(?:\\s*\\([^)]*\\))?)")
	seqTypeRe  = regexp.MustCompile(`(?i)"function_column\.sequence_type"\s*=\s*"([^"]+)"`)
	seqColRe   = regexp.MustCompile(`(?i)"function_column\.sequence_col"\s*=\s*"([^"]+)"`)
	lightRe    = regexp.MustCompile(`(?i)"light_schema_change"\s*=\s*"([^"]+)"`)
	identRe    = regexp.MustCompile("`((?:[^`]|``)+)`|([A-Za-z0-9_]+)")
	createHead = regexp.MustCompile(`(?is)^\s*CREATE\s+TABLE[^(]*\(`)
)

// parseCreateTable reads SHOW CREATE TABLE's statement.
func parseCreateTable(name, ddl string) (*tableInfo, error) {
	info := &tableInfo{name: name, types: map[string]string{}, light: true}
	head := createHead.FindStringIndex(ddl)
	m := modelRe.FindStringSubmatchIndex(ddl)
	if head == nil || m == nil {
		return nil, fmt.Errorf("doris: table %s: cannot read its model and key from SHOW CREATE TABLE", name)
	}
	info.model = strings.ToLower(ddl[m[2]:m[3]])
	for _, id := range identRe.FindAllStringSubmatch(ddl[m[4]:m[5]], -1) {
		info.keys = append(info.keys, unquote(id))
	}
	for _, c := range columnRe.FindAllStringSubmatch(ddl[head[1]:m[0]], -1) {
		col := strings.ReplaceAll(c[1], "``", "`")
		info.cols = append(info.cols, col)
		info.types[col] = strings.ToUpper(strings.Join(strings.Fields(c[2]), ""))
	}
	if s := seqTypeRe.FindStringSubmatch(ddl); s != nil {
		info.hasSeq = true
	}
	if s := seqColRe.FindStringSubmatch(ddl); s != nil {
		info.seqCol = s[1]
	}
	if s := lightRe.FindStringSubmatch(ddl); s != nil {
		info.light = strings.EqualFold(s[1], "true")
	}
	info.extras = slices.Contains(info.cols, colIsDeleted) && slices.Contains(info.cols, colVersion) && slices.Contains(info.cols, colRecordID)
	return info, nil
}

func unquote(m []string) string {
	if m[1] != "" {
		return strings.ReplaceAll(m[1], "``", "`")
	}
	return m[2]
}

// describe reads a table's model, keys and columns; nil when the
// database has no such table.
func (s *Sink) describe(ctx context.Context, table string) (*tableInfo, error) {
	res, err := s.c.query(ctx, "SHOW CREATE TABLE "+quote(s.c.db)+"."+quote(table))
	if err != nil {
		if isUnknownTable(err) {
			return nil, nil
		}
		return nil, err
	}
	if len(res.rows) == 0 {
		return nil, nil
	}
	ddl := res.col(0, "Create Table")
	if ddl == "" && len(res.rows[0]) > 1 && res.rows[0][1] != nil {
		ddl = *res.rows[0][1]
	}
	return parseCreateTable(table, ddl)
}

// isUnknownTable: Doris says the table does not exist.
func isUnknownTable(err error) bool {
	var se *SQLError
	if !asSQLError(err, &se) {
		return false
	}
	m := strings.ToLower(se.Msg)
	return strings.Contains(m, "unknown table") || strings.Contains(m, "does not exist") || strings.Contains(m, "not exist")
}

// tableSpec is a source table as Sluice creates it in Doris.
type tableSpec struct {
	name    string
	model   string
	keys    []string
	cols    []colSpec
	distKey []string
	buckets int
}

type colSpec struct {
	name, typ string
	notNull   bool
	def       string // a literal default, "" for none
}

// planTable maps a source table to the Doris table schema sync creates:
// key columns first (Doris's rule), the Duplicate model's extra columns
// last. names gives the destination's names.
func planTable(def *proto.TableDef, destName string, colName func(string) string, opts tableOptions) (*tableSpec, error) {
	model := opts.engine
	if model == "" {
		model = EngineUnique
		if len(def.PrimaryKey) == 0 {
			model = EngineDuplicate
		}
	}
	if model == EngineUnique && len(def.PrimaryKey) == 0 {
		return nil, fmt.Errorf("table %s has no primary key: a Doris Unique table needs one; set objects[].engine.%s: duplicate", def.ID, def.ID.Name)
	}
	ts := &tableSpec{name: destName, model: model, buckets: opts.buckets}
	isKey := map[string]bool{}
	for _, k := range def.PrimaryKey {
		isKey[k] = true
	}
	var keyCols, rest []colSpec
	for _, c := range def.Columns {
		if c.Generated != "" {
			continue
		}
		typ, _ := dorisType(c.TypeOID, c.Type, isKey[c.Name])
		cs := colSpec{name: colName(c.Name), typ: typ, notNull: isKey[c.Name]}
		if isKey[c.Name] {
			keyCols = append(keyCols, cs)
		} else {
			rest = append(rest, cs)
		}
	}
	// Key columns in the key's order.
	slices.SortStableFunc(keyCols, func(a, b colSpec) int {
		return slices.Index(def.PrimaryKey, srcName(def, a.name, colName)) - slices.Index(def.PrimaryKey, srcName(def, b.name, colName))
	})
	for _, k := range keyCols {
		ts.keys = append(ts.keys, k.name)
	}
	ts.cols = append(keyCols, rest...)
	if model == EngineDuplicate {
		ts.cols = append(ts.cols,
			colSpec{name: colIsDeleted, typ: "INT", def: "0"},
			colSpec{name: colVersion, typ: "BIGINT", def: "0"},
			colSpec{name: colRecordID, typ: "BIGINT", def: "0"})
		if len(ts.keys) == 0 {
			// A keyless table sorts by its first column that can be a key,
			// else by the change id (moved first: key columns lead).
			i := slices.IndexFunc(ts.cols, func(c colSpec) bool { return keyable(c.typ) })
			if i < 0 || ts.cols[i].name == colIsDeleted || ts.cols[i].name == colVersion {
				i = len(ts.cols) - 1
			}
			first := ts.cols[i]
			ts.cols = append([]colSpec{first}, slices.Delete(slices.Clone(ts.cols), i, i+1)...)
			ts.keys = []string{first.name}
		}
	}
	ts.distKey = ts.keys
	if len(opts.distKey) > 0 {
		ts.distKey = nil
		for _, c := range opts.distKey {
			name := colName(c)
			if model == EngineUnique && !slices.Contains(ts.keys, name) {
				return nil, fmt.Errorf("table %s: distribution_key column %s is not part of the unique key (%s)", def.ID, c, strings.Join(ts.keys, ", "))
			}
			if !slices.ContainsFunc(ts.cols, func(cs colSpec) bool { return cs.name == name }) {
				return nil, fmt.Errorf("table %s: distribution_key names %s, which it has no column of", def.ID, c)
			}
			ts.distKey = append(ts.distKey, name)
		}
	}
	for _, k := range ts.keys {
		i := slices.IndexFunc(ts.cols, func(cs colSpec) bool { return cs.name == k })
		if !keyable(ts.cols[i].typ) {
			return nil, fmt.Errorf("table %s: key column %s is %s in Doris, which cannot be a key", def.ID, k, ts.cols[i].typ)
		}
	}
	return ts, nil
}

func srcName(def *proto.TableDef, dest string, colName func(string) string) string {
	for _, c := range def.Columns {
		if colName(c.Name) == dest {
			return c.Name
		}
	}
	return dest
}

// createSQL renders the CREATE TABLE of a table spec.
func (ts *tableSpec) createSQL(replicationNum int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", quote(ts.name))
	for i, c := range ts.cols {
		fmt.Fprintf(&b, "  %s %s", quote(c.name), c.typ)
		if c.notNull {
			b.WriteString(" NOT NULL")
		} else {
			b.WriteString(" NULL")
		}
		if c.def != "" {
			fmt.Fprintf(&b, " DEFAULT %q", c.def)
		}
		if i < len(ts.cols)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	quoted := func(names []string) string {
		q := make([]string, len(names))
		for i, n := range names {
			q[i] = quote(n)
		}
		return strings.Join(q, ", ")
	}
	fmt.Fprintf(&b, ") %s KEY(%s)\n", strings.ToUpper(ts.model), quoted(ts.keys))
	buckets := "AUTO"
	if ts.buckets > 0 {
		buckets = fmt.Sprint(ts.buckets)
	}
	fmt.Fprintf(&b, "DISTRIBUTED BY HASH(%s) BUCKETS %s\n", quoted(ts.distKey), buckets)
	props := [][2]string{}
	if replicationNum > 0 {
		props = append(props, [2]string{"replication_num", fmt.Sprint(replicationNum)})
	}
	props = append(props, [2]string{"light_schema_change", "true"})
	if ts.model == EngineUnique {
		props = append(props, [2]string{"enable_unique_key_merge_on_write", "true"},
			[2]string{"function_column.sequence_type", sequenceType})
	}
	b.WriteString("PROPERTIES (\n")
	for i, p := range props {
		fmt.Fprintf(&b, "  %q = %q", p[0], p[1])
		if i < len(props)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(")")
	return b.String()
}
