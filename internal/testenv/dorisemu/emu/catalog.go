package emu

import (
	"strings"
	"sync"
)

// Model is a Doris table's data model.
type Model uint8

const (
	ModelDuplicate Model = iota + 1
	ModelUnique
)

func (m Model) String() string {
	if m == ModelUnique {
		return "UNIQUE"
	}
	return "DUPLICATE"
}

// Names of the hidden columns, as Doris spells them.
const (
	colDeleteSign = "__DORIS_DELETE_SIGN__"
	colSequence   = "__DORIS_SEQUENCE_COL__"
	colRowID      = "__DORIS_ROW_ID__" // ours: keeps a Duplicate table's rows apart
	// sysSchema holds the emulator's own tables (load staging).
	sysSchema = "__dorisemu"
)

// Column is a Doris column as declared.
type Column struct {
	Name     string
	Type     Type
	Nullable bool
	// Default is the literal default, nil when none; DefaultExpr is
	// CURRENT_TIMESTAMP and the like, kept as written.
	Default     *string
	DefaultExpr string
	Comment     string
	Key         bool
}

// Table is the catalog's view of a Doris table: what the MariaDB schema
// cannot say (model, Doris types, properties, sequence mapping).
type Table struct {
	DB, Name string
	Model    Model
	Columns  []Column
	Comment  string
	// Distribution: hash columns, or Random; Buckets 0 means AUTO.
	DistCols []string
	Random   bool
	Buckets  int
	Props    []Property
	// SeqType is the hidden sequence column's type, nil without one;
	// SeqCol names the real column that feeds it, if any.
	SeqType *Type
	SeqCol  string
	dropped bool
}

// Property is one PROPERTIES entry, kept in declaration order.
type Property struct{ Key, Value string }

// Prop returns a property value or "".
func (t *Table) Prop(key string) string {
	for _, p := range t.Props {
		if strings.EqualFold(p.Key, key) {
			return p.Value
		}
	}
	return ""
}

func (t *Table) setProp(key, value string) {
	for i, p := range t.Props {
		if strings.EqualFold(p.Key, key) {
			t.Props[i].Value = value
			return
		}
	}
	t.Props = append(t.Props, Property{key, value})
}

// Column looks a column up; Doris column names are case-insensitive.
func (t *Table) Column(name string) (int, *Column) {
	for i := range t.Columns {
		if strings.EqualFold(t.Columns[i].Name, name) {
			return i, &t.Columns[i]
		}
	}
	return -1, nil
}

// Keys returns the key column names in order.
func (t *Table) Keys() []string {
	var ks []string
	for _, c := range t.Columns {
		if c.Key {
			ks = append(ks, c.Name)
		}
	}
	return ks
}

// baseSchema is the MariaDB schema keeping a Doris database's base tables;
// the database of the same name holds only the views SQL reads.
func baseSchema(db string) string { return "__base__" + db }

func (t *Table) base() string { return quoteIdent(baseSchema(t.DB)) + "." + quoteIdent(t.Name) }
func (t *Table) view() string { return quoteIdent(t.DB) + "." + quoteIdent(t.Name) }

// quoteIdent quotes a MariaDB identifier; the only place names are quoted.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// catalog is the in-memory metadata of every Doris database; it lives as
// long as the MariaDB it describes.
type catalog struct {
	mu  sync.RWMutex
	dbs map[string]map[string]*Table // db -> table name -> table
}

func newCatalog() *catalog { return &catalog{dbs: map[string]map[string]*Table{}} }

func (c *catalog) hasDB(db string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.dbs[db]
	return ok
}

// table returns a table or Doris's error for an unknown database or table.
func (c *catalog) table(db, name string) (*Table, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	tables, ok := c.dbs[db]
	if !ok {
		return nil, unknownDB(db)
	}
	t, ok := tables[name]
	if !ok {
		return nil, unknownTable(name)
	}
	return t, nil
}
