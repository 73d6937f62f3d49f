package proto

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DDL sync of the objects of a working copy (ObjectDef) beside tables:
// a view, function, trigger, type or comment created, replaced, renamed
// or dropped at the source while the task runs. The task's event trigger
// writes the object as the command left it into the DDL log, in the
// command's transaction, so the change sits in WAL order with the rows.
//
// An object is not one table's: a view may read tables of every apply
// group. Its event goes on the heartbeat subject, which every group
// reads, and is applied once, when every group has applied everything
// before it (a barrier at the destination): a view that needs a column
// added just before finds it there, and a column type changed just after
// does not find the view in its way.

// ObjectsTable names, in a batch on the heartbeat subject, an ObjectEvent.
var ObjectsTable = TableID{Schema: ReservedSchema, Name: "objects"}

// ObjectEvent is one change to one object of a working copy.
type ObjectEvent struct {
	Pos   Position `json:"pos"`
	Tag   string   `json:"tag"`
	Query string   `json:"query,omitempty"`
	// Object is the object as the change left it (nil: it was dropped).
	Object *ObjectDef `json:"object,omitempty"`
	// Renamed is where the object was before the change gave it another
	// name or schema (nil: not renamed).
	Renamed *ObjectAddress `json:"renamed,omitempty"`
	// Dropped is the object a DROP removed (Object is nil).
	Dropped *ObjectAddress `json:"dropped,omitempty"`
}

// ObjectAddress names an object as pg_identify_object_as_address does:
// its type ("function", "view", "trigger", ...), its name parts (schema
// and name; schema, table and name for a trigger or rule) and, for a
// routine or operator, its argument types.
type ObjectAddress struct {
	Type  string   `json:"type"`
	Names []string `json:"names"`
	Args  []string `json:"args,omitempty"`
}

// What says what the event is about, for logs and errors.
func (e *ObjectEvent) What() string {
	switch {
	case e.Object != nil:
		return e.Object.Ident()
	case e.Dropped != nil:
		return e.Dropped.Type + " " + strings.Join(e.Dropped.Names, ".")
	}
	return "object"
}

// Operations lists the DDL operations (sync.ddl_operations) the event
// makes: create_object for an object created, replaced or renamed,
// drop_object for one dropped.
func (e *ObjectEvent) Operations() []string {
	if e.Object == nil {
		return []string{DDLDropObject}
	}
	return []string{DDLCreateObject}
}

// AppendObjectBatch encodes an ObjectEvent as a batch of ObjectsTable.
func AppendObjectBatch(buf []byte, ev *ObjectEvent) ([]byte, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return appendDDLBody(buf, ObjectsTable, body), nil
}

// IsObjectEvent reports whether the batch carries an ObjectEvent.
func (b *Batch) IsObjectEvent() bool { return b.Table == ObjectsTable && len(b.DDL) > 0 }

// DecodeObjectEvent parses the event of a batch IsObjectEvent.
func DecodeObjectEvent(b []byte) (*ObjectEvent, error) {
	var e ObjectEvent
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: object event: %v", ErrMalformed, err)
	}
	if e.Object == nil && e.Dropped == nil {
		return nil, fmt.Errorf("%w: object event without an object", ErrMalformed)
	}
	return &e, nil
}
