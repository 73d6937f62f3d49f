package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/capture"
)

// End-to-end latency: a paced stream of single-row autocommit inserts;
// the source stamps each row with clock_timestamp() as it is inserted,
// and an ENABLE ALWAYS trigger at the destination stamps it with
// clock_timestamp() as it is applied (replication sessions run with
// session_replication_role = replica, where ordinary triggers stay
// silent). Both clusters run on this machine, so one clock serves both.
const (
	latencyTable    = "lat"
	latencySluiceDB = "lat_sluice"
	latencyNativeDB = "lat_native"
	latencyTask     = "bench-latency"
	latencyWorkers  = 4
	// Issue 22's targets at half of native's single-row rate, in ms.
	latencyP99Target = 20
	latencyP50Target = 2
)

const latencySourceDDL = `CREATE TABLE lat (id bigint PRIMARY KEY, payload text NOT NULL, ts timestamptz NOT NULL DEFAULT clock_timestamp())`

const latencyDestDDL = `CREATE TABLE lat (id bigint PRIMARY KEY, payload text NOT NULL, ts timestamptz NOT NULL, applied_at timestamptz);
CREATE FUNCTION lat_applied_at() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.applied_at := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER lat_applied_at BEFORE INSERT OR UPDATE ON lat FOR EACH ROW EXECUTE FUNCTION lat_applied_at();
ALTER TABLE lat ENABLE ALWAYS TRIGGER lat_applied_at`

func (b *bench) runLatency(ctx context.Context) error {
	if !b.want("latency/p50") && !b.want("latency/p99") {
		return nil
	}
	for _, db := range []string{latencySluiceDB, latencyNativeDB} {
		if err := createDatabase(ctx, b.src, db); err != nil {
			return err
		}
		if err := createDatabase(ctx, b.dst, db); err != nil {
			return err
		}
		if err := b.src.Exec(ctx, db, latencySourceDDL); err != nil {
			return err
		}
		if err := b.dst.Exec(ctx, db, latencyDestDDL); err != nil {
			return err
		}
	}
	defer b.dropDatabases(latencySluiceDB, latencyNativeDB)
	env, err := b.openPairEnv(ctx, latencySluiceDB, latencyNativeDB, "bench_latency", []string{latencyTable})
	if err != nil {
		return err
	}
	defer env.Close()

	rate, how := b.cfg.LatencyRate, "--latency-rate"
	if rate <= 0 && b.nativeSingleRate > 0 {
		rate, how = b.nativeSingleRate/2, fmt.Sprintf("half of native's live single-row insert rate in this run (%.0f rows/s)", b.nativeSingleRate)
	}
	if rate <= 0 {
		max, err := b.calibrateLatency(ctx, env.nat)
		if err != nil {
			return fmt.Errorf("latency calibration: %w", err)
		}
		rate, how = max/2, fmt.Sprintf("half of native's live single-row insert rate, calibrated (%.0f rows/s)", max)
	}
	dur := b.latencyDuration()
	logf("latency: paced inserts at %.0f rows/s for %v over %d sessions (%s)", rate, dur, latencyWorkers, how)

	p99 := &scenario{
		Name: "latency/p99", Unit: "ms",
		Description: fmt.Sprintf("p99 of source insert to destination apply, %.0f single-row inserts/s (%s) for %v", rate, how, dur),
		Sluice:      side{Name: "sluice"}, Yardstick: &side{Name: "native"},
		Target: target{MaxValue: latencyP99Target, MaxRSSBytes: rssLimit},
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := b.latencySluice(ctx, env, rate, dur, rep)
		if err != nil {
			p99.Error = fmt.Sprintf("sluice rep %d: %v", rep, err)
			break
		}
		p99.Sluice.Runs = append(p99.Sluice.Runs, r)
		p99.Rows = r.Rows
		logf("latency rep %d/%d sluice: p99 %s", rep, b.cfg.Reps, runLine(r, "ms"))
		r, err = b.latencyNative(ctx, env, rate, dur, rep)
		if err != nil {
			p99.Error = fmt.Sprintf("native rep %d: %v", rep, err)
			break
		}
		p99.Yardstick.Runs = append(p99.Yardstick.Runs, r)
		logf("latency rep %d/%d native: p99 %s", rep, b.cfg.Reps, runLine(r, "ms"))
	}
	// The p50 line reads the same runs.
	p50 := &scenario{Name: "latency/p50", Unit: "ms", Rows: p99.Rows, Description: "p50 of the same runs",
		Sluice: side{Name: "sluice"}, Yardstick: &side{Name: "native"}, Error: p99.Error, Target: target{MaxValue: latencyP50Target, MaxRSSBytes: rssLimit}}
	for _, r := range p99.Sluice.Runs {
		r.Value = r.Extra["p50_ms"]
		p50.Sluice.Runs = append(p50.Sluice.Runs, r)
	}
	for _, r := range p99.Yardstick.Runs {
		r.Value = r.Extra["p50_ms"]
		p50.Yardstick.Runs = append(p50.Yardstick.Runs, r)
	}
	if b.want("latency/p50") {
		b.add(p50)
	}
	if b.want("latency/p99") {
		b.add(p99)
	}
	return nil
}

// latencyDuration is --latency-duration, or 30 s times the scale, at
// least 5 s and at most 30 s.
func (b *bench) latencyDuration() time.Duration {
	if b.cfg.LatencyDuration > 0 {
		return b.cfg.LatencyDuration
	}
	d := time.Duration(float64(30*time.Second) * b.cfg.Scale)
	return min(max(d, 5*time.Second), 30*time.Second)
}

// calibrateLatency measures native's live single-row insert rate on the
// latency table, as the live/single-insert scenario does, for when that
// scenario did not run.
func (b *bench) calibrateLatency(ctx context.Context, n *native) (float64, error) {
	if err := resetLatency(ctx, n.src1, n.dst1); err != nil {
		return 0, err
	}
	if err := startNative(ctx, n, latencyTable); err != nil {
		return 0, err
	}
	rows := scaled(200_000, b.cfg.Scale)
	t0 := time.Now()
	if _, err := pacedInserts(ctx, b.src.DSN(n.srcDB), 0, rows, 1, time.Duration(0)); err != nil {
		return 0, err
	}
	if err := execSQL(ctx, n.src1, time.Minute, endMarkerLatency()); err != nil {
		return 0, err
	}
	if err := waitMarker(ctx, n.dst1, latencyTable, endMarker, catchUpTimeout(rows), nil, nil); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if err := n.Drop(ctx); err != nil {
		return 0, err
	}
	return float64(rows) / d.Seconds(), nil
}

func endMarkerLatency() string {
	return fmt.Sprintf("INSERT INTO %s (id, payload) VALUES (%d, 'end')", latencyTable, endMarker)
}

// resetLatency empties the table on both sides (no slot may exist).
func resetLatency(ctx context.Context, src, dst *pgx.Conn) error {
	for _, c := range []*pgx.Conn{src, dst} {
		if err := execSQL(ctx, c, time.Minute, "TRUNCATE "+latencyTable); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) latencySluice(ctx context.Context, env *pairEnv, rate float64, dur time.Duration, rep int) (_ run, err error) {
	if err := capture.DropTaskObjects(ctx, env.src, latencyTask); err != nil {
		return run{}, err
	}
	if err := resetLatency(ctx, env.src, env.dst); err != nil {
		return run{}, err
	}
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("latency-rep%d", rep))
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	if err := startIncrementalTask(ctx, p, latencyTask, b.src.DSN(latencySluiceDB), b.dst.DSN(latencySluiceDB), env.src, env.dst, []string{latencyTable}, ""); err != nil {
		return run{}, err
	}
	m, err := startRunMeter(ctx, p.PIDs(), sluicePIDs(b.src, b.dst, latencySluiceDB))
	if err != nil {
		return run{}, err
	}
	rows := int64(rate * dur.Seconds())
	achieved, err := pacedInserts(ctx, b.src.DSN(latencySluiceDB), rate, rows, latencyWorkers, dur)
	if err == nil {
		err = execSQL(ctx, env.src, time.Minute, endMarkerLatency())
	}
	if err == nil {
		check := func() error { _, err := p.checkTask(ctx, latencyTask); return err }
		err = waitMarker(ctx, env.dst, latencyTable, endMarker, catchUpTimeout(rows), check, nil)
	}
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	r, err := latencyRun(ctx, env.src, env.dst, rep, rate, achieved)
	if err != nil {
		return run{}, err
	}
	r.setUsage(u)
	if err := p.DeleteTask(ctx, latencyTask); err != nil {
		return run{}, err
	}
	return r, nil
}

func (b *bench) latencyNative(ctx context.Context, env *pairEnv, rate float64, dur time.Duration, rep int) (run, error) {
	n := env.nat
	if err := n.Drop(ctx); err != nil {
		return run{}, err
	}
	if err := resetLatency(ctx, n.src1, n.dst1); err != nil {
		return run{}, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, err
	}
	if err := startNative(ctx, n, latencyTable); err != nil {
		return run{}, err
	}
	m, err := startRunMeter(ctx, nil, nativePIDs(n))
	if err != nil {
		return run{}, err
	}
	rows := int64(rate * dur.Seconds())
	achieved, err := pacedInserts(ctx, b.src.DSN(n.srcDB), rate, rows, latencyWorkers, dur)
	if err == nil {
		err = execSQL(ctx, n.src1, time.Minute, endMarkerLatency())
	}
	if err == nil {
		err = waitMarker(ctx, n.dst1, latencyTable, endMarker, catchUpTimeout(rows), nil, func() string { return n.Status(ctx) })
	}
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	r, err := latencyRun(ctx, n.src1, n.dst1, rep, rate, achieved)
	if err != nil {
		return run{}, err
	}
	r.setUsage(u)
	if err := n.Drop(ctx); err != nil {
		return run{}, err
	}
	return r, nil
}

// latencyRun compares the replicated columns and reads the percentiles.
func latencyRun(ctx context.Context, src, dst *pgx.Conn, rep int, rate, achieved float64) (run, error) {
	q := `SELECT count(*), COALESCE(sum(('x' || substr(md5(ROW(id, payload, ts)::text), 1, 15))::bit(60)::bigint), 0)::text FROM lat`
	var n1, n2 int64
	var s1, s2 string
	if err := src.QueryRow(ctx, q).Scan(&n1, &s1); err != nil {
		return run{}, err
	}
	if err := dst.QueryRow(ctx, q).Scan(&n2, &s2); err != nil {
		return run{}, err
	}
	if n1 != n2 || s1 != s2 {
		return run{}, fmt.Errorf("CONTENT MISMATCH: lat: source %d rows (sum %s), destination %d rows (sum %s)", n1, s1, n2, s2)
	}
	var rows int64
	var p50, p99, pmax *float64
	err := dst.QueryRow(ctx, `SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
		FROM (SELECT extract(epoch FROM applied_at - ts) * 1000 AS ms FROM lat WHERE id > 0) s`).Scan(&rows, &p50, &p99, &pmax)
	if err != nil {
		return run{}, err
	}
	if rows == 0 || p50 == nil || p99 == nil {
		return run{}, fmt.Errorf("no latency samples (applied_at not set: is the trigger firing?)")
	}
	return run{Rep: rep, Value: *p99, Rows: rows, Extra: map[string]float64{
		"p50_ms": *p50, "p99_ms": *p99, "max_ms": *pmax, "target_rate": rate, "achieved_rate": achieved,
	}}, nil
}

// pacedInserts inserts rows single-row autocommit inserts into the latency
// table over workers sessions, row i due at start + i/rate (rate 0: as
// fast as they go), and returns the achieved rate. A worker that falls
// behind inserts at once, without skipping rows.
func pacedInserts(ctx context.Context, dsn string, rate float64, rows int64, workers int, dur time.Duration) (float64, error) {
	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		c, err := connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		defer c.Close(context.Background())
		conns[i] = c
	}
	deadline := time.Now().Add(dur + workloadTimeout(rows))
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := int64(w); i < rows; i += int64(workers) {
				if rate > 0 {
					due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						if err := sleepCtx(ctx, d); err != nil {
							errs[w] = err
							return
						}
					}
				}
				if time.Now().After(deadline) {
					errs[w] = fmt.Errorf("paced inserts: row %d of %d not written before the deadline", i, rows)
					return
				}
				if _, err := conns[w].Exec(ctx, "INSERT INTO lat (id, payload) VALUES ($1::bigint, md5($1::bigint::text))", i+1); err != nil {
					errs[w] = err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(rows) / time.Since(start).Seconds(), nil
}
