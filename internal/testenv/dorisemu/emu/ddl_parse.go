package emu

import (
	"fmt"
	"strings"
)

// parseCreateTable reads the Doris CREATE TABLE form after "CREATE TABLE":
//
//	[IF NOT EXISTS] [db.]t (col TYPE [NOT NULL|NULL] [DEFAULT v] [COMMENT 's'], ... [INDEX ...])
//	[ENGINE=OLAP] [UNIQUE KEY(k..)|DUPLICATE KEY(k..)] [COMMENT 's']
//	[PARTITION BY ... (...)] [DISTRIBUTED BY HASH(k..)|RANDOM [BUCKETS n|AUTO]]
//	[PROPERTIES ("k" = "v", ...)]
func parseCreateTable(p *parser, curDB string) (t *Table, ifNotExists bool, err error) {
	ifNotExists = p.accept("IF", "NOT", "EXISTS")
	db, name, err := p.qualifiedName()
	if err != nil {
		return nil, false, err
	}
	if db == "" {
		db = curDB
	}
	t = &Table{DB: db, Name: name}
	if err := p.expect("("); err != nil {
		return nil, false, err
	}
	for {
		if p.peek().is("INDEX") || (p.peek().is("KEY") && p.peekAt(1).isName()) {
			// Inverted and bloom filter indexes change nothing a test
			// can observe; skip "INDEX name (cols) [USING x] [COMMENT s]".
			for !p.eof() && !(p.peek().kind == tokPunct && (p.peek().text == "," || p.peek().text == ")")) {
				p.skipBalanced()
			}
		} else {
			col, err := parseColumnDef(p)
			if err != nil {
				return nil, false, err
			}
			if _, dup := t.Column(col.Name); dup != nil {
				return nil, false, errorf("Duplicate column name '%s'", col.Name)
			}
			t.Columns = append(t.Columns, col)
		}
		if p.accept(")") {
			break
		}
		if err := p.expect(","); err != nil {
			return nil, false, err
		}
	}
	var keys []string
	for !p.eof() {
		switch {
		case p.accept("ENGINE"):
			p.accept("=")
			if _, err := p.name(); err != nil {
				return nil, false, err
			}
		case p.accept("UNIQUE", "KEY"):
			t.Model = ModelUnique
			if keys, err = p.nameList(); err != nil {
				return nil, false, err
			}
		case p.accept("DUPLICATE", "KEY"):
			t.Model = ModelDuplicate
			if keys, err = p.nameList(); err != nil {
				return nil, false, err
			}
		case p.accept("AGGREGATE", "KEY"):
			return nil, false, errorf("dorisemu supports only UNIQUE KEY and DUPLICATE KEY tables")
		case p.accept("COMMENT"):
			if t.Comment, err = p.str(); err != nil {
				return nil, false, err
			}
		case p.accept("PARTITION", "BY") || p.accept("AUTO", "PARTITION", "BY"):
			// Partitions only place data; every row lands in one table here.
			for !p.eof() && !p.peek().is("DISTRIBUTED") && !p.peek().is("PROPERTIES") {
				p.skipBalanced()
			}
		case p.accept("DISTRIBUTED", "BY"):
			if p.accept("RANDOM") {
				t.Random = true
			} else {
				if err := p.expect("HASH"); err != nil {
					return nil, false, err
				}
				if t.DistCols, err = p.nameList(); err != nil {
					return nil, false, err
				}
			}
			if p.accept("BUCKETS") {
				if !p.accept("AUTO") {
					if t.Buckets, err = p.int(); err != nil {
						return nil, false, err
					}
				}
			} else {
				t.Buckets = 0
			}
		case p.accept("PROPERTIES"):
			if t.Props, err = parseProperties(p); err != nil {
				return nil, false, err
			}
		default:
			return nil, false, p.errorf("unexpected clause")
		}
	}
	if err := finishTable(t, keys); err != nil {
		return nil, false, err
	}
	return t, ifNotExists, nil
}

// parseColumnDef reads "name TYPE[(args)] [NOT NULL|NULL] [AUTO_INCREMENT]
// [DEFAULT v] [COMMENT 's']".
func parseColumnDef(p *parser) (Column, error) {
	var c Column
	var err error
	if c.Name, err = p.name(); err != nil {
		return c, err
	}
	if c.Type, err = parseTypeDef(p); err != nil {
		return c, err
	}
	c.Nullable = true
	for !p.eof() && !(p.peek().kind == tokPunct && (p.peek().text == "," || p.peek().text == ")")) &&
		!p.peek().is("AFTER") && !p.peek().is("FIRST") {
		switch {
		case p.accept("NOT", "NULL"):
			c.Nullable = false
		case p.accept("NULL"):
			c.Nullable = true
		case p.accept("AUTO_INCREMENT"):
			return c, errorf("dorisemu does not support AUTO_INCREMENT columns")
		case p.accept("DEFAULT"):
			t := p.next()
			switch {
			case t.is("NULL"):
				c.Default = nil
			case t.is("CURRENT_TIMESTAMP"):
				c.DefaultExpr = "CURRENT_TIMESTAMP"
				if p.accept("(") {
					n, err := p.int()
					if err != nil {
						return c, err
					}
					if err := p.expect(")"); err != nil {
						return c, err
					}
					c.DefaultExpr = fmt.Sprintf("CURRENT_TIMESTAMP(%d)", n)
				}
			case t.kind == tokString || t.kind == tokNumber:
				v := t.text
				c.Default = &v
			case t.kind == tokPunct && t.text == "-" && p.peek().kind == tokNumber:
				v := "-" + p.next().text
				c.Default = &v
			default:
				return c, syntaxError(fmt.Sprintf("unsupported DEFAULT %q", t.text))
			}
		case p.accept("COMMENT"):
			if c.Comment, err = p.str(); err != nil {
				return c, err
			}
		case p.accept("REPLACE") || p.accept("SUM") || p.accept("MAX") || p.accept("MIN") || p.accept("REPLACE_IF_NOT_NULL"):
			return c, errorf("The aggregation type of column[%s] is not supported by UNIQUE or DUPLICATE tables", c.Name)
		default:
			return c, p.errorf("unexpected column attribute")
		}
	}
	if c.Default != nil {
		if _, err := c.Type.Convert(*c.Default); err != nil {
			return c, errorf("Invalid default value for '%s': %v", c.Name, err)
		}
	}
	return c, nil
}

func parseTypeDef(p *parser) (Type, error) {
	name, err := p.name()
	if err != nil {
		return Type{}, err
	}
	var args []int
	if p.accept("(") {
		for {
			n, err := p.int()
			if err != nil {
				return Type{}, err
			}
			args = append(args, n)
			if p.accept(")") {
				break
			}
			if err := p.expect(","); err != nil {
				return Type{}, err
			}
		}
	}
	if strings.EqualFold(name, "ARRAY") || strings.EqualFold(name, "MAP") || strings.EqualFold(name, "STRUCT") {
		return Type{}, errorf("dorisemu does not support %s columns", strings.ToUpper(name))
	}
	t, err := ParseType(name, args)
	if err != nil {
		return Type{}, &Error{Detail: err.Error()}
	}
	return t, nil
}

// parseProperties reads ("k" = "v", ...).
func parseProperties(p *parser) ([]Property, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var props []Property
	for {
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if err := p.expect("="); err != nil {
			return nil, err
		}
		v, err := p.str()
		if err != nil {
			return nil, err
		}
		props = append(props, Property{k, v})
		if p.accept(")") {
			return props, nil
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
	}
}

// finishTable applies Doris's rules and defaults to a parsed table: keys
// are an ordered prefix of the columns, a Unique table is merge-on-write
// with light schema change, and the sequence properties are resolved.
func finishTable(t *Table, keys []string) error {
	if len(t.Columns) == 0 {
		return errorf("Table should contain at least one column")
	}
	if t.Model == 0 {
		// Doris's default: a Duplicate table keyed by its first column.
		t.Model = ModelDuplicate
		keys = []string{t.Columns[0].Name}
	}
	for i, k := range keys {
		if i >= len(t.Columns) || !strings.EqualFold(t.Columns[i].Name, k) {
			prev := ""
			if i < len(t.Columns) {
				prev = t.Columns[i].Name
			}
			return errorf("Key columns should be a ordered prefix of the schema. KeyColumns[%d] (starts from zero) is %s, but corresponding column is %s in the previous columns declaration.", i, k, prev)
		}
		t.Columns[i].Key = true
		switch t.Columns[i].Type.Kind {
		case KindFloat, KindDouble, KindString, KindJSON:
			return errorf("%s type should not be used in key column[%s].", t.Columns[i].Type, k)
		}
		if t.Model == ModelUnique {
			t.Columns[i].Nullable = false
		}
	}
	for _, d := range t.DistCols {
		if _, c := t.Column(d); c == nil {
			return errorf("Distribution column[%s] is not found.", d)
		}
	}
	if !t.Random && len(t.DistCols) == 0 {
		t.Random = t.Model == ModelDuplicate
		if t.Model == ModelUnique {
			t.DistCols = t.Keys()
		}
	}
	if t.Prop("replication_num") == "" && t.Prop("replication_allocation") == "" {
		t.setProp("replication_allocation", "tag.location.default: 1")
	}
	if t.Model == ModelUnique {
		if v := t.Prop("enable_unique_key_merge_on_write"); strings.EqualFold(v, "false") {
			return errorf("dorisemu supports only merge-on-write Unique tables")
		}
		t.setProp("enable_unique_key_merge_on_write", "true")
	}
	t.setProp("light_schema_change", "true")
	if st := t.Prop("function_column.sequence_type"); st != "" {
		if t.Model != ModelUnique {
			return errorf("sequence column only support UNIQUE_KEYS")
		}
		typ, err := ParseType(st, nil)
		if err != nil {
			return errorf("%v", err)
		}
		t.SeqType = &typ
	}
	if sc := t.Prop("function_column.sequence_col"); sc != "" {
		if t.Model != ModelUnique {
			return errorf("sequence column only support UNIQUE_KEYS")
		}
		_, c := t.Column(sc)
		if c == nil {
			return errorf("The specified sequence column[%s] not exists", sc)
		}
		typ := c.Type
		t.SeqType, t.SeqCol = &typ, c.Name
	}
	if t.SeqType != nil {
		switch t.SeqType.Kind {
		case KindTinyInt, KindSmallInt, KindInt, KindBigInt, KindLargeInt, KindDate, KindDateTime, KindDecimal:
		default:
			return errorf("Sequence type only support integer types and date types")
		}
	}
	return nil
}
