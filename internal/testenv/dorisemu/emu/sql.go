package emu

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// VersionComment is what SELECT @@version_comment answers.
const VersionComment = "Doris version doris-2.1.7-rc03 (dorisemu)"

// mysqlVersion is what Doris answers to SELECT version().
const mysqlVersion = "5.7.99"

// session is who runs a statement and in which database (the URL's).
type session struct {
	user string
	u    User
	db   string
}

// Result is a statement's answer: Columns nil for a statement without a
// result set.
type Result struct {
	Columns []string
	Types   []string
	Rows    [][]*string
}

// SQL runs one statement as root in db, as the HTTP query API would, and
// returns its rows; for tests.
func (e *Emulator) SQL(db, stmt string) ([][]*string, error) {
	res, err := e.exec(context.Background(), session{user: "root", u: e.users["root"], db: db}, stmt)
	if err != nil || res == nil {
		return nil, err
	}
	return res.Rows, nil
}

// exec parses the Doris statements the emulator implements itself and
// sends every SELECT (and WITH) to MariaDB unchanged, apart from the
// version functions.
func (e *Emulator) exec(ctx context.Context, s session, stmt string) (*Result, error) {
	p, err := newParser(stmt)
	if err != nil {
		return nil, err
	}
	for _, t := range p.toks {
		if t.kind == tokPunct && t.text == ";" {
			return nil, syntaxError("only one statement per request is supported")
		}
	}
	if p.eof() {
		return nil, syntaxError("empty statement")
	}
	first := p.peek()
	switch {
	case first.is("SELECT") || first.is("WITH") || (first.kind == tokPunct && first.text == "("):
		return e.query(ctx, s, p)
	case first.is("SHOW"):
		p.next()
		return e.show(ctx, s, p)
	case first.is("ADMIN"):
		p.next()
		if !p.accept("SHOW") {
			return nil, syntaxError("dorisemu supports only ADMIN SHOW FRONTEND CONFIG")
		}
		return e.show(ctx, s, p)
	case first.is("DESC") || first.is("DESCRIBE"):
		p.next()
		return e.describe(s, p)
	case first.is("CREATE"):
		p.next()
		return nil, e.create(ctx, s, p)
	case first.is("DROP"):
		p.next()
		return nil, e.drop(ctx, s, p)
	case first.is("ALTER"):
		p.next()
		return nil, e.alter(ctx, s, p)
	case first.is("TRUNCATE"):
		p.next()
		return nil, e.truncate(ctx, s, p)
	case first.is("DELETE"):
		p.next()
		return nil, e.deleteRows(ctx, s, p)
	case first.is("INSERT"):
		p.next()
		return nil, e.insert(ctx, s, p)
	case first.is("USE") || first.is("SET"):
		// Each request has its own session; the URL names the database.
		return &Result{}, nil
	}
	return nil, syntaxError(fmt.Sprintf("dorisemu does not support the statement %q", firstWords(stmt)))
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

// query runs a SELECT on MariaDB with the session's database as default.
func (e *Emulator) query(ctx context.Context, s session, p *parser) (*Result, error) {
	if err := s.u.check(PrivSelect); err != nil {
		return nil, err
	}
	text := rewriteVersion(p)
	conn, err := e.maria.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if s.db != "" {
		if !strings.EqualFold(s.db, "information_schema") && !e.cat.hasDB(s.db) {
			return nil, unknownDB(s.db)
		}
		if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(s.db)); err != nil {
			return nil, translateMaria(err, s.db)
		}
	}
	rows, err := conn.QueryContext(ctx, text)
	if err != nil {
		return nil, translateMaria(err, s.db)
	}
	defer rows.Close()
	return readRows(rows)
}

func readRows(rows *sql.Rows) (*Result, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, _ := rows.ColumnTypes()
	res := &Result{Columns: cols, Types: make([]string, len(cols)), Rows: [][]*string{}}
	for i := range cols {
		res.Types[i] = "CHAR"
		if i < len(types) {
			res.Types[i] = dorisTypeName(types[i].DatabaseTypeName())
		}
	}
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, len(cols))
		for i, b := range raw {
			if b != nil {
				v := string(b)
				row[i] = &v
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// dorisTypeName maps MariaDB's result column types to the names Doris
// puts in a result set's meta.
func dorisTypeName(t string) string {
	switch t {
	case "TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE", "DATE", "DATETIME":
		return t
	case "MEDIUMINT":
		return "INT"
	case "DECIMAL":
		return "DECIMAL"
	case "TIMESTAMP":
		return "DATETIME"
	case "VARCHAR", "TEXT", "LONGTEXT", "MEDIUMTEXT", "TINYTEXT", "BLOB", "LONGBLOB", "JSON":
		return "VARCHAR"
	}
	return "CHAR"
}

// rewriteVersion replaces @@version_comment and version() with Doris's
// answers, keeping the column names a client expects.
func rewriteVersion(p *parser) string {
	src := p.src
	var b strings.Builder
	last := 0
	for i := 0; i < len(p.toks); i++ {
		t := p.toks[i]
		var lit, alias string
		end := t.end
		switch {
		case t.kind == tokVar && strings.HasSuffix(strings.ToLower(t.text), "version_comment"):
			lit, alias = VersionComment, t.text
		case t.is("version") && i+2 < len(p.toks) && p.toks[i+1].text == "(" && p.toks[i+2].text == ")":
			lit, alias, end = mysqlVersion, "version()", p.toks[i+2].end
			i += 2
		default:
			continue
		}
		b.WriteString(src[last:t.pos])
		b.WriteString(sqlLiteral(lit))
		if next := nextTok(p.toks, i); !(next.is("AS") || next.kind == tokIdent && !isClauseWord(next) || next.kind == tokQuoted) {
			b.WriteString(" AS " + quoteIdent(alias))
		}
		last = end
	}
	b.WriteString(src[last:])
	return strings.TrimSuffix(strings.TrimSpace(b.String()), ";")
}

func nextTok(toks []token, i int) token {
	if i+1 < len(toks) {
		return toks[i+1]
	}
	return token{kind: tokEOF}
}

func isClauseWord(t token) bool {
	for _, w := range []string{"FROM", "WHERE", "LIMIT", "UNION", "ORDER", "GROUP", "HAVING", "INTO"} {
		if t.is(w) {
			return true
		}
	}
	return false
}

var mariaTableMissing = regexp.MustCompile(`Table '([^.']*)\.([^']*)' doesn't exist`)

// translateMaria turns a MariaDB error into Doris's shape; db is the
// session's database for messages that name it.
func translateMaria(err error, db ...string) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		var de *Error
		if errors.As(err, &de) {
			return err
		}
		return errorf("%v", err)
	}
	switch me.Number {
	case 1146:
		if m := mariaTableMissing.FindStringSubmatch(me.Message); m != nil {
			return errorf("Table [%s] does not exist in database [%s].", m[2], m[1])
		}
	case 1064:
		return syntaxError(me.Message)
	case 1048:
		return errorf("Insert has filtered data in strict mode: %s", me.Message)
	}
	return errorf("%s", me.Message)
}

// queryError is the msg of a failed query answer.
func queryError(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Error()
	}
	return translateMaria(err).Error()
}
