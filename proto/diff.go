package proto

import "fmt"

// The shape diff: what turns a table of one definition into another, as
// steps every destination renders in its own dialect (a PostgreSQL
// destination as ALTER TABLE statements, Kafka as the operations a
// schema-change message makes). Columns are matched by number, so a name
// on both sides with another number is a drop and an add, and a number on
// both sides with another name is a rename; constraints and indexes by
// name, and compared by their fingerprints (the catalog's parse trees, in
// which columns and tables are numbers), so renaming a column changes no
// constraint that uses it. Definitions read by an older Sluice have no
// fingerprint and are compared by their text.

// ChangeKind is one kind of step of a shape diff.
type ChangeKind uint8

const (
	CreateTable ChangeKind = iota + 1
	DropTable
	RenameTable
	DropIndex
	DropConstraint
	DropColumn
	RenameColumn
	AddColumn
	// AlterColumn changes a column's type, NOT NULL, default, identity or
	// generation expression.
	AlterColumn
	SetReplicaIdentity
	AddConstraint
	CreateIndex
	// DetachPartition: a partition of the table is gone (dropped, or
	// detached: the event's tag tells); AttachPartition: one is new
	// (created, or attached). Change.Partition is it.
	DetachPartition
	AttachPartition
)

var changeKinds = [...]struct{ name, op string }{
	CreateTable:        {"create table", DDLCreateTable},
	DropTable:          {"drop table", DDLDropTable},
	RenameTable:        {"rename table", DDLRenameTable},
	DropIndex:          {"drop index", DDLDropIndex},
	DropConstraint:     {"drop constraint", DDLDropConstraint},
	DropColumn:         {"drop column", DDLDropColumn},
	RenameColumn:       {"rename column", DDLRenameColumn},
	AddColumn:          {"add column", DDLAddColumn},
	AlterColumn:        {"alter column", DDLAlterColumn},
	SetReplicaIdentity: {"set replica identity", DDLAlterColumn},
	AddConstraint:      {"add constraint", DDLAddConstraint},
	CreateIndex:        {"create index", DDLCreateIndex},
	DetachPartition:    {"detach partition", DDLDetachPartition},
	AttachPartition:    {"attach partition", DDLAttachPartition},
}

func (k ChangeKind) String() string {
	if int(k) < len(changeKinds) && changeKinds[k].name != "" {
		return changeKinds[k].name
	}
	return fmt.Sprintf("change(%d)", k)
}

// Operation is the sync.ddl_operations name that selects the step.
func (k ChangeKind) Operation() string {
	if int(k) < len(changeKinds) {
		return changeKinds[k].op
	}
	return ""
}

// Change is one step of a shape diff.
type Change struct {
	Kind ChangeKind
	// Column is the column added, dropped, renamed (its new form) or
	// altered (its new form); OldColumn its old form.
	Column, OldColumn *ColumnDef
	Constraint        *ConstraintDef
	Index             *IndexDef
	Partition         *PartitionDef
}

// Changes lists the steps that turn e.Old into e.New, in the order they
// apply: drops before renames before additions, so that a name freed by
// one step can be taken by a later one.
func (e *DDLEvent) Changes() []Change {
	old, nw := e.Old, e.New
	switch {
	case old == nil && nw == nil:
		return nil
	case nw == nil:
		return []Change{{Kind: DropTable}}
	case old == nil:
		return []Change{{Kind: CreateTable}}
	}
	var out []Change
	add := func(c Change) { out = append(out, c) }
	if e.Renamed() {
		add(Change{Kind: RenameTable})
	}
	// Partitions gone, deepest first.
	for i := len(old.Partitions) - 1; i >= 0; i-- {
		op := &old.Partitions[i]
		if np, ok := nw.partition(op.ID); !ok || np.Parent != op.Parent || np.Bound != op.Bound || np.PartitionBy != op.PartitionBy {
			add(Change{Kind: DetachPartition, Partition: op})
		}
	}
	for i := range old.Indexes {
		oi := &old.Indexes[i]
		if ni, ok := nw.Index(oi.Name); !ok || indexChanged(oi, &ni) {
			add(Change{Kind: DropIndex, Index: oi})
		}
	}
	for i := range old.Constraints {
		oc := &old.Constraints[i]
		if nc, ok := nw.Constraint(oc.Name); !ok || constraintChanged(oc, &nc) {
			add(Change{Kind: DropConstraint, Constraint: oc})
		}
	}
	for i := range old.Columns {
		if _, ok := nw.Column(old.Columns[i].Num); !ok {
			add(Change{Kind: DropColumn, Column: &old.Columns[i]})
		}
	}
	for i := range old.Columns {
		oc := &old.Columns[i]
		if nc, ok := nw.Column(oc.Num); ok && nc.Name != oc.Name {
			add(Change{Kind: RenameColumn, Column: &nc, OldColumn: oc})
		}
	}
	for i := range nw.Columns {
		if _, ok := old.Column(nw.Columns[i].Num); !ok {
			add(Change{Kind: AddColumn, Column: &nw.Columns[i]})
		}
	}
	for i := range old.Columns {
		oc := &old.Columns[i]
		if nc, ok := nw.Column(oc.Num); ok && columnAltered(oc, &nc) {
			add(Change{Kind: AlterColumn, Column: &nc, OldColumn: oc})
		}
	}
	if old.ReplicaIdentity != nw.ReplicaIdentity || old.IdentityIndex != nw.IdentityIndex {
		add(Change{Kind: SetReplicaIdentity})
	}
	// Keys before the foreign keys that may reference them.
	for _, fk := range []bool{false, true} {
		for i := range nw.Constraints {
			nc := &nw.Constraints[i]
			if (nc.Kind == ConstraintForeignKey) != fk {
				continue
			}
			if oc, ok := old.Constraint(nc.Name); !ok || constraintChanged(&oc, nc) {
				add(Change{Kind: AddConstraint, Constraint: nc})
			}
		}
	}
	for i := range nw.Indexes {
		ni := &nw.Indexes[i]
		if oi, ok := old.Index(ni.Name); !ok || indexChanged(&oi, ni) {
			add(Change{Kind: CreateIndex, Index: ni})
		}
	}
	// New partitions, each after its parent.
	for i := range nw.Partitions {
		np := &nw.Partitions[i]
		if op, ok := old.partition(np.ID); !ok || np.Parent != op.Parent || np.Bound != op.Bound || np.PartitionBy != op.PartitionBy {
			add(Change{Kind: AttachPartition, Partition: np})
		}
	}
	return out
}

// partition returns the table's partition id.
func (t *TableDef) partition(id TableID) (PartitionDef, bool) {
	for _, p := range t.Partitions {
		if p.ID == id {
			return p, true
		}
	}
	return PartitionDef{}, false
}

func columnAltered(o, n *ColumnDef) bool {
	return o.Type != n.Type || o.Collation != n.Collation || o.NotNull != n.NotNull || o.Default != n.Default ||
		o.Identity != n.Identity || (o.Generated == "") != (n.Generated == "")
}

func constraintChanged(o, n *ConstraintDef) bool {
	if o.Kind != n.Kind {
		return true
	}
	if o.Fingerprint != "" && n.Fingerprint != "" {
		// A foreign key's fingerprint names its target by number too: a
		// rename of the referenced table is not a change of the key (the
		// destination's key follows the table as the source's does).
		return o.Fingerprint != n.Fingerprint
	}
	return o.Def != n.Def
}

func indexChanged(o, n *IndexDef) bool {
	if o.Unique != n.Unique {
		return true
	}
	if o.Fingerprint != "" && n.Fingerprint != "" {
		return o.Fingerprint != n.Fingerprint
	}
	return o.Def != n.Def
}
