// Package pgverify reads a PostgreSQL database's side of a verification
// (sluice verify): checksums of key ranges, rows in canonical form, the
// keys that split a range. Everything is computed inside the database,
// so an equal table costs one checksum query at each end.
//
// The canonical form is text that reads the same at both ends whatever
// each server's representation: numerics without trailing zeros,
// timestamps in UTC to the microsecond (a date as a timestamp, which is
// what PolarDB-O's DATE holds), JSON as jsonb prints it (keys ordered),
// floats in their shortest exact form, bytea in hex. Each query runs in
// a transaction that sets the output settings it depends on.
package pgverify

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// DB is a pool or a connection.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Role says which end of the task a database is: the table's name, its
// columns' names and the row filter differ.
type Role int

const (
	Source Role = iota
	Destination
)

// Side is one database's side of a verification.
type Side struct {
	db   DB
	role Role
	mu   sync.Mutex
	info map[string]*tableInfo
}

// New returns the side of db, as role.
func New(db DB, role Role) *Side {
	return &Side{db: db, role: role, info: map[string]*tableInfo{}}
}

// tableInfo is a table as this side queries it.
type tableInfo struct {
	from     string   // the table, quoted
	canon    []string // per compared column, its canonical text
	keyCols  []string // the key's columns, quoted (with COLLATE "C" when byte order)
	keyTypes []string // the key's column types, to cast bounds to
	keyColls []string // the key's effective collations ("" when not collatable)
	filter   string   // "" or a condition
	hash     string   // the row's hash, a bigint
	keyBases []string // the key's columns' base types
	raw      []string // per compared column, its text as the apply takes it
}

const settings = `SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL TimeZone = 'UTC';
SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'`

// run runs fn in a read-only repeatable-read transaction with the
// output settings the canonical form depends on.
func (s *Side) run(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, settings); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *Side) names(t *proto.VerifyTable) (proto.TableID, []string) {
	if s.role == Source {
		return t.Source, t.Columns
	}
	return t.Dest, t.DestColumns
}

// describe reads the table's columns at this side, once.
func (s *Side) describe(ctx context.Context, t *proto.VerifyTable, byteOrder bool) (*tableInfo, error) {
	id, cols := s.names(t)
	cacheKey := fmt.Sprintf("%s/%v/%v", id.Key(), byteOrder, t.LegacyHash)
	s.mu.Lock()
	ti := s.info[cacheKey]
	s.mu.Unlock()
	if ti != nil {
		return ti, nil
	}
	from := pgx.Identifier{id.Schema, id.Name}.Sanitize()
	type column struct{ typ, base, coll string }
	found := map[string]column{}
	err := s.run(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT a.attname, format_type(a.atttypid, a.atttypmod),
			       CASE WHEN t.typcategory = 'A' THEN 'array' ELSE bt.typname::text END,
			       CASE WHEN a.attcollation = 0 THEN ''
			            WHEN co.collname = 'default' THEN (SELECT datcollate::text FROM pg_database WHERE datname = current_database())
			            ELSE co.collname::text END
			FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
			JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
			LEFT JOIN pg_collation co ON co.oid = a.attcollation
			WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`, from)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var c column
			if err := rows.Scan(&name, &c.typ, &c.base, &c.coll); err != nil {
				return err
			}
			found[name] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", id, err)
	}
	ti = &tableInfo{from: from}
	var rowItems []string
	for _, name := range cols {
		c, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("%s has no column %q", id, name)
		}
		q := pgx.Identifier{name}.Sanitize()
		canon := canonical(q, c.base)
		ti.canon = append(ti.canon, canon)
		if textCanonical[c.base] {
			// Its own output is the canonical text: the record prints it
			// without a cast first.
			rowItems = append(rowItems, q)
		} else {
			rowItems = append(rowItems, canon)
		}
		ti.raw = append(ti.raw, q+"::text")
	}
	// The row's canonical texts as one record's text (NULL and '' differ
	// there), hashed to 64 bits: by hashtextextended (PostgreSQL 11), or,
	// when one end is older (Greenplum 6), md5's first 64 bits at both.
	row := "ROW(" + strings.Join(rowItems, ", ") + ")::text"
	if t.LegacyHash {
		ti.hash = "('x' || substr(md5(" + row + "), 1, 16))::bit(64)::bigint"
	} else {
		ti.hash = "hashtextextended(" + row + ", 0)"
	}
	for _, k := range t.Key {
		name := cols[k]
		c := found[name]
		q := pgx.Identifier{name}.Sanitize()
		if byteOrder && c.coll != "" {
			q += ` COLLATE "C"`
		}
		ti.keyCols = append(ti.keyCols, q)
		ti.keyTypes = append(ti.keyTypes, c.typ)
		ti.keyBases = append(ti.keyBases, c.base)
		ti.keyColls = append(ti.keyColls, c.coll)
	}
	if s.role == Source && t.Filter != "" {
		cond, err := proto.FilterCondition(t.Filter)
		if err != nil {
			return nil, fmt.Errorf("%s: filter: %w", id, err)
		}
		ti.filter = cond
	}
	s.mu.Lock()
	s.info[cacheKey] = ti
	s.mu.Unlock()
	return ti, nil
}

// textCanonical are the types whose text output is already canonical,
// the same whichever of them the other end has (an integer of another
// width, a uuid kept as text).
var textCanonical = map[string]bool{"int2": true, "int4": true, "int8": true, "text": true, "varchar": true, "bool": true, "uuid": true}

// canonical is a column's canonical text, by its (base) type.
func canonical(col, base string) string {
	switch base {
	case "numeric":
		// trim_scale, written to run on servers before PostgreSQL 13
		// (Greenplum) too.
		return "CASE WHEN " + col + "::text LIKE '%.%' THEN rtrim(rtrim(" + col + "::text, '0'), '.') ELSE " + col + "::text END"
	case "timestamptz":
		return "CASE WHEN isfinite(" + col + ") THEN to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ELSE " + col + "::text END"
	case "timestamp", "date":
		return "CASE WHEN isfinite(" + col + ") THEN to_char(" + col + "::timestamp, 'YYYY-MM-DD HH24:MI:SS.US') ELSE " + col + "::text END"
	case "json", "jsonb":
		return col + "::jsonb::text"
	}
	return col + "::text"
}

// Describe is how this side reads the table: its name (quoted), each
// compared column's type, and the SQL of a row's hash and of each
// column's canonical text.
type Describe struct {
	Table string
	Hash  string
	Canon []string
}

// Describe describes the table at this side.
func (s *Side) Describe(ctx context.Context, t *proto.VerifyTable) (*Describe, error) {
	ti, err := s.describe(ctx, t, false)
	if err != nil {
		return nil, err
	}
	return &Describe{Table: ti.from, Hash: ti.hash, Canon: ti.canon}, nil
}

// Settings are the output settings the canonical form depends on, for
// a transaction that writes canonical texts back (SET LOCAL).
const Settings = settings

// KeyCollations are the effective collations of the table's key columns
// at this side ("" where a column is not collatable).
func (s *Side) KeyCollations(ctx context.Context, t *proto.VerifyTable) ([]string, error) {
	ti, err := s.describe(ctx, t, false)
	if err != nil {
		return nil, err
	}
	return ti.keyColls, nil
}

// where builds the condition of a range (and the filter), with its
// arguments numbered from $1.
func (ti *tableInfo) where(r proto.KeyRange) (string, []any) {
	var conds []string
	var args []any
	if ti.filter != "" {
		conds = append(conds, ti.filter)
	}
	bound := func(values []string, op string) {
		if values == nil {
			return
		}
		params := make([]string, len(values))
		for i, v := range values {
			args = append(args, v)
			params[i] = fmt.Sprintf("$%d::text::%s", len(args), ti.keyTypes[i])
			if strings.HasSuffix(ti.keyCols[i], `COLLATE "C"`) {
				params[i] += ` COLLATE "C"`
			}
		}
		conds = append(conds, "("+strings.Join(ti.keyCols, ", ")+") "+op+" ("+strings.Join(params, ", ")+")")
	}
	if len(ti.keyCols) == 1 {
		// A one-column key: no row constructor, which a plain index
		// serves better.
		bound = func(values []string, op string) {
			if values == nil {
				return
			}
			args = append(args, values[0])
			p := fmt.Sprintf("$%d::text::%s", len(args), ti.keyTypes[0])
			if strings.HasSuffix(ti.keyCols[0], `COLLATE "C"`) {
				p += ` COLLATE "C"`
			}
			conds = append(conds, ti.keyCols[0]+" "+op+" "+p)
		}
	}
	bound(r.From, ">=")
	bound(r.To, "<")
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// Checksums returns each range's row count and hash sum. A keyless
// table has one range, the whole table.
func (s *Side) Checksums(ctx context.Context, t *proto.VerifyTable, byteOrder bool, ranges []proto.KeyRange) ([]proto.RangeSum, error) {
	ti, err := s.describe(ctx, t, byteOrder)
	if err != nil {
		return nil, err
	}
	out := make([]proto.RangeSum, len(ranges))
	err = s.run(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, r := range ranges {
			where, args := ti.where(r)
			// The rows' 64-bit hashes summed: order does not matter, and
			// sum(bigint) accumulates without overflow.
			b.Queue(`SELECT count(*), coalesce(sum(`+ti.hash+`), 0)::text FROM `+ti.from+` WHERE `+where, args...)
		}
		res := tx.SendBatch(ctx, b)
		defer res.Close()
		for i := range ranges {
			if err := res.QueryRow().Scan(&out[i].Rows, &out[i].Sum); err != nil {
				return err
			}
		}
		return res.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("checksum %s: %w", ti.from, err)
	}
	return out, nil
}

// Rows reads a range's rows in canonical form, in key order; for a
// keyless table (r is then the whole table), each distinct row once with
// its count.
func (s *Side) Rows(ctx context.Context, t *proto.VerifyTable, byteOrder bool, r proto.KeyRange) ([]proto.VerifyRow, error) {
	ti, err := s.describe(ctx, t, byteOrder)
	if err != nil {
		return nil, err
	}
	where, args := ti.where(r)
	var sql string
	if t.Keyless() {
		sql = `SELECT NULL::text[], h::text, min(v), count(*) FROM (SELECT ` + ti.hash + ` AS h, ARRAY[` + strings.Join(ti.canon, ", ") + `]::text[] AS v
			FROM ` + ti.from + ` WHERE ` + where + `) s GROUP BY h ORDER BY h`
	} else {
		sql = `SELECT ARRAY[` + ti.keyCanon(t) + `]::text[], (` + ti.hash + `)::text, ARRAY[` + strings.Join(ti.canon, ", ") + `]::text[], 1
			FROM ` + ti.from + ` WHERE ` + where + ` ORDER BY ` + strings.Join(ti.keyCols, ", ")
	}
	return s.readRows(ctx, ti, sql, args)
}

func (ti *tableInfo) keyCanon(t *proto.VerifyTable) string {
	parts := make([]string, len(t.Key))
	for i, k := range t.Key {
		parts[i] = ti.canon[k]
	}
	return strings.Join(parts, ", ")
}

func (s *Side) readRows(ctx context.Context, ti *tableInfo, sql string, args []any) ([]proto.VerifyRow, error) {
	var out []proto.VerifyRow
	err := s.run(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r proto.VerifyRow
			if err := rows.Scan(&r.Key, &r.Hash, &r.Values, &r.Count); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read rows of %s: %w", ti.from, err)
	}
	return out, nil
}

// keysCondition is the condition that picks keys (canonical texts) and
// passes the filter, with its arguments from $first.
func (ti *tableInfo) keysCondition(keys [][]string, first int) (string, []any) {
	cols := make([][]string, len(ti.keyCols))
	for _, k := range keys {
		for i := range cols {
			cols[i] = append(cols[i], k[i])
		}
	}
	params := make([]string, len(cols))
	names := make([]string, len(cols))
	casts := make([]string, len(cols))
	args := make([]any, len(cols))
	for i := range cols {
		params[i] = fmt.Sprintf("$%d::text[]", first+i)
		names[i] = fmt.Sprintf("k%d", i)
		casts[i] = fmt.Sprintf("k%d::%s", i, ti.keyTypes[i])
		args[i] = cols[i]
	}
	plain := make([]string, len(ti.keyCols))
	for i, c := range ti.keyCols {
		plain[i] = strings.TrimSuffix(c, ` COLLATE "C"`)
	}
	cond := "(" + strings.Join(plain, ", ") + ") IN (SELECT " + strings.Join(casts, ", ") + " FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(names, ", ") + "))"
	if ti.filter != "" {
		// A source row outside the filter is not the destination's.
		cond += " AND " + ti.filter
	}
	return cond, args
}

// RowsByKey reads the rows of keys in canonical form (a key not found
// is left out).
func (s *Side) RowsByKey(ctx context.Context, t *proto.VerifyTable, keys [][]string) ([]proto.VerifyRow, error) {
	if t.Keyless() {
		return nil, errors.New("a keyless table has no keys")
	}
	ti, err := s.describe(ctx, t, false)
	if err != nil {
		return nil, err
	}
	cond, args := ti.keysCondition(keys, 1)
	sql := `SELECT ARRAY[` + ti.keyCanon(t) + `]::text[], (` + ti.hash + `)::text, ARRAY[` + strings.Join(ti.canon, ", ") + `]::text[], 1
		FROM ` + ti.from + ` WHERE ` + cond
	return s.readRows(ctx, ti, sql, args)
}

// SourceRead is what a source read of keys saw: the rows in canonical
// form, each row's version (xmin and ctid: changed when the row is), the
// rows as the apply takes them (text of each compared column; nil NULL)
// and the source's WAL position once they were read.
type SourceRead struct {
	Rows     []proto.VerifyRow
	Versions map[string]string
	Raw      map[string][]*string
	LSN      proto.LSN
}

// ReadKeys reads the rows of keys at the source, with their versions
// and the WAL position after the read (every change those rows had is
// below it).
func (s *Side) ReadKeys(ctx context.Context, t *proto.VerifyTable, keys [][]string) (*SourceRead, error) {
	ti, err := s.describe(ctx, t, false)
	if err != nil {
		return nil, err
	}
	cond, args := ti.keysCondition(keys, 1)
	sql := `SELECT ARRAY[` + ti.keyCanon(t) + `]::text[], (` + ti.hash + `)::text, ARRAY[` + strings.Join(ti.canon, ", ") + `]::text[],
		xmin::text || '/' || ctid::text, ARRAY[` + strings.Join(ti.raw, ", ") + `]::text[]
		FROM ` + ti.from + ` WHERE ` + cond
	out := &SourceRead{Versions: map[string]string{}, Raw: map[string][]*string{}}
	err = s.run(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r proto.VerifyRow
			var version string
			var raw []*string
			if err := rows.Scan(&r.Key, &r.Hash, &r.Values, &version, &raw); err != nil {
				rows.Close()
				return err
			}
			r.Count = 1
			k := KeyString(r.Key)
			out.Rows = append(out.Rows, r)
			out.Versions[k] = version
			out.Raw[k] = raw
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var lsn string
		if err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
			return err
		}
		out.LSN, err = proto.ParseLSN(lsn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read rows of %s: %w", ti.from, err)
	}
	return out, nil
}

// Split returns up to n-1 keys that cut a range into n parts: of about
// the same number of rows, from one pass over the range's keys; for a
// key of one integer column, of the same width between the range's
// smallest and largest key (two index lookups).
func (s *Side) Split(ctx context.Context, t *proto.VerifyTable, byteOrder bool, r proto.KeyRange, rows int64, n int) ([][]string, error) {
	ti, err := s.describe(ctx, t, byteOrder)
	if err != nil {
		return nil, err
	}
	where, args := ti.where(r)
	if ti.integerKey() {
		return s.splitIntegers(ctx, ti, where, args, n)
	}
	step := max(rows/int64(n), 1)
	args = append(args, step, n-1)
	sql := fmt.Sprintf(`SELECT k FROM (SELECT ARRAY[%s]::text[] AS k, row_number() OVER (ORDER BY %s) AS rn FROM %s WHERE %s) s
		WHERE rn %% $%d = 1 AND rn > 1 ORDER BY rn LIMIT $%d`, ti.keyCanon(t), strings.Join(ti.keyCols, ", "), ti.from, where, len(args)-1, len(args))
	var out [][]string
	err = s.run(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k []string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("split a range of %s: %w", ti.from, err)
	}
	return out, nil
}

// integerKey: the key is one column of an integer type.
func (ti *tableInfo) integerKey() bool {
	return len(ti.keyBases) == 1 && (ti.keyBases[0] == "int2" || ti.keyBases[0] == "int4" || ti.keyBases[0] == "int8")
}

// splitIntegers cuts a range of an integer key into n of the same width.
func (s *Side) splitIntegers(ctx context.Context, ti *tableInfo, where string, args []any, n int) ([][]string, error) {
	var lo, hi *string
	err := s.run(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT min(`+ti.keyCols[0]+`)::text, max(`+ti.keyCols[0]+`)::text FROM `+ti.from+` WHERE `+where, args...).Scan(&lo, &hi)
	})
	if err != nil {
		return nil, fmt.Errorf("split a range of %s: %w", ti.from, err)
	}
	if lo == nil || hi == nil {
		return nil, nil
	}
	low, ok1 := new(big.Int).SetString(*lo, 10)
	high, ok2 := new(big.Int).SetString(*hi, 10)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("split a range of %s: keys %q and %q are not integers", ti.from, *lo, *hi)
	}
	width := new(big.Int).Sub(high, low)
	var out [][]string
	prev := new(big.Int).Set(low)
	for i := 1; i < n; i++ {
		// low + width*i/n, rounded up: every cut is above low.
		cut := new(big.Int).Mul(width, big.NewInt(int64(i)))
		cut.Add(cut, big.NewInt(int64(n-1)))
		cut.Quo(cut, big.NewInt(int64(n)))
		cut.Add(cut, low)
		if cut.Cmp(prev) <= 0 || cut.Cmp(high) > 0 {
			continue
		}
		out = append(out, []string{cut.String()})
		prev = cut
	}
	return out, nil
}

// CheapSplit reports whether Split costs two index lookups (a key of
// one integer column) rather than a pass over the range.
func (s *Side) CheapSplit(ctx context.Context, t *proto.VerifyTable) (bool, error) {
	ti, err := s.describe(ctx, t, false)
	if err != nil {
		return false, err
	}
	return ti.integerKey(), nil
}

// EstimatedRows is the planner's estimate of the table's rows.
func (s *Side) EstimatedRows(ctx context.Context, t *proto.VerifyTable) (int64, error) {
	ti, err := s.describe(ctx, t, false)
	if err != nil {
		return 0, err
	}
	var n float64
	err = s.run(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = $1::regclass`, ti.from).Scan(&n)
	})
	return int64(n), err
}

// ServerVersion is the server's version number (server_version_num).
func (s *Side) ServerVersion(ctx context.Context) (int, error) {
	var v int
	err := s.run(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&v)
	})
	return v, err
}

// HashedSince is the first server version with hashtextextended: when
// either end is older, both hash with md5 (VerifyTable.LegacyHash).
const HashedSince = 110000

// CurrentLSN is the database's WAL position now.
func (s *Side) CurrentLSN(ctx context.Context) (proto.LSN, error) {
	var lsn proto.LSN
	err := s.run(ctx, func(tx pgx.Tx) error {
		var text string
		if err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()::text`).Scan(&text); err != nil {
			return err
		}
		var err error
		lsn, err = proto.ParseLSN(text)
		return err
	})
	return lsn, err
}

// KeyString is a key as one map key.
func KeyString(key []string) string { return strings.Join(key, "\x00") }
