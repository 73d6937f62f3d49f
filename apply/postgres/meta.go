package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// tableMeta is what apply needs to know of a destination table: the type
// of each column (to cast text values) and the primary key (to coalesce
// and upsert). It is read from the destination, not trusted from the
// source, so a key the user chose at the destination is the one used.
type tableMeta struct {
	types map[string]string // column -> format_type
	pk    []string
	// generated are the columns the apply computes (AnalyticDB).
	generated []generatedColumn
	// fixed are GENERATED ALWAYS identity columns: PostgreSQL refuses to
	// UPDATE them, and the source cannot change them either.
	fixed map[string]bool
	// entangled: the table has unique or exclusion constraints besides its
	// key, so changes to different keys do not commute (two rows swapping
	// a unique value): it is never written by several sessions at once.
	entangled bool
}

// metaQuerier is what reading tables' metadata needs: the pool, or a
// session.
type metaQuerier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// meta returns what apply needs of destination table t, read once per
// sink (forgetTable reads it again).
func (s *Sink) meta(ctx context.Context, q metaQuerier, t proto.TableID) (*tableMeta, error) {
	if m := s.knownMeta(t); m != nil {
		return m, nil
	}
	metas, err := s.readMetas(ctx, q, []proto.TableID{t})
	if err != nil {
		return nil, fmt.Errorf("read columns of %s at the destination: %w", t, err)
	}
	m := metas[t]
	if m == nil {
		return nil, fmt.Errorf("table %s does not exist at the destination", t)
	}
	return m, nil
}

func (s *Sink) knownMeta(t proto.TableID) *tableMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metas[t.Key()]
}

// preloadMetas reads the metadata of those of tables the sink does not
// know yet in one query, not a few round trips per table: a batch over
// thousands of tables, the first after a task starts, would otherwise
// wait on thousands of catalog queries. When it fails (a table is missing
// at the destination), each table's own read says which and why.
func (s *Sink) preloadMetas(ctx context.Context, q metaQuerier, tables []proto.TableID) {
	var unknown []proto.TableID
	for _, t := range tables {
		if s.knownMeta(t) == nil {
			unknown = append(unknown, t)
		}
	}
	if len(unknown) < 2 {
		return
	}
	if _, err := s.readMetas(ctx, q, unknown); err != nil {
		s.logger.Debug("reading the metadata of many destination tables at once failed; reading them one by one", "tables", len(unknown), "err", err)
	}
}

// readMetas reads the columns, primary key and unique constraints of
// tables and remembers them.
func (s *Sink) readMetas(ctx context.Context, q metaQuerier, tables []proto.TableID) (map[proto.TableID]*tableMeta, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = tableName(t)
	}
	// The cast to regclass[] fails as a whole for a missing table.
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT u.i, a.attname, format_type(a.atttypid, a.atttypmod), COALESCE(k.ord, 0), %s,
		EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND NOT x.indisprimary AND (x.indisunique OR x.indisexclusion))
	FROM unnest($1::text[]::regclass[]) WITH ORDINALITY AS u(rel, i)
	JOIN pg_attribute a ON a.attrelid = u.rel
	LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
	LEFT JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON k.attnum = a.attnum
	WHERE a.attnum > 0 AND NOT a.attisdropped`, s.dialect.alwaysIdentity()), names)
	if err != nil {
		return nil, err
	}
	metas := make(map[proto.TableID]*tableMeta, len(tables))
	keys := make(map[proto.TableID]map[int64]string, len(tables))
	for rows.Next() {
		var i, ord int64
		var name, typ string
		var always, entangled bool
		if err := rows.Scan(&i, &name, &typ, &ord, &always, &entangled); err != nil {
			rows.Close()
			return nil, err
		}
		t := tables[i-1]
		m := metas[t]
		if m == nil {
			m = &tableMeta{types: map[string]string{}, fixed: map[string]bool{}, entangled: entangled}
			metas[t], keys[t] = m, map[int64]string{}
		}
		m.types[name] = s.dialect.castType(typ)
		if always {
			m.fixed[name] = true
		}
		if ord > 0 {
			keys[t][ord] = name
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for t, m := range metas {
		for i := int64(1); i <= int64(len(keys[t])); i++ {
			m.pk = append(m.pk, keys[t][i])
		}
		if m.generated, err = s.dialect.readGenerated(ctx, q, t); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	for t, m := range metas {
		s.metas[t.Key()] = m
	}
	s.mu.Unlock()
	return metas, nil
}

// segmentPlan maps a segment's columns onto the destination table.
type segmentPlan struct {
	table  proto.TableID
	names  []string // column names, in segment order
	types  []string // destination types, in segment order
	keyIdx []int    // positions of the destination's primary key columns
	// shardable: the table's rows may be written by several sessions.
	shardable bool
	// entangled: unique constraints besides the key (tableMeta).
	entangled bool
	// settable marks the columns an UPDATE may assign: not the key, not
	// a GENERATED ALWAYS identity.
	settable []bool
	// generated are the columns the apply computes after writing
	// (AnalyticDB: noconflict.go).
	generated []generatedColumn
}

// missingColumn is the error of a change that carries a column the
// destination's table lacks: the source added it while DDL sync was off
// (or left that operation out). It says what to do; the apply retries in
// the window of other failures and goes on by itself once the column is
// there (the table's columns are read again: forgetTable).
func missingColumn(t proto.TableID, c proto.Column) error {
	typ := pgvalue.TypeName(c.TypeOID, c.TypeMod)
	if strings.HasPrefix(typ, "oid:") {
		typ = "<its type at the source>"
	}
	return fmt.Errorf("column %s of table %s does not exist at the destination: add it there (ALTER TABLE %s ADD COLUMN %s %s) or enable sync.ddl; the task goes on by itself once the column exists",
		c.Name, t, tableName(t), ident(c.Name), typ)
}

func planSegment(m *tableMeta, t proto.TableID, cols []proto.Column) (*segmentPlan, error) {
	p := &segmentPlan{table: t, names: make([]string, len(cols)), types: make([]string, len(cols)), settable: make([]bool, len(cols)),
		shardable: len(m.pk) > 0 && !m.entangled, entangled: m.entangled, generated: m.generated}
	pos := map[string]int{}
	for i, c := range cols {
		typ, ok := m.types[c.Name]
		if !ok {
			return nil, missingColumn(t, c)
		}
		p.names[i], p.types[i] = c.Name, typ
		p.settable[i] = !m.fixed[c.Name]
		pos[c.Name] = i
	}
	for _, k := range m.pk {
		i, ok := pos[k]
		if !ok {
			return nil, fmt.Errorf("primary key column %q of %s at the destination is not replicated from the source", k, t)
		}
		p.keyIdx = append(p.keyIdx, i)
		p.settable[i] = false
	}
	return p, nil
}
