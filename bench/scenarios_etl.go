package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// ETL scenarios: the incremental sync of a table with column transforms
// (task spec objects[].transform and add_columns) against the same
// workload synced untransformed, both by Sluice, A B A B. The transforms
// are computed at apply by the source, one query per batch: the ratio
// (untransformed / transformed time) is what they cost.
const (
	etlDB    = "etl_bench"
	etlTask  = "bench-etl"
	etlTable = "bench_etl" // the transformed copy's table at the destination
	etlPlain = "bench-plain"
)

// etlTransforms are the scenario's objects entry keys: a replaced column,
// a deterministic added one and a volatile one.
const etlTransforms = `    rename: { bench: bench_etl }
    transform: { bench: { c: "upper(c)" } }
    add_columns: { bench: { k10: "k * 10", synced_at: "now()" } }
`

// etlDestDDL is the transformed table at the destination (schema sync
// is off, as in the incremental scenarios: the table is seeded directly).
const etlDestDDL = `CREATE TABLE IF NOT EXISTS bench_etl (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, pad text NOT NULL, k10 int, synced_at timestamptz)`

// etlExpected is the source's rows as the transforms make them (the
// volatile synced_at left out), against the destination's.
const (
	etlSourceRows = `(SELECT id, k, upper(c) AS c, pad, k * 10 AS k10 FROM bench)`
	etlDestRows   = `(SELECT id, k, c, pad, k10 FROM bench_etl)`
)

// etlCases are the live insert and update workloads of the incremental
// scenarios, transformed.
func etlCases(scale float64) []incrCase {
	var out []incrCase
	for _, w := range workloads(scale) {
		if w.Name == "insert" || w.Name == "update" {
			out = append(out, incrCase{Name: "etl/" + w.Name, Mode: "live", W: w})
		}
	}
	return out
}

func (b *bench) runETL(ctx context.Context) error {
	cases := b.wantedCases(etlCases(b.cfg.Scale))
	if len(cases) == 0 {
		return nil
	}
	if err := b.createBenchDatabases(ctx, etlDB); err != nil {
		return err
	}
	defer b.dropDatabases(etlDB)
	src, err := connect(ctx, b.src.DSN(etlDB))
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	dst, err := connect(ctx, b.dst.DSN(etlDB))
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	if err := execSQL(ctx, dst, time.Minute, etlDestDDL); err != nil {
		return err
	}
	for _, c := range cases {
		s := &scenario{
			Name: c.Name, Unit: "s", Rows: c.W.Rows,
			Description: "live: " + c.W.What + ", transformed (c: upper(c); added k10: k * 10, synced_at: now()), against the same workload untransformed; timed from the workload's start to the end marker at the destination",
			Sluice:      side{Name: "transformed"}, Yardstick: &side{Name: "untransformed"},
			Target: target{MaxRSSBytes: rssLimit},
		}
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			r, err := b.etlRun(ctx, src, dst, c, rep, true)
			if err != nil {
				s.Error = fmt.Sprintf("transformed rep %d: %v", rep, err)
				break
			}
			s.Sluice.Runs = append(s.Sluice.Runs, r)
			logf("%s rep %d/%d transformed: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
			if r, err = b.etlRun(ctx, src, dst, c, rep, false); err != nil {
				s.Error = fmt.Sprintf("untransformed rep %d: %v", rep, err)
				break
			}
			s.Yardstick.Runs = append(s.Yardstick.Runs, r)
			logf("%s rep %d/%d untransformed: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
		}
		b.add(s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// etlRun is one run: the tables reset and seeded (the transformed copy
// seeded with the transforms applied), a fresh `sluice up` with an
// incremental-only task, a warm-up marker, the workload, the end marker,
// then the destination compared with the source's rows as the transforms
// make them.
func (b *bench) etlRun(ctx context.Context, src, dst *pgx.Conn, c incrCase, rep int, transformed bool) (_ run, err error) {
	task, table, extra := etlPlain, benchTable, ""
	if transformed {
		task, table, extra = etlTask, etlTable, etlTransforms
	}
	if err := capture.DropTaskObjects(ctx, src, task); err != nil {
		return run{}, err
	}
	if err := seedTable(ctx, src, dst, benchTable, c.W.SeedRows); err != nil {
		return run{}, err
	}
	if transformed {
		for _, sql := range []string{`TRUNCATE bench_etl; INSERT INTO bench_etl SELECT id, k, upper(c), pad, k * 10, now() FROM bench`, `VACUUM ANALYZE bench_etl`} {
			if err := execSQL(ctx, dst, 30*time.Minute, sql); err != nil {
				return run{}, err
			}
		}
	}
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("%s-%s-rep%d", c.Name, task, rep))
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	spec := fmt.Sprintf(`name: %s
source:      { dsn: %q }
destination: { type: postgres, dsn: %q }
sync:        { schema: false, full: false, incremental: true }
objects:
  - schema: public
    tables: [bench]
%sconflicting_tables: ignore
retry: { connection: 10m, other: 2m }
`, task, b.src.DSN(etlDB), b.dst.DSN(etlDB), extra)
	if err := p.CreateTask(ctx, spec); err != nil {
		return run{}, err
	}
	if _, err := p.WaitTask(ctx, task, "incremental", 2*time.Minute, 50*time.Millisecond, func(st *proto.TaskStatus) bool {
		return st.Phase == proto.PhaseIncremental && st.State == proto.StateRunning
	}); err != nil {
		return run{}, err
	}
	check := func() error { _, err := p.checkTask(ctx, task); return err }
	if err := execSQL(ctx, src, time.Minute, warmupSQL(benchTable)); err != nil {
		return run{}, err
	}
	if err := waitMarker(ctx, dst, table, warmupMarker, 2*time.Minute, check, nil); err != nil {
		return run{}, fmt.Errorf("warm-up: %w", err)
	}
	m, err := startRunMeter(ctx, p.PIDs(), sluicePIDs(b.src, b.dst, etlDB))
	if err != nil {
		return run{}, err
	}
	t0 := time.Now()
	progress := func(n int64) { logf("    workload: %s of %s rows written", count(n), count(c.W.Rows)) }
	if err := runWorkload(ctx, src, benchTable, c.W, progress); err != nil {
		m.Stop()
		return run{}, err
	}
	err = waitMarker(ctx, dst, table, c.W.marker(), catchUpTimeout(c.W.Rows), check, nil)
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	if transformed {
		err = compareQueries(ctx, src, dst, etlSourceRows, etlDestRows)
		var unset int64
		if err == nil {
			err = dst.QueryRow(ctx, `SELECT count(*) FROM bench_etl WHERE synced_at IS NULL`).Scan(&unset)
		}
		if err == nil && unset > 0 {
			err = fmt.Errorf("CONTENT MISMATCH: %d rows without synced_at", unset)
		}
	} else {
		err = compareTables(ctx, src, dst, benchTable)
	}
	if err != nil {
		return run{}, err
	}
	if err := p.DeleteTask(ctx, task); err != nil {
		return run{}, err
	}
	return newRun(rep, d, c.W.Rows, &u), nil
}

// compareQueries fingerprints a source query and a destination query that
// stand for the same rows.
func compareQueries(ctx context.Context, src, dst *pgx.Conn, srcRows, dstRows string) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if err := testenv.CompareTable(cctx, src, dst, srcRows, dstRows); err != nil {
		return fmt.Errorf("CONTENT MISMATCH: %w", err)
	}
	return nil
}
