package proto

import (
	"encoding/json"
	"fmt"
	"slices"
)

// DDL sync: the task's event trigger in the source writes, for every
// schema change of a synced table, the table's shape before and after the
// change as a transactional logical decoding message (an older Sluice
// inserted it into a log table, sluice.ddl_log). It travels in WAL
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
	Old *TableDef `json:"old,omitempty"`
	New *TableDef `json:"new,omitempty"`
	// WaitOnly marks the copy of a rename published on the table's new
	// subject, which another apply group may consume: that group waits
	// until the destination has the table under its new name and applies
	// nothing itself.
	WaitOnly bool `json:"wait_only,omitempty"`
}

// Table is the table the event is applied to: its name before the change,
// or after it for a new table.
func (e *DDLEvent) Table() TableID {
	if e.Old != nil {
		return e.Old.ID
	}
	return e.New.ID
}

// Renamed reports whether the change gave the table another name or schema.
func (e *DDLEvent) Renamed() bool {
	return e.Old != nil && e.New != nil && e.Old.ID != e.New.ID
}

// Operations lists the DDL operations the event makes, in DDLOperations
// order: what a destination that cannot apply a part of a change (a
// message) uses to tell whether sync.ddl_operations selects it.
func (e *DDLEvent) Operations() []string {
	seen := map[string]bool{}
	for _, c := range e.Changes() {
		seen[c.Kind.Operation()] = true
	}
	var out []string
	for _, op := range DDLOperations {
		if seen[op] {
			out = append(out, op)
		}
	}
	return out
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
	// A partition added to a synced partitioned table (created or
	// attached), or gone from it (dropped or detached).
	DDLAttachPartition = "attach_partition"
	DDLDetachPartition = "detach_partition"
	// An object of a working copy beside tables (a view, function,
	// trigger, rule, type, comment: ObjectEvent) created, replaced or
	// renamed, or dropped.
	DDLCreateObject = "create_object"
	DDLDropObject   = "drop_object"
)

// DDLOperations lists every DDL operation, in the order they are applied.
var DDLOperations = []string{
	DDLCreateTable, DDLDropTable, DDLRenameTable, DDLDropIndex, DDLDropConstraint,
	DDLDropColumn, DDLRenameColumn, DDLAddColumn, DDLAlterColumn, DDLAddConstraint, DDLCreateIndex,
	DDLDetachPartition, DDLAttachPartition, DDLDropObject, DDLCreateObject,
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
