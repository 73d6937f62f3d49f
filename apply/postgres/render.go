package postgres

import (
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// The PostgreSQL rendering of the table model (proto.TableDef), for schema
// sync and DDL sync alike. Definitions are the source's text, which names
// the source's columns: both syncs run them while the destination table's
// columns carry the source's names (schema sync creates and loads tables
// under the source's names and renames them after; DDL sync names the
// columns as at the source for the length of the change, see
// withSourceNames), so PostgreSQL itself maps the definitions to the
// destination's names, and nothing here parses SQL.

// columnSQL is a column's definition, for CREATE TABLE and ADD COLUMN.
func columnSQL(c proto.ColumnDef) string {
	s := quoteDDLIdent(c.Name) + " " + c.Type
	if c.Collation != "" {
		s += " COLLATE " + c.Collation
	}
	switch {
	case c.Generated != "":
		s += " GENERATED ALWAYS AS (" + c.Generated + ") STORED"
	case c.Identity != 0:
		s += " GENERATED " + identityKind(c.Identity) + " AS IDENTITY"
		if c.IdentityOptions != "" {
			s += " (" + c.IdentityOptions + ")"
		}
	case c.Default != "":
		s += " DEFAULT " + c.Default
	}
	if c.NotNull {
		s += " NOT NULL"
	}
	return s
}

func identityKind(c proto.Char) string {
	if c == 'a' {
		return "ALWAYS"
	}
	return "BY DEFAULT"
}

// preData reports whether a constraint is created with its table, before
// the load: keys and validated checks. Exclusion constraints build an
// index, checks the source never validated may not hold for the copied
// rows, and foreign keys wait for the rows they reference: after the load.
func preData(c *proto.ConstraintDef) bool {
	switch c.Kind {
	case proto.ConstraintPrimaryKey, proto.ConstraintUnique:
		return true
	case proto.ConstraintCheck:
		return c.Validated
	}
	return false
}

// createTableSQL is the CREATE TABLE IF NOT EXISTS statement of table t
// named name: its columns and the constraints that go with it.
func createTableSQL(name proto.TableID, t *proto.TableDef) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(ddlTableIdent(name))
	b.WriteString(" (")
	parts := make([]string, 0, len(t.Columns)+len(t.Constraints))
	for _, c := range t.Columns {
		parts = append(parts, columnSQL(c))
	}
	for i := range t.Constraints {
		if c := &t.Constraints[i]; preData(c) {
			parts = append(parts, "CONSTRAINT "+quoteDDLIdent(c.Name)+" "+c.Def)
		}
	}
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n\t")
		b.WriteString(p)
	}
	b.WriteString("\n)")
	return b.String()
}

// indexSQL creates index ix on table.
func indexSQL(table proto.TableID, ix *proto.IndexDef) string {
	unique := ""
	if ix.Unique {
		unique = "UNIQUE "
	}
	return "CREATE " + unique + "INDEX IF NOT EXISTS " + quoteDDLIdent(ix.Name) + " ON " + ddlTableIdent(table) + " USING " + ix.Def
}

// foreignKeySQL is a foreign key's definition referencing its table as
// target names it at the destination (names: the task's renames, nil
// for the source's names). A key read by an older Sluice has no
// structure: its text is used as it is.
func foreignKeySQL(c *proto.ConstraintDef, names *proto.NameMap) string {
	ref := c.References
	if ref == nil || names == nil {
		return c.Def
	}
	from := make([]string, len(ref.From))
	for i, col := range ref.From {
		from[i] = quoteDDLIdent(col)
	}
	to := make([]string, len(ref.Columns))
	for i, col := range ref.Columns {
		to[i] = quoteDDLIdent(names.Column(ref.Table, col))
	}
	return "FOREIGN KEY (" + strings.Join(from, ", ") + ") REFERENCES " + ddlTableIdent(names.Table(ref.Table)) +
		"(" + strings.Join(to, ", ") + ")" + ref.Rest
}

// deferrableKey makes a foreign key's definition DEFERRABLE (INITIALLY
// IMMEDIATE, as the source's unless it said otherwise) where the apply
// cannot take replica mode: the apply defers it to its commit, local
// writes still check it at once. A key that is deferrable already is
// left as it is. Cutover gives keys back the source's definitions.
func deferrableKey(def string, hold bool) string {
	if !hold || strings.Contains(def, " DEFERRABLE") {
		return def
	}
	return def + " DEFERRABLE"
}

// replicaIdentitySQL is the REPLICA IDENTITY clause of a table ("" for
// the default, or an index the model does not name).
func replicaIdentitySQL(t *proto.TableDef) string {
	switch t.ReplicaIdentity {
	case proto.IdentityDefault:
		return "DEFAULT"
	case proto.IdentityFull:
		return "FULL"
	case proto.IdentityNothing:
		return "NOTHING"
	case proto.IdentityIndex:
		if t.IdentityIndex != "" {
			return "USING INDEX " + quoteDDLIdent(t.IdentityIndex)
		}
	}
	return ""
}
