package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
)

// Filtered incremental scenarios: the bench table with a row filter on a
// column outside its key (k), and updates that flip every row in or out
// of it (k = k + 1 changes k's parity). Sluice evaluates such a filter in
// its capture, with the source's SQL engine over batches of new row
// images, and turns a row leaving the filter into a delete by key and one
// entering it into a whole-row upsert, on the table's default replica
// identity. PostgreSQL's own logical replication takes a publication row
// filter on k only when k is in the replica identity, so the yardstick
// is native replication with the same publication row filter and
// REPLICA IDENTITY FULL on its (separate) source table; its WAL then
// carries every updated row's old image too.
const (
	filterSluiceDB = "filter_sluice"
	filterNativeDB = "filter_native"
	// benchFilter keeps the rows of even k: the markers (k = 0) pass.
	benchFilter = "k % 2 = 0"
)

func filterCases(scale float64) []incrCase {
	m := scaled(1_000_000, scale)
	w := workload{Name: "update", Kind: "update", Rows: m, SeedRows: m, TxRows: 1000,
		What: fmt.Sprintf("%s updates in 1k-row transactions, each moving its row into or out of the filter", count(m))}
	return []incrCase{{Name: "filter/update", Mode: "catchup", W: w, Filter: benchFilter}}
}

// filterNote says, in a scenario's description, what the filter and the
// yardstick are.
func filterNote(filter string) string {
	return fmt.Sprintf("; row filter %q on a non-key column: Sluice evaluates it in its capture on the default replica identity, native has it in its publication with REPLICA IDENTITY FULL", filter)
}

func (b *bench) runFiltered(ctx context.Context) error {
	cases := b.wantedCases(filterCases(b.cfg.Scale))
	if len(cases) == 0 {
		return nil
	}
	if err := b.createBenchDatabases(ctx, filterSluiceDB, filterNativeDB); err != nil {
		return err
	}
	defer b.dropDatabases(filterSluiceDB, filterNativeDB)
	// The native side's table needs the full old row for its filter.
	nsrc, err := connect(ctx, b.src.DSN(filterNativeDB))
	if err != nil {
		return err
	}
	err = execSQL(ctx, nsrc, time.Minute, "ALTER TABLE "+benchTable+" REPLICA IDENTITY FULL")
	nsrc.Close(context.Background())
	if err != nil {
		return err
	}
	env, err := b.openPairEnv(ctx, filterSluiceDB, filterNativeDB, "bench_filter", []string{fmt.Sprintf("%s WHERE (%s)", benchTable, benchFilter)})
	if err != nil {
		return err
	}
	defer env.Close()
	return b.runIncrCases(ctx, env, cases)
}

// seedCase seeds the case's table on both sides; with a filter, the
// destination keeps only the rows that satisfy it.
func seedCase(ctx context.Context, src, dst *pgx.Conn, c incrCase) error {
	if err := seedTables(ctx, src, dst, c.tables(), c.W.SeedRows); err != nil {
		return err
	}
	if c.Filter == "" {
		return nil
	}
	if err := execSQL(ctx, dst, 30*time.Minute, fmt.Sprintf("DELETE FROM %s WHERE (%s) IS NOT TRUE", benchTable, c.Filter)); err != nil {
		return err
	}
	return execSQL(ctx, dst, 30*time.Minute, "VACUUM ANALYZE "+benchTable)
}

// compareCase compares the destination with the source's rows that
// satisfy the case's filter.
func compareCase(ctx context.Context, src, dst *pgx.Conn, c incrCase) error {
	if c.Filter == "" {
		return compareTables(ctx, src, dst, c.tables()...)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	want := fmt.Sprintf("(SELECT * FROM %s WHERE %s)", benchTable, c.Filter)
	if err := testenv.CompareTable(cctx, src, dst, want, benchTable); err != nil {
		return fmt.Errorf("CONTENT MISMATCH: %w", err)
	}
	return nil
}

// withFilter puts a row filter of table into a taskSpec's objects entry.
func withFilter(spec, table, filter string) string {
	if filter == "" {
		return spec
	}
	list := "    tables: [" + table + "]\n"
	return strings.Replace(spec, list, list+fmt.Sprintf("    filter: { %s: %q }\n", table, filter), 1)
}
