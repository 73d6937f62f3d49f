package emu

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func strp(s string) *string { return &s }

func textResult(cols []string, rows [][]*string) *Result {
	types := make([]string, len(cols))
	for i := range types {
		types[i] = "CHAR"
	}
	if rows == nil {
		rows = [][]*string{}
	}
	return &Result{Columns: cols, Types: types, Rows: rows}
}

// show answers SHOW DATABASES, SHOW [FULL] TABLES [FROM d] [LIKE p],
// SHOW CREATE TABLE, SHOW [FULL] COLUMNS FROM t, SHOW GRANTS and
// [ADMIN] SHOW FRONTEND CONFIG [LIKE p] from the catalog.
func (e *Emulator) show(ctx context.Context, s session, p *parser) (*Result, error) {
	full := p.accept("FULL")
	switch {
	case p.accept("DATABASES") || p.accept("SCHEMAS"):
		like, err := parseLike(p)
		if err != nil {
			return nil, err
		}
		e.cat.mu.RLock()
		names := []string{"information_schema"}
		for db := range e.cat.dbs {
			names = append(names, db)
		}
		e.cat.mu.RUnlock()
		sort.Strings(names[1:])
		var rows [][]*string
		for _, n := range names {
			if like == nil || like.MatchString(n) {
				rows = append(rows, []*string{strp(n)})
			}
		}
		return textResult([]string{"Database"}, rows), nil
	case p.accept("TABLES"):
		db := s.db
		if p.accept("FROM") || p.accept("IN") {
			var err error
			if db, err = p.name(); err != nil {
				return nil, err
			}
		}
		like, err := parseLike(p)
		if err != nil {
			return nil, err
		}
		e.cat.mu.RLock()
		tables, ok := e.cat.dbs[db]
		var names []string
		for n := range tables {
			names = append(names, n)
		}
		e.cat.mu.RUnlock()
		if !ok {
			return nil, unknownDB(db)
		}
		sort.Strings(names)
		cols := []string{"Tables_in_" + db}
		if full {
			cols = append(cols, "Table_type")
		}
		var rows [][]*string
		for _, n := range names {
			if like == nil || like.MatchString(n) {
				row := []*string{strp(n)}
				if full {
					row = append(row, strp("BASE TABLE"))
				}
				rows = append(rows, row)
			}
		}
		return textResult(cols, rows), nil
	case p.accept("CREATE", "TABLE"):
		t, err := e.tableRef(s, p)
		if err != nil {
			return nil, err
		}
		e.cat.mu.RLock()
		ddl := t.showCreate()
		e.cat.mu.RUnlock()
		return textResult([]string{"Table", "Create Table"}, [][]*string{{strp(t.Name), strp(ddl)}}), nil
	case p.accept("COLUMNS") || p.accept("FIELDS"):
		if !p.accept("FROM") && !p.accept("IN") {
			return nil, p.errorf("expected FROM")
		}
		return e.describe(s, p)
	case p.accept("GRANTS"):
		u := s.u
		roles := ""
		if u.has(PrivAdmin) {
			roles = "admin"
		}
		pw := "No"
		if u.Password != "" {
			pw = "Yes"
		}
		return textResult([]string{"UserIdentity", "Comment", "Password", "Roles", "GlobalPrivs", "CatalogPrivs",
			"DatabasePrivs", "TablePrivs", "ResourcePrivs", "WorkloadGroupPrivs"},
			[][]*string{{strp(fmt.Sprintf("'%s'@'%%'", s.user)), strp(""), strp(pw), strp(roles), strp(u.grants()),
				nil, nil, nil, nil, strp("normal: Usage_priv")}}), nil
	case p.accept("FRONTEND", "CONFIG"):
		like, err := parseLike(p)
		if err != nil {
			return nil, err
		}
		var rows [][]*string
		for _, c := range e.frontendConfig() {
			if like == nil || like.MatchString(c[0]) {
				rows = append(rows, []*string{strp(c[0]), strp(c[1]), strp(c[2]), strp("true"), strp("true"), strp("")})
			}
		}
		return textResult([]string{"Key", "Value", "Type", "IsMutable", "MasterOnly", "Comment"}, rows), nil
	}
	return nil, syntaxError(fmt.Sprintf("dorisemu does not support SHOW %s", p.rest()))
}

// frontendConfig lists the FE settings the emulator has: name, value, type.
func (e *Emulator) frontendConfig() [][3]string {
	keep := strconv.FormatInt(int64(e.opts.LabelKeep.Seconds()), 10)
	return [][3]string{
		{"label_keep_max_second", keep, "int"},
		{"streaming_label_keep_max_second", keep, "long"},
		{"stream_load_default_precommit_timeout_second", strconv.FormatInt(int64(e.opts.PrecommitTimeout.Seconds()), 10), "int"},
		{"stream_load_default_timeout_second", "259200", "int"},
		{"max_running_txn_num_per_db", "1000", "int"},
		{"enable_light_schema_change", "true", "boolean"},
	}
}

// parseLike reads an optional LIKE 'pattern' into a regexp.
func parseLike(p *parser) (*regexp.Regexp, error) {
	if !p.accept("LIKE") {
		return nil, nil
	}
	pat, err := p.str()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("(?is)^")
	for _, r := range pat {
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// tableRef reads [db.]table and finds it.
func (e *Emulator) tableRef(s session, p *parser) (*Table, error) {
	db, name, err := p.qualifiedName()
	if err != nil {
		return nil, err
	}
	if db == "" {
		db = s.db
	}
	return e.cat.table(db, name)
}

// describe answers DESC t: Field, Type, Null, Key, Default, Extra, with
// the types as Type.String prints them.
func (e *Emulator) describe(s session, p *parser) (*Result, error) {
	t, err := e.tableRef(s, p)
	if err != nil {
		return nil, err
	}
	e.cat.mu.RLock()
	defer e.cat.mu.RUnlock()
	var rows [][]*string
	for _, c := range t.Columns {
		null := "NO"
		if c.Nullable {
			null = "YES"
		}
		var def *string
		if c.Default != nil {
			def = strp(*c.Default)
		} else if c.DefaultExpr != "" {
			def = strp(c.DefaultExpr)
		}
		extra := ""
		if !c.Key && t.Model == ModelDuplicate {
			extra = "NONE"
		}
		rows = append(rows, []*string{strp(c.Name), strp(c.Type.String()), strp(null), strp(strconv.FormatBool(c.Key)), def, strp(extra)})
	}
	return textResult([]string{"Field", "Type", "Null", "Key", "Default", "Extra"}, rows), nil
}
