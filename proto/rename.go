package proto

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// NameMap maps source names to destination names: the spec's renames
// (objects[].rename_schema, objects[].rename with "table" and
// "table.column" keys), then its name_case for every name not renamed.
// The zero NameMap (nil) maps every name to itself.
type NameMap struct {
	schemas  map[string]string
	tables   map[string]string            // TableID.Key() -> new table name
	columns  map[string]map[string]string // TableID.Key() -> column -> new name
	nameCase string
}

// Names returns the spec's name map, nil when it renames nothing.
func (s *TaskSpec) Names() *NameMap {
	m := &NameMap{schemas: map[string]string{}, tables: map[string]string{}, columns: map[string]map[string]string{}, nameCase: s.NameCase}
	for _, o := range s.Objects {
		if o.RenameSchema != "" {
			m.schemas[o.Schema] = o.RenameSchema
		}
		for from, to := range o.Rename {
			table, column, isColumn := strings.Cut(from, ".")
			key := TableID{Schema: o.Schema, Name: table}.Key()
			if !isColumn {
				m.tables[key] = to
				continue
			}
			if m.columns[key] == nil {
				m.columns[key] = map[string]string{}
			}
			m.columns[key][column] = to
		}
	}
	if len(m.schemas) == 0 && len(m.tables) == 0 && len(m.columns) == 0 && (m.nameCase == "" || m.nameCase == "default" || m.nameCase == "source") {
		return nil
	}
	return m
}

func (m *NameMap) cased(s string) string {
	switch m.nameCase {
	case "lower", "destination": // PostgreSQL folds unquoted names to lower case
		return strings.ToLower(s)
	case "upper":
		return strings.ToUpper(s)
	}
	return s
}

// Table is the destination name of a source table.
func (m *NameMap) Table(t TableID) TableID {
	if m == nil || t == HeartbeatTable {
		return t
	}
	out := TableID{Schema: m.cased(t.Schema), Name: m.cased(t.Name)}
	if s, ok := m.schemas[t.Schema]; ok {
		out.Schema = s
	}
	if n, ok := m.tables[t.Key()]; ok {
		out.Name = n
	}
	return out
}

// Column is the destination name of a source table's column.
func (m *NameMap) Column(t TableID, column string) string {
	if m == nil {
		return column
	}
	if n, ok := m.columns[t.Key()][column]; ok {
		return n
	}
	return m.cased(column)
}

// ColumnsOf maps a source table's column names.
func (m *NameMap) ColumnsOf(t TableID, columns []string) []string {
	if m == nil {
		return columns
	}
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = m.Column(t, c)
	}
	return out
}

// validateRenames checks one object entry's renames (Validate's add).
func validateRenames(field string, o ObjectSpec, listed map[string]bool, add func(field, format string, args ...any)) {
	if o.RenameSchema != "" && (o.RenameSchema == ReservedSchema || strings.HasPrefix(o.RenameSchema, "pg_") || len(o.RenameSchema) > 63) {
		add(field+".rename_schema", "%q cannot be a schema name at the destination (reserved, pg_ prefix, or over 63 bytes)", o.RenameSchema)
	}
	targets := map[string]string{}
	for _, from := range slices.Sorted(maps.Keys(o.Rename)) {
		to := o.Rename[from]
		f := fmt.Sprintf("%s.rename.%s", field, from)
		table, column, isColumn := strings.Cut(from, ".")
		switch {
		case table == "" || (isColumn && column == ""):
			add(f, `keys are "table" or "table.column"`)
		case to == "" || len(to) > 63:
			add(f, "the new name must be 1 to 63 bytes")
		case len(listed) > 0 && !listed[table]:
			add(f, "%q is not among the tables listed", table)
		}
		if !isColumn {
			if prev, ok := targets[to]; ok {
				add(f, "renames to %q like %s", to, prev)
			}
			targets[to] = from
		}
	}
}
