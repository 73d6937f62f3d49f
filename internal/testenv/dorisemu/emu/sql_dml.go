package emu

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// insert implements INSERT INTO t [(cols)] VALUES (...), ... and
// INSERT INTO t [(cols)] SELECT ...: the rows go through the stream load
// path (conversion, model rules, a transaction with a label), in strict
// mode as Doris's enable_insert_strict default has it.
func (e *Emulator) insert(ctx context.Context, s session, p *parser) error {
	if err := s.u.check(PrivLoad); err != nil {
		return err
	}
	if !p.accept("INTO") {
		return p.errorf("expected INTO")
	}
	t, err := e.tableRef(s, p)
	if err != nil {
		return err
	}
	label := "insert_" + strings.ReplaceAll(newLabel(), "-", "")
	if p.accept("WITH", "LABEL") {
		if label, err = p.name(); err != nil {
			return err
		}
	}
	var cols []string
	if p.peek().kind == tokPunct && p.peek().text == "(" {
		if cols, err = p.nameList(); err != nil {
			return err
		}
	}
	var recs []record
	switch {
	case p.accept("VALUES"):
		for {
			vals, err := parseValues(p)
			if err != nil {
				return err
			}
			recs = append(recs, record{vals: vals, src: fmt.Sprint(derefAll(vals))})
			if !p.accept(",") {
				break
			}
		}
		if !p.eof() {
			return p.errorf("unexpected text")
		}
	case p.peek().is("SELECT") || p.peek().is("WITH"):
		sub, err := e.query(ctx, s, &parser{src: p.rest(), toks: mustLex(p.rest())})
		if err != nil {
			return err
		}
		for _, row := range sub.Rows {
			recs = append(recs, record{vals: row, src: fmt.Sprint(derefAll(row))})
		}
	default:
		return p.errorf("expected VALUES or SELECT")
	}

	e.cat.mu.RLock()
	snap := *t
	snap.Columns = append([]Column(nil), t.Columns...)
	e.cat.mu.RUnlock()
	h := http.Header{}
	h.Set("strict_mode", "true")
	if len(cols) > 0 {
		var names []string
		for _, c := range cols {
			if strings.EqualFold(c, colSequence) {
				h.Set("function_column.sequence_col", c)
			}
			names = append(names, c)
		}
		h.Set("columns", strings.Join(names, ","))
	}
	spec, err := parseLoadSpec(h, &snap)
	if err != nil {
		return errorf("%s", loadErrorDetail(err))
	}
	for _, r := range recs {
		if len(r.vals) != len(spec.loadCols) {
			return errorf("Column count doesn't match value count")
		}
	}
	b, filtered := buildBatch(&snap, spec, recs)
	if len(filtered) > 0 {
		return errorf("Insert has filtered data in strict mode. %s", strings.TrimSpace(filtered[0]))
	}
	tx, existing := e.txns.begin(t.DB, label, t)
	if existing != nil {
		return errorf("Label [%s] has already been used, relate to txn [%d]", label, existing.id)
	}
	if err := e.stage(ctx, tx, b); err != nil {
		_ = e.abort(tx, err.Error())
		return err
	}
	e.pub.Lock()
	err = e.publish(ctx, tx)
	e.pub.Unlock()
	if err != nil {
		_ = e.abort(tx, err.Error())
		return err
	}
	e.txns.set(tx, TxnVisible, "")
	return nil
}

// loadErrorDetail strips a stream load message's "[CODE]" and
// "errCode = 2, detailMessage = " prefixes for a SQL answer.
func loadErrorDetail(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "[") {
		if i := strings.Index(msg, "]"); i > 0 {
			msg = msg[i+1:]
		}
	}
	return strings.TrimPrefix(msg, "errCode = 2, detailMessage = ")
}

func mustLex(s string) []token {
	toks, _ := lex(s)
	return toks
}

func derefAll(vals []*string) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			out[i] = `\N`
		} else {
			out[i] = *v
		}
	}
	return out
}

// parseValues reads one ( literal, ... ) tuple of simple literals: strings,
// numbers, NULL, TRUE and FALSE.
func parseValues(p *parser) ([]*string, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var vals []*string
	for {
		t := p.next()
		switch {
		case t.is("NULL"):
			vals = append(vals, nil)
		case t.is("TRUE") || t.is("FALSE"):
			vals = append(vals, strp(strings.ToLower(t.text)))
		case t.kind == tokString || t.kind == tokNumber:
			vals = append(vals, strp(t.text))
		case t.kind == tokPunct && (t.text == "-" || t.text == "+") && p.peek().kind == tokNumber:
			n := p.next().text
			if t.text == "-" {
				n = "-" + n
			}
			vals = append(vals, strp(n))
		default:
			p.i--
			return nil, p.errorf("dorisemu supports only literal values in INSERT")
		}
		if p.accept(")") {
			return vals, nil
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
	}
}

// deleteRows implements DELETE FROM t WHERE cond. A Unique table keeps the
// deleted keys as tombstones (delete sign set), so their sequence values
// still hold off older rows; a Duplicate table loses the rows.
func (e *Emulator) deleteRows(ctx context.Context, s session, p *parser) error {
	if err := s.u.check(PrivLoad); err != nil {
		return err
	}
	if !p.accept("FROM") {
		return p.errorf("expected FROM")
	}
	t, err := e.tableRef(s, p)
	if err != nil {
		return err
	}
	if p.accept("PARTITION") {
		p.skipBalanced()
		if p.peek().kind == tokIdent && !p.peek().is("WHERE") {
			p.next()
		}
	}
	if !p.accept("WHERE") {
		return errorf("Where clause only supports compound predicate, binary predicate, is_null predicate or in predicate")
	}
	cond := p.rest()
	e.pub.Lock()
	defer e.pub.Unlock()
	for _, tx := range e.txns.pendingFor(t) {
		if err := e.applyStaged(ctx, tx); err != nil {
			return err
		}
		e.txns.set(tx, TxnVisible, "")
	}
	e.cat.mu.RLock()
	base, model := t.base(), t.Model
	e.cat.mu.RUnlock()
	var stmt string
	if model == ModelUnique {
		del := quoteIdent(colDeleteSign)
		stmt = "UPDATE " + base + " SET " + del + " = 1 WHERE " + del + " = 0 AND (" + cond + ")"
	} else {
		stmt = "DELETE FROM " + base + " WHERE " + cond
	}
	if _, err := e.maria.db.ExecContext(ctx, stmt); err != nil {
		return translateMaria(err, t.DB)
	}
	return nil
}
