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

func (s *Sink) meta(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}, t proto.TableID) (*tableMeta, error) {
	s.mu.Lock()
	m := s.metas[t.Key()]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT a.attname, format_type(a.atttypid, a.atttypmod),
		COALESCE(k.ord, 0), %s
	FROM pg_attribute a
	LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
	LEFT JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON k.attnum = a.attnum
	WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`, s.dialect.alwaysIdentity()), tableName(t))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s at the destination: %w", t, err)
	}
	m = &tableMeta{types: map[string]string{}, fixed: map[string]bool{}}
	keys := map[int64]string{}
	for rows.Next() {
		var name, typ string
		var ord int64
		var always bool
		if err := rows.Scan(&name, &typ, &ord, &always); err != nil {
			return nil, err
		}
		m.types[name] = s.dialect.castType(typ)
		if always {
			m.fixed[name] = true
		}
		if ord > 0 {
			keys[ord] = name
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s at the destination: %w", t, err)
	}
	if len(m.types) == 0 {
		return nil, fmt.Errorf("table %s does not exist at the destination", t)
	}
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::regclass AND NOT i.indisprimary
			AND (i.indisunique OR i.indisexclusion))`, tableName(t)).Scan(&m.entangled); err != nil {
		return nil, fmt.Errorf("read indexes of %s at the destination: %w", t, err)
	}
	for i := int64(1); i <= int64(len(keys)); i++ {
		m.pk = append(m.pk, keys[i])
	}
	if m.generated, err = s.dialect.readGenerated(ctx, q, t); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.metas[t.Key()] = m
	s.mu.Unlock()
	return m, nil
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
