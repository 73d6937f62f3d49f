package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// sluice verify: a table compared at the source and the destination by
// verify.Table in this process (what `sluice verify` runs for each table,
// with no task applying changes), against what the naive diff has to pay
// at least: reading the whole table, in key order, out of both databases.
// One table is seeded identically at both ends and serves both scenarios:
// seeding it is most of the group's time, so verify/scattered changes it
// at the destination after verify/equal instead of seeding it again.
const (
	verifyDB    = "verify"
	verifyTable = "big"
	// verifyChanged is how many rows verify/scattered changes at the
	// destination.
	verifyChanged = 100
)

const (
	verifyEqual     = "verify/equal"
	verifyScattered = "verify/scattered"
)

// verifyRows is the table's size at --scale 1.
func verifyRows(scale float64) int64 { return scaled(10_000_000, scale) }

// verifyDDL is full/big's table.
const verifyDDL = `CREATE TABLE ` + verifyTable + ` (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, pad text NOT NULL)`

// verifySpec is the table as verify sees it: same name and columns at
// both ends, keyed by id.
var verifySpec = proto.VerifyTable{
	Source:      proto.TableID{Schema: "public", Name: verifyTable},
	Dest:        proto.TableID{Schema: "public", Name: verifyTable},
	Columns:     []string{"id", "k", "c", "pad"},
	DestColumns: []string{"id", "k", "c", "pad"},
	Key:         []int{0},
}

// scatteredKeys are the keys verify/scattered changes: one in each
// hundredth of 1..n, in its middle, so every top-level range the
// bisection makes has one.
func scatteredKeys(n int64) []int64 {
	step := n / verifyChanged
	keys := make([]int64, verifyChanged)
	for i := range keys {
		keys[i] = step/2 + int64(i)*step + 1
	}
	return keys
}

// verifyEnv is the group's sessions: one connection per side for setup
// and the yardstick's COPY, one pool per side for verify (as `sluice
// verify` reads through pools).
type verifyEnv struct {
	src, dst   *pgx.Conn
	srcP, dstP *pgxpool.Pool
	rows       int64
}

func (e *verifyEnv) Close() {
	for _, p := range []*pgxpool.Pool{e.srcP, e.dstP} {
		if p != nil {
			p.Close()
		}
	}
	for _, c := range []*pgx.Conn{e.src, e.dst} {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

func (b *bench) runVerify(ctx context.Context) error {
	wantEqual, wantScattered := b.want(verifyEqual), b.want(verifyScattered)
	if !wantEqual && !wantScattered {
		return nil
	}
	if err := createDatabase(ctx, b.src, verifyDB); err != nil {
		return err
	}
	if err := createDatabase(ctx, b.dst, verifyDB); err != nil {
		return err
	}
	defer b.dropDatabases(verifyDB)
	env := &verifyEnv{rows: verifyRows(b.cfg.Scale)}
	defer env.Close()
	var err error
	if env.src, err = connect(ctx, b.src.DSN(verifyDB)); err != nil {
		return err
	}
	if env.dst, err = connect(ctx, b.dst.DSN(verifyDB)); err != nil {
		return err
	}
	for _, p := range []struct {
		pg   *testenv.Postgres
		pool **pgxpool.Pool
	}{{b.src, &env.srcP}, {b.dst, &env.dstP}} {
		if *p.pool, err = pgxpool.New(ctx, p.pg.DSN(verifyDB)); err != nil {
			return fmt.Errorf("pool %s: %w", p.pg.DSN(verifyDB), err)
		}
		// Open a session now, so the first timed run does not pay for
		// the connection while the yardstick's are already open.
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = (*p.pool).Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("pool %s: %w", p.pg.DSN(verifyDB), err)
		}
	}

	what := fmt.Sprintf("%s rows (full/big's shape: id bigint pk, k int, c md5 text, pad 60-100 chars)", count(env.rows))
	logf("verify: seeding the same table at both ends (%s)", what)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, conn := range []*pgx.Conn{env.src, env.dst} {
		g.Go(func() error {
			if err := execSQL(gctx, conn, time.Minute, verifyDDL); err != nil {
				return err
			}
			seed := fmt.Sprintf("INSERT INTO "+verifyTable+" SELECT "+benchRows+" FROM generate_series(1::bigint, %d::bigint) g", env.rows)
			if err := execSQL(gctx, conn, time.Hour, seed); err != nil {
				return err
			}
			return execSQL(gctx, conn, time.Hour, "VACUUM ANALYZE "+verifyTable)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var size int64
	_ = env.src.QueryRow(ctx, "SELECT pg_total_relation_size($1)", verifyTable).Scan(&size)
	logf("verify: seeded in %.1f s, %d MB on disk at each end", time.Since(start).Seconds(), size>>20)
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return err
	}

	copyDesc := "; yardstick: COPY (SELECT * FROM " + verifyTable + " ORDER BY id) TO STDOUT from both databases at once, bytes counted and discarded (the reads a naive diff needs, without the diff)"
	if wantEqual {
		s := &scenario{
			Name: verifyEqual, Unit: "s", Rows: env.rows,
			Description: "verify.Table in-process over an equal table of " + what + " at both ends (no task running)" + copyDesc,
			Sluice:      side{Name: "verify"}, Yardstick: &side{Name: "copy"},
			Target: target{MinRatio: 1},
		}
		b.verifyReps(ctx, env, s, func(res proto.VerifyTableResult) error {
			if res.Differs() || res.Unsettled > 0 {
				return fmt.Errorf("CONTENT MISMATCH: verify found %d differences (%d more, %d unsettled) in equal tables, first %v",
					len(res.Differences), res.More, res.Unsettled, firstDiffs(res.Differences))
			}
			return nil
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	if wantScattered {
		keys := scatteredKeys(env.rows)
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = strconv.FormatInt(k, 10)
		}
		logf("verify: changing k of %d rows at the destination (keys %s, %s, ..., %s)", len(keys), ids[0], ids[1], ids[len(ids)-1])
		upd := "UPDATE " + verifyTable + " SET k = k + 1 WHERE id IN (" + strings.Join(ids, ", ") + ")"
		if err := execSQL(ctx, env.dst, time.Minute, upd); err != nil {
			return err
		}
		if err := execSQL(ctx, env.dst, time.Hour, "VACUUM ANALYZE "+verifyTable); err != nil {
			return err
		}
		if err := checkpoint(ctx, b.src, b.dst); err != nil {
			return err
		}
		s := &scenario{
			Name: verifyScattered, Unit: "s", Rows: env.rows,
			Description: fmt.Sprintf("verify.Table in-process over %s, with k changed at the destination in %d rows at evenly spread keys; "+
				"all %d and nothing else must be reported changed (column k)", what, len(keys), len(keys)) + copyDesc,
			Sluice: side{Name: "verify"}, Yardstick: &side{Name: "copy"},
			Target: target{MinRatio: 0.5},
		}
		b.verifyReps(ctx, env, s, func(res proto.VerifyTableResult) error {
			return checkScattered(res, ids)
		})
		// Put the rows back, so that a kept database (--keep) holds equal
		// tables again.
		if b.cfg.Keep {
			restore := "UPDATE " + verifyTable + " SET k = k - 1 WHERE id IN (" + strings.Join(ids, ", ") + ")"
			if err := execSQL(ctx, env.dst, time.Minute, restore); err != nil {
				logf("warning: restoring the changed rows: %v", err)
			}
		}
	}
	return ctx.Err()
}

// verifyReps runs a scenario's reps, verify and the yardstick
// alternately, and records it; check is the scenario's content check of
// verify's result.
func (b *bench) verifyReps(ctx context.Context, env *verifyEnv, s *scenario, check func(proto.VerifyTableResult) error) {
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := b.verifySluice(ctx, env, rep, check)
		if err != nil {
			s.Error = fmt.Sprintf("verify rep %d: %v", rep, err)
			break
		}
		s.Sluice.Runs = append(s.Sluice.Runs, r)
		logf("%s rep %d/%d verify: %s (%s moved)", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit), fmtBytes(r.Extra["bytes_moved"]))
		r, err = b.verifyCopy(ctx, env, rep)
		if err != nil {
			s.Error = fmt.Sprintf("copy rep %d: %v", rep, err)
			break
		}
		s.Yardstick.Runs = append(s.Yardstick.Runs, r)
		logf("%s rep %d/%d copy:   %s (%s moved)", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit), fmtBytes(r.Extra["bytes_moved"]))
	}
	b.add(s)
}

// verifySluice times one verify.Table over the two databases. CPU and
// RSS are this process's (verify's own work; the checksums are computed
// by the servers).
func (b *bench) verifySluice(ctx context.Context, env *verifyEnv, rep int, check func(proto.VerifyTableResult) error) (run, error) {
	src := pgverify.New(env.srcP, pgverify.Source)
	dst := &timedReader{VerifyReader: pgverify.New(env.dstP, pgverify.Destination)}
	t := verifySpec
	m, err := startMeter(os.Getpid())
	if err != nil {
		return run{}, err
	}
	vctx, cancel := context.WithTimeout(ctx, catchUpTimeout(env.rows)*2)
	t0 := time.Now()
	res := verify.Table(vctx, src, dst, nil, &t, verify.Options{})
	d := time.Since(t0)
	cancel()
	u := m.Stop()
	if res.Error != "" {
		return run{}, fmt.Errorf("verify: %s", res.Error)
	}
	if err := check(res); err != nil {
		return run{}, err
	}
	if res.Rows != env.rows {
		return run{}, fmt.Errorf("CONTENT MISMATCH: verify compared %d rows, the table has %d", res.Rows, env.rows)
	}
	r := newRun(rep, d, env.rows, &u)
	r.Extra = map[string]float64{
		"bytes_moved": float64(res.BytesRead),
		"ranges":      float64(res.Ranges),
		"differences": float64(len(res.Differences)) + float64(res.More),
		// Where the time went, seen from the destination's reads (the
		// source's same reads run beside them; splits and the source's
		// re-check reads are the rest).
		"dst_checksums_ms":   float64(dst.checksums.Milliseconds()),
		"dst_rows_ms":        float64(dst.rows.Milliseconds()),
		"dst_rows_by_key_ms": float64(dst.byKey.Milliseconds()),
	}
	return r, nil
}

// timedReader adds up how long the destination's reads take, by kind:
// range checksums, a range's rows (a leaf), rows by key (the re-check).
// verify.Table calls it from one goroutine at a time.
type timedReader struct {
	apply.VerifyReader
	checksums, rows, byKey time.Duration
}

func (t *timedReader) Checksums(ctx context.Context, vt *proto.VerifyTable, byteOrder bool, ranges []proto.KeyRange) ([]proto.RangeSum, error) {
	defer addSince(&t.checksums, time.Now())
	return t.VerifyReader.Checksums(ctx, vt, byteOrder, ranges)
}

func (t *timedReader) Rows(ctx context.Context, vt *proto.VerifyTable, byteOrder bool, r proto.KeyRange) ([]proto.VerifyRow, error) {
	defer addSince(&t.rows, time.Now())
	return t.VerifyReader.Rows(ctx, vt, byteOrder, r)
}

func (t *timedReader) RowsByKey(ctx context.Context, vt *proto.VerifyTable, keys [][]string) ([]proto.VerifyRow, error) {
	defer addSince(&t.byKey, time.Now())
	return t.VerifyReader.RowsByKey(ctx, vt, keys)
}

func addSince(d *time.Duration, t0 time.Time) { *d += time.Since(t0) }

// verifyCopy is the yardstick: the whole table in key order out of both
// databases at once, as COPY's text, into byte counters.
func (b *bench) verifyCopy(ctx context.Context, env *verifyEnv, rep int) (run, error) {
	var bytes [2]countingWriter
	var rows [2]int64
	cctx, cancel := context.WithTimeout(ctx, catchUpTimeout(env.rows)*2)
	defer cancel()
	g, gctx := errgroup.WithContext(cctx)
	t0 := time.Now()
	for i, conn := range []*pgx.Conn{env.src, env.dst} {
		g.Go(func() error {
			tag, err := conn.PgConn().CopyTo(gctx, &bytes[i], "COPY (SELECT * FROM "+verifyTable+" ORDER BY id) TO STDOUT")
			if err != nil {
				return fmt.Errorf("COPY TO at the %s: %w", []string{"source", "destination"}[i], err)
			}
			rows[i] = tag.RowsAffected()
			return nil
		})
	}
	err := g.Wait()
	d := time.Since(t0)
	if err != nil {
		return run{}, err
	}
	for i, n := range rows {
		if n != env.rows {
			return run{}, fmt.Errorf("COPY at the %s read %d rows, want %d", []string{"source", "destination"}[i], n, env.rows)
		}
	}
	r := newRun(rep, d, env.rows, nil)
	r.Extra = map[string]float64{"bytes_moved": float64(bytes[0].n.Load() + bytes[1].n.Load())}
	return r, nil
}

// countingWriter counts and discards what is written to it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// checkScattered is verify/scattered's content check: exactly the changed
// keys, each as changed in column k.
func checkScattered(res proto.VerifyTableResult, ids []string) error {
	if res.More > 0 || res.Unsettled > 0 {
		return fmt.Errorf("CONTENT MISMATCH: %d differences listed, %d more, %d unsettled; want exactly %d changed", len(res.Differences), res.More, res.Unsettled, len(ids))
	}
	var got []string
	for _, d := range res.Differences {
		if d.Kind != proto.DiffChanged || len(d.Key) != 1 || !slices.Equal(d.Columns, []string{"k"}) {
			return fmt.Errorf("CONTENT MISMATCH: unexpected difference %s %v columns %v (want changed id in column k)", d.Kind, d.Key, d.Columns)
		}
		got = append(got, d.Key["id"])
	}
	want := slices.Clone(ids)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		missing, extra := setDiff(want, got), setDiff(got, want)
		return fmt.Errorf("CONTENT MISMATCH: verify named %d changed keys, want %d; not found %v, not changed %v", len(got), len(want), firstN(missing, 10), firstN(extra, 10))
	}
	return nil
}

// setDiff is what of a (sorted) is not in b (sorted).
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func firstDiffs(d []proto.VerifyDifference) []proto.VerifyDifference {
	if len(d) > 5 {
		return d[:5]
	}
	return d
}

// fmtBytes prints a byte count compactly (1.9 GB, 12.3 MB, 640 B).
func fmtBytes(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f GB", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f MB", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f kB", v/1e3)
	}
	return fmt.Sprintf("%.0f B", v)
}
