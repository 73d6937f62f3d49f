package proto

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// DDL sync: the task's event trigger in the source writes, for every
// schema change of a synced table, the table's shape before and after the
// change into a log table (sluice.ddl_log). Its insert travels in WAL
// order with the data, so the capture turns it into a DDLEvent on the
// table's subject, between the rows written before and after the change.
// The destination reconciles Old into New: a shape, not the statement's
// text, so renames, column selection and several statements in one query
// string need no SQL parser, and every destination can map it to its own
// dialect.

// DDLEvent is one schema change of one source table.
type DDLEvent struct {
	// Pos is the position of the log row: the change sits between the
	// table's rows below and above it.
	Pos Position `json:"pos"`
	// Tag is the command tag ("CREATE TABLE", "ALTER TABLE", "DROP TABLE",
	// "CREATE INDEX", ...); Query the statement as the client sent it
	// (for logs only: it may hold several statements).
	Tag   string `json:"tag"`
	Query string `json:"query,omitempty"`
	// Old is the table before the change (nil: it is new), New after it
	// (nil: it was dropped).
	Old *TableShape `json:"old,omitempty"`
	New *TableShape `json:"new,omitempty"`
	// WaitOnly marks the copy of a rename published on the table's new
	// subject, which another apply group may consume: that group waits
	// until the destination has the table under its new name and applies
	// nothing itself.
	WaitOnly bool `json:"wait_only,omitempty"`
}

// TableShape is what DDL sync keeps of a table: enough to create it and to
// tell one change from another.
type TableShape struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Columns in attribute-number order, dropped ones left out.
	Columns     []ShapeColumn     `json:"columns"`
	Constraints []ShapeConstraint `json:"constraints,omitempty"`
	// Indexes that no constraint owns.
	Indexes []ShapeIndex `json:"indexes,omitempty"`
	// Identity is relreplident: d (primary key), f (full), i (index), n.
	Identity string `json:"identity"`
	// Sequences the table's column defaults use (schema-qualified,
	// quoted), which must exist before those defaults can.
	Sequences []string `json:"sequences,omitempty"`
}

// ShapeColumn is a column; Num (attnum) identifies it across renames.
type ShapeColumn struct {
	Num     int    `json:"num"`
	Name    string `json:"name"`
	Type    string `json:"type"` // format_type, qualified where not in pg_catalog
	NotNull bool   `json:"not_null,omitempty"`
	Default string `json:"default,omitempty"` // pg_get_expr, qualified
	// Identity: "a" (ALWAYS), "d" (BY DEFAULT) or ""; Generated: "s"
	// (stored, Default holds the expression) or "".
	Identity  string `json:"identity,omitempty"`
	Generated string `json:"generated,omitempty"`
}

// ShapeConstraint is a table constraint as pg_get_constraintdef prints it.
// Type is contype: p, u, c, f, x.
type ShapeConstraint struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Def  string `json:"def"`
}

// ShapeIndex is an index as pg_get_indexdef prints it.
type ShapeIndex struct {
	Name string `json:"name"`
	Def  string `json:"def"`
}

// ID is the table the shape describes.
func (s *TableShape) ID() TableID { return TableID{Schema: s.Schema, Name: s.Name} }

// Column returns the column with attribute number num.
func (s *TableShape) Column(num int) (ShapeColumn, bool) {
	for _, c := range s.Columns {
		if c.Num == num {
			return c, true
		}
	}
	return ShapeColumn{}, false
}

// Table is the table the event is applied to: its name before the change,
// or after it for a new table.
func (e *DDLEvent) Table() TableID {
	if e.Old != nil {
		return e.Old.ID()
	}
	return e.New.ID()
}

// Renamed reports whether the change gave the table another name or schema.
func (e *DDLEvent) Renamed() bool {
	return e.Old != nil && e.New != nil && e.Old.ID() != e.New.ID()
}

// Operations lists the DDL operations the event makes, in DDLOperations
// order: what a destination that cannot apply a part of a change (a
// message) uses to tell whether sync.ddl_operations selects it. Columns are
// matched by number; constraints and indexes by name, and then by their
// definition as text, so a column rename that changes one's text counts as
// dropping and adding it too. An index's table name is not compared.
func (e *DDLEvent) Operations() []string {
	old, nw := e.Old, e.New
	switch {
	case old == nil && nw == nil:
		return nil
	case nw == nil:
		return []string{DDLDropTable}
	case old == nil:
		return []string{DDLCreateTable}
	}
	ops := map[string]bool{DDLRenameTable: e.Renamed(), DDLAlterColumn: old.Identity != nw.Identity}
	for _, oc := range old.Columns {
		nc, ok := nw.Column(oc.Num)
		if !ok {
			ops[DDLDropColumn] = true
			continue
		}
		if nc.Name != oc.Name {
			ops[DDLRenameColumn] = true
		}
		if nc.Type != oc.Type || nc.NotNull != oc.NotNull || nc.Default != oc.Default || nc.Identity != oc.Identity || nc.Generated != oc.Generated {
			ops[DDLAlterColumn] = true
		}
	}
	for _, nc := range nw.Columns {
		if _, ok := old.Column(nc.Num); !ok {
			ops[DDLAddColumn] = true
		}
	}
	constraint := func(sh *TableShape) map[string]string {
		m := map[string]string{}
		for _, c := range sh.Constraints {
			if c.Type != "n" { // NOT NULL is the column's
				m[c.Name] = c.Type + " " + c.Def
			}
		}
		return m
	}
	ops[DDLDropConstraint], ops[DDLAddConstraint] = differ(constraint(old), constraint(nw))
	index := func(sh *TableShape) map[string]string {
		m := map[string]string{}
		for _, ix := range sh.Indexes {
			// CREATE [UNIQUE] INDEX name ON table USING ...: the table's
			// name changes with a rename, the index does not.
			head, on, _ := strings.Cut(ix.Def, " ON ")
			_, using, _ := strings.Cut(on, " USING ")
			m[ix.Name] = fmt.Sprint(strings.HasPrefix(head, "CREATE UNIQUE "), strings.HasPrefix(on, "ONLY "), using)
		}
		return m
	}
	ops[DDLDropIndex], ops[DDLCreateIndex] = differ(index(old), index(nw))
	var out []string
	for _, op := range DDLOperations {
		if ops[op] {
			out = append(out, op)
		}
	}
	return out
}

// differ reports whether before has an entry that after lacks or holds
// otherwise (gone), and whether after has one that before lacks or holds
// otherwise (come).
func differ(before, after map[string]string) (gone, come bool) {
	for k, v := range before {
		if w, ok := after[k]; !ok || w != v {
			gone = true
		}
	}
	for k, v := range after {
		if w, ok := before[k]; !ok || w != v {
			come = true
		}
	}
	return gone, come
}

// EncodeDDL and DecodeDDL give a DDLEvent's form inside a Batch (JSON: a
// schema change is rare and small).
func EncodeDDL(e *DDLEvent) ([]byte, error) { return json.Marshal(e) }

// DecodeDDL parses what EncodeDDL wrote.
func DecodeDDL(b []byte) (*DDLEvent, error) {
	var e DDLEvent
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: DDL event: %v", ErrMalformed, err)
	}
	if e.Old == nil && e.New == nil {
		return nil, fmt.Errorf("%w: DDL event without a table", ErrMalformed)
	}
	return &e, nil
}

// DDL operations a task can select (sync.ddl_operations); all by default.
const (
	DDLCreateTable    = "create_table"
	DDLDropTable      = "drop_table"
	DDLRenameTable    = "rename_table"
	DDLAddColumn      = "add_column"
	DDLDropColumn     = "drop_column"
	DDLRenameColumn   = "rename_column"
	DDLAlterColumn    = "alter_column" // type, default, not null
	DDLAddConstraint  = "add_constraint"
	DDLDropConstraint = "drop_constraint"
	DDLCreateIndex    = "create_index"
	DDLDropIndex      = "drop_index"
)

// DDLOperations lists every DDL operation, in the order they are applied.
var DDLOperations = []string{
	DDLCreateTable, DDLDropTable, DDLRenameTable, DDLDropIndex, DDLDropConstraint,
	DDLDropColumn, DDLRenameColumn, DDLAddColumn, DDLAlterColumn, DDLAddConstraint, DDLCreateIndex,
}

// DDLOpSet is a set of DDL operations; nil holds all of them.
type DDLOpSet map[string]bool

// Has reports whether op is in the set.
func (s DDLOpSet) Has(op string) bool { return s == nil || s[op] }

// NewDDLOpSet builds a set from names, refusing unknown ones; an empty
// list means all.
func NewDDLOpSet(names []string) (DDLOpSet, error) {
	if len(names) == 0 {
		return nil, nil
	}
	s := DDLOpSet{}
	for _, n := range names {
		if !slices.Contains(DDLOperations, n) {
			return nil, fmt.Errorf("unknown DDL operation %q (one of %v)", n, DDLOperations)
		}
		s[n] = true
	}
	return s, nil
}
