package proto

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Schema is what schema sync reads from the source and creates at the
// destination, split into what must exist before the full load (types,
// sequences, tables with their keys) and what is cheaper after it
// (secondary indexes, foreign keys, sequence values).
type Schema struct {
	// Extensions the tables' types need (CREATE EXTENSION IF NOT EXISTS).
	Extensions []string `json:"extensions,omitempty"`
	// ExtensionSchemas is the schema each extension lives in at the
	// source, where the tables' DDL expects its objects; absent for
	// pg_catalog.
	ExtensionSchemas map[string]string `json:"extension_schemas,omitempty"`
	// Schemas to create, in order.
	Schemas []string `json:"schemas"`
	// Types (enums, domains, composites, ranges) in dependency order.
	Types     []TypeDef     `json:"types,omitempty"`
	Sequences []SequenceDef `json:"sequences,omitempty"`
	Tables    []TableDef    `json:"tables"`
	// Objects are the rest of a working copy (ObjectDef), in the order
	// they are created.
	Objects []ObjectDef `json:"objects,omitempty"`
}

// TypeDef is a user-defined type and the statement that creates it.
type TypeDef struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind: "enum", "domain", "composite", "range".
	Kind string `json:"kind"`
	// DDL creates the type (schema-qualified, quoted).
	DDL string `json:"ddl"`
}

// SequenceDef is a sequence with its current value.
type SequenceDef struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// DDL creates the sequence (without OWNED BY). It is empty for the
	// sequence of an identity column, which CREATE TABLE makes (see
	// ColumnDef.IdentityOptions); its value is still synced.
	DDL string `json:"ddl"`
	// OwnedBy is "schema.table.column" DDL suffix target, quoted, or "".
	OwnedBy   string `json:"owned_by,omitempty"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
}

// TableDef is a table's definition: what schema sync creates before the
// full load and after it, and what DDL sync compares before and after a
// schema change. It is one model for both, read from the source's catalog
// by one query (capture: the same SQL for the schema read and for the DDL
// capture's event trigger), and rendered by each destination in its own
// dialect (apply/postgres as PostgreSQL DDL, apply/kafka as schema-change
// messages). PostgreSQL's own text of each definition is kept beside its
// structure; the text names the source's columns.
type TableDef struct {
	ID  TableID `json:"id"`
	OID uint32  `json:"oid,omitempty"`
	// Columns in attnum order, dropped columns left out.
	Columns []ColumnDef `json:"columns"`
	// PrimaryKey column names, in key order; empty without one.
	PrimaryKey []string `json:"primary_key,omitempty"`
	// ReplicaIdentity is relreplident: 'd', 'f', 'i' or 'n';
	// IdentityIndex the index of 'i'.
	ReplicaIdentity Char   `json:"replica_identity"`
	IdentityIndex   string `json:"identity_index,omitempty"`
	// Constraints: primary key, unique, check, exclusion, foreign key
	// (NOT NULL is the columns').
	Constraints []ConstraintDef `json:"constraints,omitempty"`
	// Indexes that no constraint owns.
	Indexes []IndexDef `json:"indexes,omitempty"`
	// Sequences the column defaults use (DDL sync creates them before a
	// default that calls them).
	Sequences []TableID `json:"sequences,omitempty"`
	// Estimates for progress (schema read only).
	EstimatedRows  int64 `json:"estimated_rows,omitempty"`
	EstimatedBytes int64 `json:"estimated_bytes,omitempty"`
	// Partitioned: the source table is partitioned; it is synced through
	// its root (its changes and its copy are the root's), kept
	// partitioned or flattened into one plain table as the destination
	// chooses.
	Partitioned bool `json:"partitioned,omitempty"`
	// PartitionBy is a partitioned table's key, pg_get_partkeydef's text
	// ("RANGE (payment_date)"); Partitions its partitions, every level,
	// each after its parent (schema read only).
	PartitionBy string         `json:"partition_by,omitempty"`
	Partitions  []PartitionDef `json:"partitions,omitempty"`
}

// PartitionDef is one partition of a partitioned table, with what it has
// of its own: the constraints and indexes not inherited from its parent
// (a foreign key defined on one partition only).
type PartitionDef struct {
	ID     TableID `json:"id"`
	Parent TableID `json:"parent"`
	// Bound is pg_get_expr(relpartbound): "FOR VALUES FROM (...) TO
	// (...)", "FOR VALUES IN (...)", "DEFAULT".
	Bound string `json:"bound"`
	// PartitionBy is set for a partition partitioned in turn.
	PartitionBy string          `json:"partition_by,omitempty"`
	Constraints []ConstraintDef `json:"constraints,omitempty"`
	Indexes     []IndexDef      `json:"indexes,omitempty"`
}

// Char is a one-letter catalog code ('a', 'd', 'f', ...), written as a
// string in JSON; 0 is none.
type Char byte

// MarshalJSON writes the letter ("" for none).
func (c Char) MarshalJSON() ([]byte, error) {
	if c == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(string(rune(c)))
}

// UnmarshalJSON reads a one-letter string ("" for none).
func (c *Char) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch len(s) {
	case 0:
		*c = 0
	case 1:
		*c = Char(s[0])
	default:
		return fmt.Errorf("catalog code %q: one letter expected", s)
	}
	return nil
}

// ColumnDef is a column with its exact type.
type ColumnDef struct {
	// Num is attnum: it names the column across renames.
	Num  int    `json:"num"`
	Name string `json:"name"`
	// Type is format_type(atttypid, atttypmod): exact, schema-qualified when
	// it has to be ("numeric(12,2)", "public.mood[]").
	Type    string `json:"type"`
	TypeOID uint32 `json:"type_oid,omitempty"`
	NotNull bool   `json:"not_null,omitempty"`
	// Default expression, as pg_get_expr prints it; "" for none.
	Default string `json:"default,omitempty"`
	// Collation, quoted and schema-qualified, when not the type's default.
	Collation string `json:"collation,omitempty"`
	// Identity is attidentity: 'a' (always), 'd' (by default) or 0.
	Identity Char `json:"identity,omitempty"`
	// IdentityOptions go inside GENERATED ... AS IDENTITY ( ... ) and keep
	// the identity sequence's name and parameters ("SEQUENCE NAME ...
	// INCREMENT BY 1 ..."); "" when Identity is 0 (schema read only).
	IdentityOptions string `json:"identity_options,omitempty"`
	// Generated expression of a stored generated column. Such columns are
	// not replicated (pgoutput leaves them out) nor copied: the destination
	// computes them. Uses are the columns (attnums) it reads.
	Generated string `json:"generated,omitempty"`
	Uses      []int  `json:"uses,omitempty"`
}

// Constraint kinds (contype).
const (
	ConstraintPrimaryKey Char = 'p'
	ConstraintUnique     Char = 'u'
	ConstraintCheck      Char = 'c'
	ConstraintForeignKey Char = 'f'
	ConstraintExclusion  Char = 'x'
)

// ConstraintDef is a table constraint.
type ConstraintDef struct {
	Name string `json:"name"`
	Kind Char   `json:"kind"`
	// Def is pg_get_constraintdef's text ("PRIMARY KEY (id)", "CHECK
	// ((amount > (0)::numeric))", "FOREIGN KEY (a) REFERENCES s.t(id)
	// ON DELETE CASCADE").
	Def string `json:"def"`
	// Columns are the table's columns it uses (attnums): its key and
	// INCLUDE columns, a check's, a foreign key's own.
	Columns []int `json:"columns,omitempty"`
	// Validated is false for a constraint added NOT VALID.
	Validated bool `json:"validated,omitempty"`
	// References is a foreign key's target.
	References *Reference `json:"references,omitempty"`
	// Fingerprint is equal for two constraints that differ only in the
	// names of their columns or tables: it is taken from the catalog's
	// parse trees, which name columns by number ("" when unknown).
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Reference is a foreign key's columns and target, and the rest of its
// text.
type Reference struct {
	// From are the key's own columns, in key order.
	From    []string `json:"from"`
	Table   TableID  `json:"table"`
	Columns []string `json:"columns"`
	// Rest is the definition after the referenced columns: MATCH, ON
	// UPDATE, ON DELETE (its column list names own columns), DEFERRABLE,
	// NOT VALID.
	Rest string `json:"rest,omitempty"`
}

// IndexDef is an index no constraint owns.
type IndexDef struct {
	Name   string `json:"name"`
	Unique bool   `json:"unique,omitempty"`
	// Def is pg_get_indexdef's text from USING on: the method, the keys,
	// INCLUDE, WITH and WHERE ("btree (lower(email)) WHERE (active)").
	Def string `json:"def"`
	// Columns are the table's columns it uses (attnums): keys,
	// expressions, INCLUDE and predicate.
	Columns []int `json:"columns,omitempty"`
	// Fingerprint: as ConstraintDef's.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Column returns the column with attribute number num.
func (t *TableDef) Column(num int) (ColumnDef, bool) {
	for _, c := range t.Columns {
		if c.Num == num {
			return c, true
		}
	}
	return ColumnDef{}, false
}

// Constraint returns the constraint called name.
func (t *TableDef) Constraint(name string) (ConstraintDef, bool) {
	for _, c := range t.Constraints {
		if c.Name == name {
			return c, true
		}
	}
	return ConstraintDef{}, false
}

// Index returns the index called name.
func (t *TableDef) Index(name string) (IndexDef, bool) {
	for _, ix := range t.Indexes {
		if ix.Name == name {
			return ix, true
		}
	}
	return IndexDef{}, false
}

// KeepColumns narrows the table to the columns keep selects: the others,
// and the constraints and indexes that use any of them, are left out
// (objects[].columns).
func (t *TableDef) KeepColumns(keep func(name string) bool) {
	dropped := map[int]bool{}
	cols := t.Columns[:0]
	for _, c := range t.Columns {
		if keep(c.Name) {
			cols = append(cols, c)
		} else {
			dropped[c.Num] = true
		}
	}
	t.Columns = cols
	if len(dropped) == 0 {
		return
	}
	uses := func(nums []int) bool { return slices.ContainsFunc(nums, func(n int) bool { return dropped[n] }) }
	t.Constraints = slices.DeleteFunc(t.Constraints, func(c ConstraintDef) bool { return uses(c.Columns) })
	t.Indexes = slices.DeleteFunc(t.Indexes, func(ix IndexDef) bool { return uses(ix.Columns) })
	t.Columns = slices.DeleteFunc(t.Columns, func(c ColumnDef) bool { return uses(c.Uses) })
	if t.PrimaryKey != nil && !slices.ContainsFunc(t.Constraints, func(c ConstraintDef) bool { return c.Kind == ConstraintPrimaryKey }) {
		t.PrimaryKey = nil
	}
}

// FromClause reads the table's own rows (see ReadFrom).
func (t *TableDef) FromClause() string { return ReadFrom(t.ID, t.Partitioned) }

// ReadFrom is the FROM item that reads a table's own rows: ONLY for a
// plain table (not its inheritance children), the whole tree for a
// partitioned one.
func ReadFrom(t TableID, partitioned bool) string {
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	name := quote(t.Schema) + "." + quote(t.Name)
	if partitioned {
		return name
	}
	return "ONLY " + name
}

// Copied reports whether the column's values are copied and replicated.
func (c ColumnDef) Copied() bool { return c.Generated == "" }

// CopiedColumns lists the names of the columns full sync copies.
func (t *TableDef) CopiedColumns() []string {
	var names []string
	for _, c := range t.Columns {
		if c.Copied() {
			names = append(names, c.Name)
		}
	}
	return names
}

// CopiedTypes are the type OIDs of CopiedColumns, in their order.
func (t *TableDef) CopiedTypes() []uint32 {
	var oids []uint32
	for _, c := range t.Columns {
		if c.Copied() {
			oids = append(oids, c.TypeOID)
		}
	}
	return oids
}

// CopyFormat is how full-sync rows travel from the source's COPY TO to the
// sink.
type CopyFormat int

const (
	// CopyText is PostgreSQL's COPY text format: what every sink reads.
	CopyText CopyFormat = iota
	// CopyBinary is COPY's binary format: cheaper for both servers (no
	// parsing or escaping of values), for a PostgreSQL destination of the
	// same major version and tables of built-in types only (the binary form
	// of arrays and composites names their element types by OID).
	CopyBinary
)

// FirstUserOID is PostgreSQL's FirstNormalObjectId: types below it are
// built in, with the same OID in every database.
const FirstUserOID = 16384

// BuiltinTypesOnly reports whether every copied column has a built-in
// type.
func (t *TableDef) BuiltinTypesOnly() bool {
	for _, c := range t.Columns {
		if c.Copied() && c.TypeOID >= FirstUserOID {
			return false
		}
	}
	return true
}
