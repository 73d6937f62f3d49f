package emu

import (
	"context"
	"strings"
)

// alter implements light schema change, one change per statement:
//
//	ALTER TABLE t ADD COLUMN c TYPE [NULL|NOT NULL] [DEFAULT v] [COMMENT s] [AFTER x|FIRST]
//	ALTER TABLE t DROP COLUMN c
//	ALTER TABLE t MODIFY COLUMN c TYPE ...   (widening only)
//	ALTER TABLE t RENAME COLUMN old new
//	ALTER TABLE t RENAME new_name
//	ALTER TABLE t MODIFY COMMENT 's' | SET ("k" = "v")
//
// The catalog and MariaDB change together under the catalog lock, and the
// view is rebuilt so SELECT * sees the new columns at once.
func (e *Emulator) alter(ctx context.Context, s session, p *parser) error {
	if err := s.u.check(PrivAlter); err != nil {
		return err
	}
	if !p.accept("TABLE") {
		return syntaxError("dorisemu supports only ALTER TABLE")
	}
	t, err := e.tableRef(s, p)
	if err != nil {
		return err
	}
	// Publishing reads the table's columns; hold it off while they change.
	e.pub.Lock()
	defer e.pub.Unlock()
	e.cat.mu.Lock()
	defer e.cat.mu.Unlock()
	exec := func(stmts ...string) error {
		for _, q := range stmts {
			if _, err := e.maria.db.ExecContext(ctx, q); err != nil {
				return translateMaria(err)
			}
		}
		return nil
	}
	switch {
	case p.accept("ADD", "COLUMN") || p.accept("ADD"):
		c, err := parseColumnDef(p)
		if err != nil {
			return err
		}
		if _, old := t.Column(c.Name); old != nil {
			return errorf("Can not add column which already exists in base table: %s", c.Name)
		}
		if !c.Nullable && c.Default == nil && c.DefaultExpr == "" {
			return errorf("Can not add column which is not nullable and has no default value: %s", c.Name)
		}
		pos, where := len(t.Columns), ""
		switch {
		case p.accept("AFTER"):
			after, err := p.name()
			if err != nil {
				return err
			}
			i, ac := t.Column(after)
			if ac == nil {
				return errorf("Column[%s] does not exist", after)
			}
			pos, where = i+1, " AFTER "+quoteIdent(ac.Name)
		case p.accept("FIRST"):
			pos, where = 0, " FIRST"
		}
		if pos < len(t.Columns) && t.Columns[pos].Key {
			return errorf("Can not add value column before key column")
		}
		if !p.eof() {
			return p.errorf("unexpected text")
		}
		if err := exec("ALTER TABLE " + t.base() + " ADD COLUMN " + c.mariaColumn() + where); err != nil {
			return err
		}
		cols := append([]Column(nil), t.Columns[:pos]...)
		cols = append(cols, c)
		t.Columns = append(cols, t.Columns[pos:]...)
	case p.accept("DROP", "COLUMN") || p.accept("DROP"):
		name, err := p.name()
		if err != nil {
			return err
		}
		i, c := t.Column(name)
		if c == nil {
			return errorf("Column does not exists: %s", name)
		}
		if c.Key {
			return errorf("Can not drop key column in Unique data model table")
		}
		if strings.EqualFold(t.SeqCol, c.Name) {
			return errorf("Can not drop sequence mapping column[%s] in Unique data model table[%s]", c.Name, t.Name)
		}
		if len(t.Columns) == 1 {
			return errorf("Do not allow remove last column of table: %s", t.Name)
		}
		if err := exec("ALTER TABLE " + t.base() + " DROP COLUMN " + quoteIdent(c.Name)); err != nil {
			return err
		}
		t.Columns = append(append([]Column(nil), t.Columns[:i]...), t.Columns[i+1:]...)
	case p.accept("MODIFY", "COMMENT"):
		c, err := p.str()
		if err != nil {
			return err
		}
		t.Comment = c
		return nil
	case p.accept("MODIFY", "COLUMN") || p.accept("MODIFY"):
		c, err := parseColumnDef(p)
		if err != nil {
			return err
		}
		i, old := t.Column(c.Name)
		if old == nil {
			return errorf("Column[%s] does not exist", c.Name)
		}
		if !old.Type.canWidenTo(c.Type) {
			return errorf("Can not change %s to %s", old.Type, c.Type)
		}
		if old.Key {
			c.Key, c.Nullable = true, old.Nullable
		}
		if old.Nullable && !c.Nullable {
			return errorf("Can not change from nullable to non-nullable")
		}
		c.Name = old.Name
		if err := exec("ALTER TABLE " + t.base() + " MODIFY COLUMN " + c.mariaColumn()); err != nil {
			return err
		}
		cols := append([]Column(nil), t.Columns...)
		cols[i] = c
		t.Columns = cols
	case p.accept("RENAME", "COLUMN"):
		from, err := p.name()
		if err != nil {
			return err
		}
		to, err := p.name()
		if err != nil {
			return err
		}
		i, c := t.Column(from)
		if c == nil {
			return errorf("Column[%s] does not exists", from)
		}
		if _, dup := t.Column(to); dup != nil {
			return errorf("Column name[%s] is already used", to)
		}
		if err := exec("ALTER TABLE " + t.base() + " RENAME COLUMN " + quoteIdent(c.Name) + " TO " + quoteIdent(to)); err != nil {
			return err
		}
		cols := append([]Column(nil), t.Columns...)
		if strings.EqualFold(t.SeqCol, from) {
			t.SeqCol = to
			t.setProp("function_column.sequence_col", to)
		}
		for k, d := range t.DistCols {
			if strings.EqualFold(d, from) {
				t.DistCols[k] = to
			}
		}
		cols[i].Name = to
		t.Columns = cols
	case p.accept("RENAME"):
		to, err := p.name()
		if err != nil {
			return err
		}
		if !tableNameRe.MatchString(to) {
			return errorf("Incorrect table name '%s'", to)
		}
		tables := e.cat.dbs[t.DB]
		if _, exists := tables[to]; exists {
			return errorf("Table name[%s] is already used", to)
		}
		renamed := *t
		renamed.Name = to
		if err := exec("DROP VIEW IF EXISTS "+t.view(), "RENAME TABLE "+t.base()+" TO "+renamed.base()); err != nil {
			return err
		}
		delete(tables, t.Name)
		t.Name = to
		tables[to] = t
	case p.accept("SET"):
		props, err := parseProperties(p)
		if err != nil {
			return err
		}
		for _, pr := range props {
			t.setProp(pr.Key, pr.Value)
		}
		return nil
	default:
		return syntaxError("dorisemu supports ALTER TABLE ADD COLUMN, DROP COLUMN, MODIFY COLUMN, RENAME COLUMN, RENAME, MODIFY COMMENT and SET")
	}
	return exec(t.createViewSQL())
}
