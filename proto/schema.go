package proto

import "strings"

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

// TableDef is a table to sync.
type TableDef struct {
	ID  TableID `json:"id"`
	OID uint32  `json:"oid"`
	// Columns in attnum order, dropped columns left out.
	Columns []ColumnDef `json:"columns"`
	// PrimaryKey column names, in key order; empty without one.
	PrimaryKey []string `json:"primary_key,omitempty"`
	// ReplicaIdentity is relreplident: 'd', 'f', 'i' or 'n'.
	ReplicaIdentity byte `json:"replica_identity"`
	// PreData constraints created with the table: primary key, unique,
	// check, NOT NULL is on the columns. Each is "CONSTRAINT name <def>".
	Constraints []string `json:"constraints,omitempty"`
	// PostData statements run after the full load: secondary indexes,
	// exclusion constraints, foreign keys (only to synced tables).
	Indexes     []string `json:"indexes,omitempty"`
	ForeignKeys []string `json:"foreign_keys,omitempty"`
	// Estimates for progress.
	EstimatedRows  int64 `json:"estimated_rows"`
	EstimatedBytes int64 `json:"estimated_bytes"`
	// Partitioned: the source table is partitioned; it is synced through
	// its root, as one plain table at the destination.
	Partitioned bool `json:"partitioned,omitempty"`
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

// ColumnDef is a column with its exact type.
type ColumnDef struct {
	Name string `json:"name"`
	// Type is format_type(atttypid, atttypmod): exact, schema-qualified when
	// it has to be ("numeric(12,2)", "public.mood[]").
	Type    string `json:"type"`
	TypeOID uint32 `json:"type_oid"`
	NotNull bool   `json:"not_null,omitempty"`
	// Default expression, as pg_get_expr prints it; "" for none.
	Default string `json:"default,omitempty"`
	// Collation, quoted and schema-qualified, when not the type's default.
	Collation string `json:"collation,omitempty"`
	// Identity is attidentity: 'a' (always), 'd' (by default) or 0.
	Identity byte `json:"identity,omitempty"`
	// IdentityOptions go inside GENERATED ... AS IDENTITY ( ... ) and keep
	// the identity sequence's name and parameters ("SEQUENCE NAME ...
	// INCREMENT BY 1 ..."); "" when Identity is 0.
	IdentityOptions string `json:"identity_options,omitempty"`
	// Generated expression of a stored generated column. Such columns are
	// not replicated (pgoutput leaves them out) nor copied: the destination
	// computes them.
	Generated string `json:"generated,omitempty"`
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
