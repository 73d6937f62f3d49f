package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// Verification (sluice verify) at a PostgreSQL destination: the rows
// are read as the source's are (verify/pgverify), and a repair writes the
// source's rows while it holds the table's apply positions.

// VerifyReader reads the destination's side of a verification.
func (s *Sink) VerifyReader() apply.VerifyReader { return pgverify.New(s.pool, pgverify.Destination) }

// Repair writes the source's rows of keys over the destination's
// (apply.Repairer).
func (s *Sink) Repair(ctx context.Context, task string, t *proto.VerifyTable, keys [][]string, read func(context.Context) (*apply.SourceRows, error)) (int, error) {
	tx, err := s.beginRepair(ctx, task, t)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after a commit there is nothing to roll back
	types, generated, err := destColumnTypes(ctx, tx, t)
	if err != nil {
		return 0, err
	}
	src, err := read(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the source's rows: %w", err)
	}
	rows := src.Rows
	table := ddlTableIdent(t.Dest)
	var cols, params, updates, keyCols []string
	var writable []int
	for i, c := range t.DestColumns {
		if generated[c] {
			continue
		}
		writable = append(writable, i)
		q := quoteDDLIdent(c)
		cols = append(cols, q)
		params = append(params, fmt.Sprintf("$%d::text::%s", len(cols), types[c]))
		updates = append(updates, q+" = EXCLUDED."+q)
	}
	for _, k := range t.Key {
		keyCols = append(keyCols, quoteDDLIdent(t.DestColumns[k]))
	}
	upsert := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") OVERRIDING SYSTEM VALUE VALUES (" + strings.Join(params, ", ") +
		") ON CONFLICT (" + strings.Join(keyCols, ", ") + ") DO UPDATE SET " + strings.Join(updates, ", ")
	keyParams := make([]string, len(t.Key))
	for i, k := range t.Key {
		keyParams[i] = fmt.Sprintf("$%d::text::%s", i+1, types[t.DestColumns[k]])
	}
	del := "DELETE FROM " + table + " WHERE (" + strings.Join(keyCols, ", ") + ") = (" + strings.Join(keyParams, ", ") + ")"
	n := 0
	for _, key := range keys {
		raw, ok := rows[pgverify.KeyString(key)]
		if !ok {
			args := make([]any, len(key))
			for i, v := range key {
				args[i] = v
			}
			if _, err := tx.Exec(ctx, del, args...); err != nil {
				return 0, fmt.Errorf("repair %s: delete: %w", t.Dest, err)
			}
			n++
			continue
		}
		args := make([]any, len(writable))
		for i, c := range writable {
			if raw[c] != nil {
				args[i] = *raw[c]
			}
		}
		if _, err := tx.Exec(ctx, upsert, args...); err != nil {
			return 0, fmt.Errorf("repair %s: write: %w", t.Dest, err)
		}
		n++
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	s.forgetTable(t.Dest)
	return n, nil
}

// beginRepair starts a repair's transaction: writing as the apply
// does, holding the table's apply positions (the apply of the table
// waits meanwhile).
func (s *Sink) beginRepair(ctx context.Context, task string, t *proto.VerifyTable) (pgx.Tx, error) {
	if s.tw != nil {
		return nil, errors.New("a two-way task's destination is also its source: repair it by hand, or verify the direction that writes it")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (pgx.Tx, error) {
		tx.Rollback(context.Background()) //nolint:errcheck // the error says what went wrong
		return nil, err
	}
	if s.replicaMode.Load() {
		// As the apply writes: the destination's triggers and foreign
		// keys leave replicated rows alone.
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return fail(err)
		}
	} else if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
		return fail(err)
	}
	// What the source changes after the positions lands on top.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM sluice.apply_offsets WHERE task = $1 AND schema_name = $2 AND table_name = $3 FOR UPDATE`,
		task, t.Dest.Schema, t.Dest.Name); err != nil {
		return fail(fmt.Errorf("lock the apply positions of %s: %w", t.Dest, err))
	}
	return tx, nil
}

// RepairKeyless adds and deletes copies of a keyless table's rows
// (apply.Repairer). The rows come in canonical form, which reads back
// as the same values under the canonical output settings.
func (s *Sink) RepairKeyless(ctx context.Context, task string, t *proto.VerifyTable, rows []proto.VerifyRow) (int, error) {
	desc, err := pgverify.New(s.pool, pgverify.Destination).Describe(ctx, t)
	if err != nil {
		return 0, err
	}
	tx, err := s.beginRepair(ctx, task, t)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after a commit there is nothing to roll back
	if _, err := tx.Exec(ctx, pgverify.Settings); err != nil {
		return 0, err
	}
	types, generated, err := destColumnTypes(ctx, tx, t)
	if err != nil {
		return 0, err
	}
	var cols, params []string
	var writable []int
	for i, c := range t.DestColumns {
		if generated[c] {
			continue
		}
		writable = append(writable, i)
		cols = append(cols, quoteDDLIdent(c))
		params = append(params, fmt.Sprintf("$%d::text::%s", len(cols), types[c]))
	}
	insert := "INSERT INTO " + desc.Table + " (" + strings.Join(cols, ", ") + ") OVERRIDING SYSTEM VALUE VALUES (" + strings.Join(params, ", ") + ")"
	del := "DELETE FROM " + desc.Table + " WHERE ctid IN (SELECT ctid FROM " + desc.Table + " WHERE (" + desc.Hash + ")::text = $1 LIMIT $2)"
	n := 0
	for _, r := range rows {
		if r.Count < 0 {
			tag, err := tx.Exec(ctx, del, r.Hash, -r.Count)
			if err != nil {
				return 0, fmt.Errorf("repair %s: delete: %w", t.Dest, err)
			}
			n += int(tag.RowsAffected())
			continue
		}
		args := make([]any, len(writable))
		for i, c := range writable {
			if r.Values[c] != nil {
				args[i] = *r.Values[c]
			}
		}
		for range r.Count {
			if _, err := tx.Exec(ctx, insert, args...); err != nil {
				return 0, fmt.Errorf("repair %s: write: %w", t.Dest, err)
			}
			n++
		}
	}
	return n, tx.Commit(ctx)
}

// destColumnTypes reads the destination table's column types, and
// which columns it generates.
func destColumnTypes(ctx context.Context, tx pgx.Tx, t *proto.VerifyTable) (map[string]string, map[string]bool, error) {
	rows, err := tx.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod), attgenerated <> '' FROM pg_catalog.pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, ddlTableIdent(t.Dest))
	if err != nil {
		return nil, nil, fmt.Errorf("read the columns of %s: %w", t.Dest, err)
	}
	defer rows.Close()
	types, generated := map[string]string{}, map[string]bool{}
	for rows.Next() {
		var name, typ string
		var gen bool
		if err := rows.Scan(&name, &typ, &gen); err != nil {
			return nil, nil, err
		}
		types[name], generated[name] = typ, gen
	}
	return types, generated, rows.Err()
}

var (
	_ apply.Verifiable = (*Sink)(nil)
	_ apply.Repairer   = (*Sink)(nil)
)
