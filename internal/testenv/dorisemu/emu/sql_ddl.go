package emu

import (
	"context"
	"regexp"
	"strings"
)

var dbNameRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,55}$`)
var tableNameRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,63}$`)

func (e *Emulator) create(ctx context.Context, s session, p *parser) error {
	if err := s.u.check(PrivCreate); err != nil {
		return err
	}
	switch {
	case p.accept("DATABASE") || p.accept("SCHEMA"):
		ifNot := p.accept("IF", "NOT", "EXISTS")
		db, err := p.name()
		if err != nil {
			return err
		}
		if p.accept("PROPERTIES") {
			if _, err := parseProperties(p); err != nil {
				return err
			}
		}
		if !p.eof() {
			return p.errorf("unexpected text")
		}
		if !dbNameRe.MatchString(db) || strings.EqualFold(db, "information_schema") || strings.EqualFold(db, "mysql") {
			return errorf("Incorrect database name '%s'", db)
		}
		e.cat.mu.Lock()
		defer e.cat.mu.Unlock()
		if _, ok := e.cat.dbs[db]; ok {
			if ifNot {
				return nil
			}
			return errorf("Can't create database '%s'; database exists", db)
		}
		for _, schema := range []string{db, baseSchema(db)} {
			if _, err := e.maria.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(schema)); err != nil {
				return translateMaria(err)
			}
		}
		e.cat.dbs[db] = map[string]*Table{}
		return nil
	case p.accept("TABLE"):
		t, ifNot, err := parseCreateTable(p, s.db)
		if err != nil {
			return err
		}
		if !tableNameRe.MatchString(t.Name) {
			return errorf("Incorrect table name '%s'. Table name regex is '%s'", t.Name, tableNameRe)
		}
		e.cat.mu.Lock()
		defer e.cat.mu.Unlock()
		tables, ok := e.cat.dbs[t.DB]
		if !ok {
			return unknownDB(t.DB)
		}
		if _, exists := tables[t.Name]; exists {
			if ifNot {
				return nil
			}
			return errorf("Table '%s' already exists", t.Name)
		}
		if _, err := e.maria.db.ExecContext(ctx, t.createBaseSQL()); err != nil {
			return translateMaria(err)
		}
		if _, err := e.maria.db.ExecContext(ctx, t.createViewSQL()); err != nil {
			_, _ = e.maria.db.ExecContext(ctx, "DROP TABLE "+t.base())
			return translateMaria(err)
		}
		tables[t.Name] = t
		return nil
	}
	return syntaxError("dorisemu supports only CREATE DATABASE and CREATE TABLE")
}

func (e *Emulator) drop(ctx context.Context, s session, p *parser) error {
	if err := s.u.check(PrivDrop); err != nil {
		return err
	}
	switch {
	case p.accept("DATABASE") || p.accept("SCHEMA"):
		ifExists := p.accept("IF", "EXISTS")
		db, err := p.name()
		if err != nil {
			return err
		}
		p.accept("FORCE")
		e.cat.mu.Lock()
		tables, ok := e.cat.dbs[db]
		if !ok {
			e.cat.mu.Unlock()
			if ifExists {
				return nil
			}
			return errorf("Can't drop database '%s'; database doesn't exist", db)
		}
		for _, t := range tables {
			t.dropped = true
		}
		delete(e.cat.dbs, db)
		e.cat.mu.Unlock()
		e.abortTxnsOf(func(tx *txn) bool { return tx.db == db })
		e.txns.dropDB(db)
		for _, schema := range []string{db, baseSchema(db)} {
			if _, err := e.maria.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(schema)); err != nil {
				return translateMaria(err)
			}
		}
		return nil
	case p.accept("TABLE"):
		ifExists := p.accept("IF", "EXISTS")
		db, name, err := p.qualifiedName()
		if err != nil {
			return err
		}
		p.accept("FORCE")
		if db == "" {
			db = s.db
		}
		e.cat.mu.Lock()
		tables, ok := e.cat.dbs[db]
		if !ok {
			e.cat.mu.Unlock()
			return unknownDB(db)
		}
		t, ok := tables[name]
		if !ok {
			e.cat.mu.Unlock()
			if ifExists {
				return nil
			}
			return unknownTable(name)
		}
		t.dropped = true
		delete(tables, name)
		e.cat.mu.Unlock()
		e.abortTxnsOf(func(tx *txn) bool { return tx.table == t })
		if _, err := e.maria.db.ExecContext(ctx, "DROP VIEW IF EXISTS "+t.view()); err != nil {
			return translateMaria(err)
		}
		if _, err := e.maria.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t.base()); err != nil {
			return translateMaria(err)
		}
		return nil
	}
	return syntaxError("dorisemu supports only DROP DATABASE and DROP TABLE")
}

// abortTxnsOf aborts the unfinished transactions of a dropped table or
// database.
func (e *Emulator) abortTxnsOf(match func(*txn) bool) {
	e.txns.mu.Lock()
	var open []*txn
	for _, tx := range e.txns.byID {
		if match(tx) && (tx.status == TxnPrepare || tx.status == TxnPrecommitted || tx.status == TxnCommitted) {
			open = append(open, tx)
		}
	}
	e.txns.mu.Unlock()
	for _, tx := range open {
		e.pub.Lock()
		e.dropStage(tx)
		e.txns.set(tx, TxnAborted, "table dropped")
		e.pub.Unlock()
	}
}

func (e *Emulator) truncate(ctx context.Context, s session, p *parser) error {
	if err := s.u.check(PrivDrop); err != nil {
		return err
	}
	p.accept("TABLE")
	t, err := e.tableRef(s, p)
	if err != nil {
		return err
	}
	e.pub.Lock()
	defer e.pub.Unlock()
	if _, err := e.maria.db.ExecContext(ctx, "TRUNCATE TABLE "+t.base()); err != nil {
		return translateMaria(err)
	}
	return nil
}
