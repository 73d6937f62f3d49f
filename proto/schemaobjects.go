package proto

// The objects of a working copy beside tables, types and sequences:
// routines and operators (created before the tables, whose defaults,
// checks and indexes may call them), views and materialized views (after
// the load, each after what it reads), triggers and rules (after the
// load, so that loading fires none of them) and comments (last).

// ObjectKind is the kind of an ObjectDef.
type ObjectKind string

// Object kinds, in the order of their phases.
const (
	ObjectFunction         ObjectKind = "function"
	ObjectProcedure        ObjectKind = "procedure"
	ObjectAggregate        ObjectKind = "aggregate"
	ObjectOperator         ObjectKind = "operator"
	ObjectView             ObjectKind = "view"
	ObjectMaterializedView ObjectKind = "materialized view"
	ObjectTrigger          ObjectKind = "trigger"
	ObjectRule             ObjectKind = "rule"
	ObjectComment          ObjectKind = "comment"
	// ObjectType is an enum, domain or composite type created while the
	// task runs (ObjectEvent); schema sync has its own TypeDef for them.
	ObjectType ObjectKind = "type"
)

// PreData: the kind is created before the tables (routines), else after
// the full load.
func (k ObjectKind) PreData() bool {
	switch k {
	case ObjectFunction, ObjectProcedure, ObjectAggregate, ObjectOperator, ObjectType:
		return true
	}
	return false
}

// ObjectDef is one object of a working copy and the statement that
// creates it, as the source's catalog prints it (schema-qualified).
type ObjectDef struct {
	Kind   ObjectKind `json:"kind"`
	Schema string     `json:"schema"`
	// Name is the object's name; Signature, for a routine, aggregate or
	// operator, names it among its overloads ("public.f(integer)").
	Name      string `json:"name"`
	Signature string `json:"signature,omitempty"`
	// Table is the table (or view) a trigger, rule or index of a
	// materialized view is on.
	Table *TableID `json:"table,omitempty"`
	// DDL creates it; it is safe to run again (OR REPLACE, IF NOT
	// EXISTS) except where Exists says how to check first.
	DDL string `json:"ddl"`
	// Enabled is a trigger's or rule's firing state at the source
	// (tgenabled, ev_enabled): 'O' origin and local, 'D' disabled, 'R'
	// replica, 'A' always.
	Enabled Char `json:"enabled,omitempty"`
	// After are statements that complete it (a materialized view's
	// indexes, a trigger's or rule's firing state).
	After []string `json:"after,omitempty"`
}

// Ident is the object's name for messages: its signature, or schema.name
// (on table for triggers and rules).
func (o *ObjectDef) Ident() string {
	name := o.Signature
	switch {
	case o.Kind == ObjectComment:
		name = "on " + o.Name
	case o.Table != nil:
		name = quoteIfNeeded(o.Name) + " on " + o.Table.String()
	case name == "":
		name = TableID{Schema: o.Schema, Name: o.Name}.String()
	}
	return string(o.Kind) + " " + name
}

// FiringAction is the ALTER TABLE action (ENABLE, DISABLE, ENABLE
// REPLICA, ENABLE ALWAYS) that gives a trigger or rule a firing state.
func FiringAction(state Char) string {
	switch state {
	case 'D':
		return "DISABLE"
	case 'R':
		return "ENABLE REPLICA"
	case 'A':
		return "ENABLE ALWAYS"
	}
	return "ENABLE"
}
