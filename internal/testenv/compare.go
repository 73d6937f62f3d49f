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
		return fmt.Sprintf("%s: source %d rows (sum %s), destination %d rows (sum %s)", dstTable, a.Rows, a.Sum, b.Rows, b.Sum), nil
	}
	return "", nil
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
