package testenv

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TableSum is a table's content fingerprint: the row count and an
// order-independent sum of a hash of every row's text form. Equal sums
// mean equal multisets of rows (duplicates count), whatever the physical
// order.
type TableSum struct {
	Rows int64
	Sum  string
}

// ChecksumTable fingerprints a table over all its columns.
func ChecksumTable(ctx context.Context, conn *pgx.Conn, table string) (TableSum, error) {
	var s TableSum
	err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), COALESCE(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text FROM %s AS t`, table)).Scan(&s.Rows, &s.Sum)
	return s, err
}

// CompareTables fingerprints each table on both sides and returns an
// error naming every table that differs.
func CompareTables(ctx context.Context, src, dst *pgx.Conn, tables []string) error {
	var diffs []string
	for _, t := range tables {
		diff, err := compareOne(ctx, src, dst, t, t)
		if err != nil {
			return err
		}
		if diff != "" {
			diffs = append(diffs, diff)
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("contents differ:\n  %s", strings.Join(diffs, "\n  "))
	}
	return nil
}

// CompareTable fingerprints srcTable at the source and dstTable at the
// destination (a table, or a parenthesised query standing for one, such
// as the source rows a filter or renames make the destination's).
func CompareTable(ctx context.Context, src, dst *pgx.Conn, srcTable, dstTable string) error {
	diff, err := compareOne(ctx, src, dst, srcTable, dstTable)
	if err == nil && diff != "" {
		err = fmt.Errorf("contents differ: %s", diff)
	}
	return err
}

func compareOne(ctx context.Context, src, dst *pgx.Conn, srcTable, dstTable string) (string, error) {
	a, err := ChecksumTable(ctx, src, srcTable)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", srcTable, err)
	}
	b, err := ChecksumTable(ctx, dst, dstTable)
	if err != nil {
		return "", fmt.Errorf("destination %s: %w", dstTable, err)
	}
	if a != b {
		diff := fmt.Sprintf("%s: source %d rows (sum %s), destination %d rows (sum %s)", dstTable, a.Rows, a.Sum, b.Rows, b.Sum)
		if a.Rows <= rowDiffLimit && b.Rows <= rowDiffLimit {
			diff += rowDiff(ctx, src, dst, srcTable, dstTable)
		}
		return diff, nil
	}
	return "", nil
}

// rowDiffLimit bounds the tables whose differing rows a failed comparison
// lists: reading every row is cheap only for small ones.
const rowDiffLimit = 2000

// rowDiff lists up to five rows (their text form) that one side has and
// the other has not, or has fewer times: what a failed comparison needs
// to be understood after the clusters are gone.
func rowDiff(ctx context.Context, src, dst *pgx.Conn, srcTable, dstTable string) string {
	rowsOf := func(conn *pgx.Conn, table string) (map[string]int, error) {
		rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %s AS t`, table))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				return nil, err
			}
			out[r]++
		}
		return out, rows.Err()
	}
	a, err := rowsOf(src, srcTable)
	if err != nil {
		return ""
	}
	b, err := rowsOf(dst, dstTable)
	if err != nil {
		return ""
	}
	only := func(x, y map[string]int) []string {
		var out []string
		for r, n := range x {
			if n > y[r] && len(out) < 5 {
				if len(r) > 300 {
					r = r[:300] + "..."
				}
				out = append(out, r)
			}
		}
		return out
	}
	return fmt.Sprintf("; only at the source: %q; only at the destination: %q", only(a, b), only(b, a))
}

// SourceLeftovers returns an error naming what Sluice objects remain in a
// source database: replication slots, publications, the sluice schema.
func SourceLeftovers(ctx context.Context, conn *pgx.Conn) error {
	var slots, pubs, triggers int
	var schema bool
	err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication),
		(SELECT count(*) FROM pg_event_trigger), EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'sluice')`).Scan(&slots, &pubs, &triggers, &schema)
	if err != nil {
		return err
	}
	if slots != 0 || pubs != 0 || triggers != 0 || schema {
		return fmt.Errorf("left in the source: %d replication slots, %d publications, %d event triggers, sluice schema %v", slots, pubs, triggers, schema)
	}
	return nil
}
