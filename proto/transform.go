package proto

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Column transforms (ETL): per table, a column's value replaced by a SQL
// expression over the source row (objects[].transform) and columns added,
// computed the same way (objects[].add_columns). The expression is
// PostgreSQL's, evaluated by the source's SQL engine both in the full
// sync (inside the snapshot's COPY query) and in the incremental sync (at
// apply, one query per batch over the batch's rows), so every function
// behaves alike in both. The destination column's type is the
// expression's result type. An expression goes into a select list, so it
// must stay one expression: CheckFilter's lexer refuses what could break
// out of its parentheses.

// ColumnExpr is one transformed or added column of a table.
type ColumnExpr struct {
	Column string
	Expr   string
	// Added: the column is new (add_columns); otherwise it replaces the
	// source column of that name (transform).
	Added bool
	// Field is the spec field that sets it, for errors:
	// objects[0].transform.customers.email.
	Field string
}

// SQL is the expression as one parenthesized select-list item; the
// closing parenthesis is on a line of its own, so nothing comments it out.
func (c ColumnExpr) SQL() string { return "(" + c.Expr + "\n)" }

// ColumnExprs are the table's transformed columns (in name order), then
// its added ones (in name order, which is their order at the
// destination, after the table's own); nil without any.
func (s *TaskSpec) ColumnExprs(t TableID) []ColumnExpr {
	var out []ColumnExpr
	for i, o := range s.Objects {
		if o.Schema != t.Schema {
			continue
		}
		for _, kind := range []struct {
			key   string
			exprs map[string]string
		}{{"transform", o.Transform[t.Name]}, {"add_columns", o.AddColumns[t.Name]}} {
			for _, col := range slices.Sorted(maps.Keys(kind.exprs)) {
				out = append(out, ColumnExpr{Column: col, Expr: strings.TrimSpace(kind.exprs[col]), Added: kind.key == "add_columns",
					Field: fmt.Sprintf("objects[%d].%s.%s.%s", i, kind.key, t.Name, col)})
			}
		}
	}
	return out
}

// HasTransforms reports whether any table of the spec has a transformed
// or added column.
func (s *TaskSpec) HasTransforms() bool {
	for _, o := range s.Objects {
		if len(o.Transform) > 0 || len(o.AddColumns) > 0 {
			return true
		}
	}
	return false
}

// validateTransformUse refuses transforms where they cannot apply: a
// two-way task would carry computed values back to the source.
func (s *TaskSpec) validateTransformUse(add func(field, format string, args ...any)) {
	if s.TwoWay == nil {
		return
	}
	for i, o := range s.Objects {
		if len(o.Transform) > 0 || len(o.AddColumns) > 0 {
			add(fmt.Sprintf("objects[%d].transform", i), "column transforms are for one-way tasks: a two-way task would write the computed values back to the source")
		}
	}
}

// validateTransforms checks what can be checked without the source: the
// tables are listed, each expression is one expression, added columns
// are new names. Whether an expression compiles against its table, and
// its type fits the destination, the precheck checks (capture, apply).
func validateTransforms(field string, o ObjectSpec, listed map[string]bool, add func(field, format string, args ...any)) {
	for _, kind := range []struct {
		key string
		m   map[string]map[string]string
	}{{"transform", o.Transform}, {"add_columns", o.AddColumns}} {
		for _, table := range slices.Sorted(maps.Keys(kind.m)) {
			f := fmt.Sprintf("%s.%s.%s", field, kind.key, table)
			if len(listed) > 0 && !listed[table] {
				add(f, "%q is not among the tables listed", table)
			}
			if len(kind.m[table]) == 0 {
				add(f, "is empty: map columns to SQL expressions, e.g. {email: \"md5(email)\"}")
			}
			for _, col := range slices.Sorted(maps.Keys(kind.m[table])) {
				cf := f + "." + col
				expr := kind.m[table][col]
				switch {
				case col == "" || len(col) > 63:
					add(cf, "the column name must be 1 to 63 bytes")
				case strings.TrimSpace(expr) == "":
					add(cf, "is empty: a SQL expression over the row, such as \"upper(region)\"")
				default:
					if err := CheckFilter(expr); err != nil {
						add(cf, "must be one SQL expression such as \"md5(email)\": %v", strings.Replace(err.Error(), "filter", "expression", -1))
					}
				}
				if kind.key == "add_columns" {
					if _, ok := o.Transform[table][col]; ok {
						add(cf, "is also under transform.%s: a column is either the source's (transformed) or added", table)
					}
				}
				if cols := o.Columns[table]; kind.key == "transform" && len(cols) > 0 && !slices.Contains(cols, col) {
					add(cf, "is not among columns.%s, the columns synced", table)
				}
			}
		}
	}
}
