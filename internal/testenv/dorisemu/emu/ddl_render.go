package emu

import (
	"fmt"
	"strings"
)

// showCreate renders the Doris DDL of a table from the catalog, in the
// layout SHOW CREATE TABLE prints; parseCreateTable reads it back.
func (t *Table) showCreate() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE `%s` (\n", t.Name)
	for i, c := range t.Columns {
		fmt.Fprintf(&b, "  `%s` %s", c.Name, c.Type)
		if c.Nullable {
			b.WriteString(" NULL")
		} else {
			b.WriteString(" NOT NULL")
		}
		if c.Default != nil {
			fmt.Fprintf(&b, " DEFAULT \"%s\"", escapeDouble(*c.Default))
		} else if c.DefaultExpr != "" {
			fmt.Fprintf(&b, " DEFAULT %s", c.DefaultExpr)
		}
		if c.Comment != "" {
			fmt.Fprintf(&b, " COMMENT '%s'", escapeSingle(c.Comment))
		}
		if i < len(t.Columns)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(") ENGINE=OLAP\n")
	fmt.Fprintf(&b, "%s KEY(%s)\n", t.Model, backquoteList(t.Keys()))
	comment := t.Comment
	if comment == "" {
		comment = "OLAP"
	}
	fmt.Fprintf(&b, "COMMENT '%s'\n", escapeSingle(comment))
	if t.Random {
		b.WriteString("DISTRIBUTED BY RANDOM")
	} else {
		fmt.Fprintf(&b, "DISTRIBUTED BY HASH(%s)", backquoteList(t.DistCols))
	}
	if t.Buckets > 0 {
		fmt.Fprintf(&b, " BUCKETS %d\n", t.Buckets)
	} else {
		b.WriteString(" BUCKETS AUTO\n")
	}
	b.WriteString("PROPERTIES (\n")
	for i, p := range t.Props {
		fmt.Fprintf(&b, "\"%s\" = \"%s\"", escapeDouble(p.Key), escapeDouble(p.Value))
		if i < len(t.Props)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(");")
	return b.String()
}

func backquoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}

func escapeSingle(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

func escapeDouble(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// sqlLiteral quotes a value as a MariaDB string literal.
func sqlLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(s) + "'"
}

// mariaColumn is the MariaDB definition of a Doris column in the base table.
func (c Column) mariaColumn() string {
	def := quoteIdent(c.Name) + " " + c.Type.mariaType(c.Key)
	if !c.Nullable {
		def += " NOT NULL"
	} else {
		def += " NULL"
	}
	switch {
	case c.Default != nil:
		v, _ := c.Type.Convert(*c.Default)
		def += " DEFAULT " + sqlLiteral(v)
	case c.DefaultExpr != "":
		def += " DEFAULT " + c.DefaultExpr
	case c.Nullable:
		def += " DEFAULT NULL"
	}
	return def
}

// createBaseSQL is the MariaDB table behind a Doris table: its visible
// columns, the delete sign and sequence of a Unique table keyed by its
// key columns, or a row id for a Duplicate table.
func (t *Table) createBaseSQL() string {
	var defs []string
	for _, c := range t.Columns {
		defs = append(defs, c.mariaColumn())
	}
	if t.Model == ModelUnique {
		defs = append(defs, quoteIdent(colDeleteSign)+" TINYINT NOT NULL DEFAULT 0")
		if t.SeqType != nil {
			defs = append(defs, quoteIdent(colSequence)+" "+t.SeqType.mariaType(false)+" NULL DEFAULT NULL")
		}
		var keys []string
		long := false
		for _, c := range t.Columns {
			if c.Key {
				keys = append(keys, quoteIdent(c.Name))
				long = long || c.Type.mariaType(true) == "LONGTEXT"
			}
		}
		// MariaDB cannot make a long text a primary key; a UNIQUE key
		// over it is kept by a hidden hash and works the same for upserts.
		if long {
			defs = append(defs, "UNIQUE KEY `doris_key` ("+strings.Join(keys, ", ")+")")
		} else {
			defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
		}
	} else {
		defs = append(defs, quoteIdent(colRowID)+" BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY")
	}
	return "CREATE TABLE " + t.base() + " (\n  " + strings.Join(defs, ",\n  ") +
		"\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
}

// createViewSQL is the view SQL reads the table through: visible columns
// of live rows only.
func (t *Table) createViewSQL() string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	where := ""
	if t.Model == ModelUnique {
		where = " WHERE " + quoteIdent(colDeleteSign) + " = 0"
	}
	return "CREATE OR REPLACE SQL SECURITY INVOKER VIEW " + t.view() + " AS SELECT " +
		strings.Join(cols, ", ") + " FROM " + t.base() + where
}
