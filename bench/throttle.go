package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// The throttle scenarios measure how closely a throttle holds its limit:
// the rate rows reach the destination between 20% and 80% of them (so the
// start and the end of the task do not count), over the limit. Met within
// 20% either way.

const throttleDB = "throttle"

func (b *bench) runThrottle(ctx context.Context) error {
	full, incr := b.want("throttle/full"), b.want("throttle/incremental")
	if !full && !incr {
		return nil
	}
	if err := createDatabase(ctx, b.src, throttleDB); err != nil {
		return err
	}
	if err := createDatabase(ctx, b.dst, throttleDB); err != nil {
		return err
	}
	defer b.dropDatabases(throttleDB)
	src, err := connect(ctx, b.src.DSN(throttleDB))
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	dst, err := connect(ctx, b.dst.DSN(throttleDB))
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())

	// About 10 s of throttled work at scale 1.
	rows := max(scaled(300_000, b.cfg.Scale), 20_000)
	limit := rows / 10
	if full {
		s := b.throttleScenario("throttle/full", rows, limit,
			fmt.Sprintf("full sync of %s rows under throttle.full.rps %d (64-page chunks, so rows land often)", count(rows), limit))
		if err := execSQL(ctx, src, time.Hour, fmt.Sprintf(`CREATE TABLE tf (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, pad text NOT NULL);
			INSERT INTO tf SELECT `+benchRows+` FROM generate_series(1::bigint, %d::bigint) g`, rows)); err != nil {
			return err
		}
		if err := execSQL(ctx, src, time.Hour, "VACUUM ANALYZE tf"); err != nil {
			return err
		}
		b.throttleReps(ctx, s, src, dst, "tf", limit, true)
	}
	if incr {
		s := b.throttleScenario("throttle/incremental", rows, limit,
			fmt.Sprintf("%s rows inserted in 1k-row transactions, applied under throttle.incremental.rps %d", count(rows), limit))
		if err := execSQL(ctx, src, time.Minute, `CREATE TABLE ti (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, pad text NOT NULL)`); err != nil {
			return err
		}
		b.throttleReps(ctx, s, src, dst, "ti", limit, false)
	}
	return nil
}

// throttleReps runs a throttle scenario's repetitions and adds it.
func (b *bench) throttleReps(ctx context.Context, s *scenario, src, dst *pgx.Conn, table string, limit int64, full bool) {
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := b.throttleRun(ctx, src, dst, table, s.Rows, limit, rep, full)
		if err != nil {
			s.Error = fmt.Sprintf("rep %d: %v", rep, err)
			break
		}
		s.Sluice.Runs = append(s.Sluice.Runs, r)
		logf("%s rep %d/%d: %s of the limit (%s rows/s against %d)", s.Name, rep, b.cfg.Reps, fmtValue(r.Value, "x"), fmtRate(r.RowsPerSecond), limit)
	}
	b.add(s)
}

func (b *bench) throttleScenario(name string, rows, limit int64, what string) *scenario {
	return &scenario{
		Name: name, Unit: "x", Rows: rows, Description: what + "; value: measured rate / limit",
		Sluice: side{Name: "sluice"}, Target: target{MinValue: 0.8, MaxValue: 1.2},
	}
}

// throttleRun runs one throttled task and returns the measured rate over
// the limit. full: a full sync of table; else incremental, with the rows
// inserted once the task streams.
func (b *bench) throttleRun(ctx context.Context, src, dst *pgx.Conn, table string, rows, limit int64, rep int, full bool) (_ run, err error) {
	if err := execSQL(ctx, dst, time.Minute, "DROP TABLE IF EXISTS "+table); err != nil {
		return run{}, err
	}
	if !full {
		if err := execSQL(ctx, src, time.Minute, "TRUNCATE "+table); err != nil {
			return run{}, err
		}
	}
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("%s-rep%d", table, rep), "--chunk-pages", "64")
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	name := "throttle-" + table
	spec := taskSpec(name, b.src.DSN(throttleDB), b.dst.DSN(throttleDB), []string{table}, true, full, !full)
	phase := "full"
	if !full {
		phase = "incremental"
	}
	spec += fmt.Sprintf("throttle: { %s: { rps: %d } }\n", phase, limit)
	if err := p.CreateTask(ctx, spec); err != nil {
		return run{}, err
	}
	if !full {
		if _, err := p.WaitTask(ctx, name, "incremental", time.Minute, 50*time.Millisecond, func(st *proto.TaskStatus) bool { return st.Phase == proto.PhaseIncremental }); err != nil {
			return run{}, err
		}
		go func() {
			_ = execSQL(ctx, src, time.Hour, fmt.Sprintf(`DO $$ BEGIN FOR i IN 0..%d LOOP
				INSERT INTO ti SELECT `+benchRows+` FROM generate_series(i * 1000 + 1, LEAST((i + 1) * 1000, %d)) g; COMMIT; END LOOP; END $$`, (rows-1)/1000, rows))
		}()
	}
	// Sample the destination's count until every row is there.
	type sample struct {
		at time.Time
		n  int64
	}
	var samples []sample
	deadline := time.Now().Add(time.Duration(float64(rows)/float64(limit)*3+60) * time.Second)
	for {
		var n int64
		if err := dst.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			n = 0 // the table is not created yet
		}
		samples = append(samples, sample{time.Now(), n})
		if n >= rows {
			break
		}
		if time.Now().After(deadline) {
			return run{}, fmt.Errorf("%d of %d rows after %s", n, rows, time.Until(deadline))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return run{}, err
		}
	}
	at := func(frac float64) sample {
		for _, s := range samples {
			if float64(s.n) >= frac*float64(rows) {
				return s
			}
		}
		return samples[len(samples)-1]
	}
	a, z := at(0.2), at(0.8)
	secs := z.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return run{}, fmt.Errorf("rows from 20%% to 80%% arrived at once: the throttle did not hold them")
	}
	rate := float64(z.n-a.n) / secs
	if err := compareTables(ctx, src, dst, table); err != nil {
		return run{}, err
	}
	if err := p.DeleteTask(ctx, name); err != nil {
		return run{}, err
	}
	return run{Rep: rep, Value: rate / float64(limit), Rows: rows, RowsPerSecond: rate}, nil
}
