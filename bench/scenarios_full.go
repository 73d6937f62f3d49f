package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// fullTable is a table of the full-sync scenarios.
type fullTable struct {
	Name string
	DDL  string
	Seed func(rows int64) string
	Rows int64
	What string
}

func fullTables(scale float64) []fullTable {
	big := scaled(2_000_000, scale)
	wide := scaled(100_000, scale)
	return []fullTable{
		{
			Name: "big",
			DDL:  `CREATE TABLE big (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, pad text NOT NULL)`,
			Seed: func(n int64) string {
				return fmt.Sprintf("INSERT INTO big SELECT "+benchRows+" FROM generate_series(1::bigint, %d::bigint) g", n)
			},
			Rows: big,
			What: fmt.Sprintf("%s rows (id bigint pk, k int, c md5 text, pad 60-100 chars)", count(big)),
		},
		{
			// doc: 128 to 256 md5 digests, 4 to 8 KiB of hex that pglz
			// cannot compress, so every value is stored out of line in
			// TOAST.
			Name: "wide",
			DDL:  `CREATE TABLE wide (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, doc text NOT NULL)`,
			Seed: func(n int64) string {
				return fmt.Sprintf(`INSERT INTO wide SELECT g, (g %% 1000)::int, md5(g::text),
					(SELECT string_agg(md5(g::text || '.' || i::text), '') FROM generate_series(1, 128 + (g %% 129)::int) i)
				FROM generate_series(1::bigint, %d::bigint) g`, n)
			},
			Rows: wide,
			What: fmt.Sprintf("%s rows with a 4-8 KiB incompressible text (TOAST)", count(wide)),
		},
	}
}

// runFull measures full sync: a task with schema and full sync only,
// timed from `task create` returning (the precheck passed) to the task's
// state `released`, against a binary COPY pipe into a table with the same
// primary key.
func (b *bench) runFull(ctx context.Context) error {
	var tables []fullTable
	for _, t := range fullTables(b.cfg.Scale) {
		if b.want("full/" + t.Name) {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 {
		return nil
	}
	const db = "full"
	if err := createDatabase(ctx, b.src, db); err != nil {
		return err
	}
	if err := createDatabase(ctx, b.dst, db); err != nil {
		return err
	}
	defer b.dropDatabases(db)
	src, err := connect(ctx, b.src.DSN(db))
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	dst, err := connect(ctx, b.dst.DSN(db))
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())

	for _, t := range tables {
		logf("full/%s: creating the source table (%s)", t.Name, t.What)
		start := time.Now()
		if err := execSQL(ctx, src, time.Minute, t.DDL); err != nil {
			return err
		}
		if err := execSQL(ctx, src, time.Hour, t.Seed(t.Rows)); err != nil {
			return err
		}
		if err := execSQL(ctx, src, time.Hour, "VACUUM ANALYZE "+t.Name); err != nil {
			return err
		}
		var size int64
		_ = src.QueryRow(ctx, "SELECT pg_total_relation_size($1)", t.Name).Scan(&size)
		logf("full/%s: seeded in %.1f s, %d MB on disk", t.Name, time.Since(start).Seconds(), size>>20)
	}

	if err := warmDestination(ctx, src, dst, tables[0]); err != nil {
		return err
	}
	for _, t := range tables {
		s := &scenario{
			Name: "full/" + t.Name, Unit: "s", Rows: t.Rows,
			Description: "full sync of " + t.What + "; yardstick: binary COPY TO | COPY FROM pipe",
			Sluice:      side{Name: "sluice"}, Yardstick: &side{Name: "copy"},
			Target: target{MinRatio: 1.0, MaxRSSBytes: rssLimit},
		}
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			r, err := b.fullSluice(ctx, src, dst, t, rep)
			if err != nil {
				s.Error = fmt.Sprintf("sluice rep %d: %v", rep, err)
				break
			}
			s.Sluice.Runs = append(s.Sluice.Runs, r)
			logf("%s rep %d/%d sluice: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
			r, err = b.fullCopy(ctx, src, dst, t, rep)
			if err != nil {
				s.Error = fmt.Sprintf("copy rep %d: %v", rep, err)
				break
			}
			s.Yardstick.Runs = append(s.Yardstick.Runs, r)
			logf("%s rep %d/%d copy:   %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
		}
		b.add(s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// warmDestination copies t once, unmeasured, into a scratch table at
// the destination and drops it. A fresh cluster creates its WAL segment
// files as it first writes them and recycles them after; without this the
// first measured run (Sluice's) alone would pay for creating them.
func warmDestination(ctx context.Context, src, dst *pgx.Conn, t fullTable) error {
	const scratch = "bench_warm"
	ddl := strings.Replace(t.DDL, "CREATE TABLE "+t.Name+" ", "CREATE TABLE "+scratch+" ", 1)
	if err := execSQL(ctx, dst, time.Minute, "DROP TABLE IF EXISTS "+scratch+"; "+ddl); err != nil {
		return err
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, catchUpTimeout(t.Rows)*2)
	_, err := copyPipe(cctx, src, dst, "SELECT * FROM "+t.Name, scratch)
	cancel()
	if err != nil {
		return fmt.Errorf("warm-up copy: %w", err)
	}
	logf("full/: warmed the destination's WAL files with an unmeasured copy of %s (%.1f s)", t.Name, time.Since(start).Seconds())
	return execSQL(ctx, dst, time.Minute, "DROP TABLE "+scratch)
}

func (b *bench) fullSluice(ctx context.Context, src, dst *pgx.Conn, t fullTable, rep int) (_ run, err error) {
	if err := execSQL(ctx, dst, time.Minute, "DROP TABLE IF EXISTS "+t.Name); err != nil {
		return run{}, err
	}
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("full-%s-rep%d", t.Name, rep))
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	name := "full-" + t.Name
	spec := taskSpec(name, b.src.DSN("full"), b.dst.DSN("full"), []string{t.Name}, true, true, false)
	if err := p.CreateTask(ctx, spec); err != nil {
		return run{}, err
	}
	m, err := startRunMeter(ctx, p.PIDs(), sluicePIDs(b.src, b.dst, "full"))
	if err != nil {
		return run{}, err
	}
	t0 := time.Now()
	nextStatus := t0.Add(10 * time.Second)
	_, err = p.WaitTask(ctx, name, "released", catchUpTimeout(t.Rows)*2, 20*time.Millisecond, func(st *proto.TaskStatus) bool {
		if time.Now().After(nextStatus) {
			logf("    %.0fs: %s", time.Since(t0).Seconds(), statusLine(st))
			nextStatus = time.Now().Add(10 * time.Second)
		}
		return st.State == proto.StateReleased
	})
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	if err := compareTables(ctx, src, dst, t.Name); err != nil {
		return run{}, err
	}
	if err := p.DeleteTask(ctx, name); err != nil {
		return run{}, err
	}
	return newRun(rep, d, t.Rows, &u), nil
}

func (b *bench) fullCopy(ctx context.Context, src, dst *pgx.Conn, t fullTable, rep int) (run, error) {
	if err := execSQL(ctx, dst, time.Minute, "DROP TABLE IF EXISTS "+t.Name); err != nil {
		return run{}, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, err
	}
	// The pipe runs in the bench process, between its two sessions.
	m, err := startRunMeter(ctx, []int{os.Getpid()}, []pidQuery{sessionPIDs(b.src, src), sessionPIDs(b.dst, dst)})
	if err != nil {
		return run{}, err
	}
	t0 := time.Now()
	if err := execSQL(ctx, dst, time.Minute, t.DDL); err != nil {
		m.Stop()
		return run{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, catchUpTimeout(t.Rows)*2)
	n, err := copyPipe(cctx, src, dst, "SELECT * FROM "+t.Name, t.Name)
	cancel()
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	if n != t.Rows {
		return run{}, fmt.Errorf("COPY moved %d rows, want %d", n, t.Rows)
	}
	if err := compareTables(ctx, src, dst, t.Name); err != nil {
		return run{}, err
	}
	if err := execSQL(ctx, dst, time.Minute, "DROP TABLE "+t.Name); err != nil {
		return run{}, err
	}
	return newRun(rep, d, t.Rows, &u), nil
}
