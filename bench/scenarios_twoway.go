package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Two-way sync (issue 17): both directions of a two-way task catching up
// at once, each measured against Sluice's own one-way catch-up of the same
// workload on the same clusters. last_writer_wins needs
// track_commit_timestamp on both servers, which the other scenarios'
// clusters do not have (it costs every commit a little), so this family
// starts a pair of its own with it on and runs its yardstick there too:
// the one-way and the two-way figures share every setting.
const (
	twOneWayDB = "tw_oneway" // the one-way yardstick (as catchup/update)
	twNativeDB = "tw_native" // native logical replication, for reference
	twDB       = "tw_twoway" // the two-way task's database, on both sides
	twTask     = "bench-tw"
)

// The scenario's report lines: each direction against the one-way
// figure, and the one-way figure against native.
const (
	twForward = "twoway/incr/forward"
	twReverse = "twoway/incr/reverse"
	twOneWay  = "twoway/incr/one-way"
)

// Marker keys of the two-way runs: negative, so outside both sides' key
// ranges, and one of each kind per side, since each side writes its own
// and the other awaits it. A (the forward source) uses the incremental
// scenarios' warm-up and end markers.
const (
	twWarmA         = warmupMarker
	twEndA          = endMarker
	twWarmB   int64 = -11
	twEndB    int64 = -12
	twSettleA int64 = -21
	twSettleB int64 = -22
)

// twoWayRows is each direction's workload at --scale 1: half of
// catchup/update's, so that both directions together write as many
// changes as it does.
func twoWayRows(scale float64) int64 { return scaled(500_000, scale) }

// twoWayWorkloads are catchup/update's pattern (1k-row transactions of
// UPDATE ... SET k = k + 1, c = md5(c)) over a table of 2n rows: the
// one-way yardstick updates keys 1..n; in the two-way run A updates the
// same keys, which it owns, and B keys n+1..2n, which it owns, so no
// change meets a concurrent one (no conflicts) and each side's range
// reaches the other side unchanged.
func twoWayWorkloads(n int64) (oneWay, atA, atB workload) {
	oneWay = workload{Name: "update", Kind: "update", Rows: n, SeedRows: 2 * n, TxRows: 1000,
		What: fmt.Sprintf("%s updates in 1k-row transactions of a %s-row table", count(n), count(2*n))}
	atA, atB = oneWay, oneWay
	atA.First, atA.Marker = 1, twEndA
	atB.First, atB.Marker = n+1, twEndB
	return oneWay, atA, atB
}

// on is a bench over other clusters, for a family that needs servers set
// up differently; its scenarios are recorded with the caller's add.
func (b *bench) on(src, dst *testenv.Postgres) *bench {
	return &bench{cfg: b.cfg, only: b.only, src: src, dst: dst, work: b.work}
}

func (b *bench) runTwoWay(ctx context.Context) error {
	wantDirs, wantOneWay := b.want(twForward) || b.want(twReverse), b.want(twOneWay)
	if !wantDirs && !wantOneWay {
		return nil
	}
	logf("two-way: starting two more PostgreSQL clusters with track_commit_timestamp = on (last_writer_wins needs it; the one-way yardstick runs on them too)")
	a, bb, err := startClusters("track_commit_timestamp = on")
	if err != nil {
		return err
	}
	defer releaseClusters(b.cfg.Keep, a, bb)
	tw := b.on(a, bb)
	logf("two-way: A %s, B %s", a.DSN(""), bb.DSN(""))
	if err := tw.createBenchDatabases(ctx, twOneWayDB, twNativeDB); err != nil {
		return err
	}
	defer tw.dropDatabases(twOneWayDB, twNativeDB, twDB)
	env, err := tw.openPairEnv(ctx, twOneWayDB, twNativeDB, "bench_tw", []string{benchTable})
	if err != nil {
		return err
	}
	defer env.Close()

	n := twoWayRows(b.cfg.Scale)
	w, atA, atB := twoWayWorkloads(n)
	oneWay := incrCase{Name: twOneWay, Mode: "catchup", W: w}
	dirDesc := func(dir, from, to string) string {
		return fmt.Sprintf("two-way task (last_writer_wins), %s direction: %s updates of keys %s owns, written at %s while the task was paused "+
			"(and as many at %s on keys it owns), timed from resume until %s's range at %s equals %s's by content, both directions catching up at once; "+
			"yardstick: Sluice's one-way catch-up of %s on the same clusters (%s); CPU per Mrow over both directions' rows",
			dir, count(n), from, from, to, from, to, from, w.What, twOneWay)
	}
	fwd := &scenario{Name: twForward, Unit: "s", Rows: n, Description: dirDesc("forward (A to B)", "A", "B"),
		Sluice: side{Name: "two-way"}, Yardstick: &side{Name: "one-way"}, Target: target{MaxRSSBytes: rssLimit}}
	rev := &scenario{Name: twReverse, Unit: "s", Rows: n, Description: dirDesc("reverse (B to A)", "B", "A"),
		Sluice: side{Name: "two-way"}, Yardstick: &side{Name: "one-way"}, Target: target{MaxRSSBytes: rssLimit}}
	ow := &scenario{Name: twOneWay, Unit: "s", Rows: n,
		Description: "catch-up after a pause, one way, on the two-way scenario's clusters (track_commit_timestamp on): " + w.What +
			"; timed from resume to the end marker at the destination (as catchup/update)",
		Sluice: side{Name: "sluice"}, Yardstick: &side{Name: "native"}, Target: incrTarget(oneWay)}
	fail := func(msg string, list ...*scenario) {
		for _, s := range list {
			s.Error = msg
		}
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := tw.incrSluice(ctx, env, oneWay, rep)
		if err != nil {
			fail(fmt.Sprintf("one-way rep %d: %v", rep, err), fwd, rev, ow)
			break
		}
		ow.Sluice.Runs = append(ow.Sluice.Runs, r)
		fwd.Yardstick.Runs = append(fwd.Yardstick.Runs, r)
		rev.Yardstick.Runs = append(rev.Yardstick.Runs, r)
		logf("%s rep %d/%d sluice:  %s", twOneWay, rep, b.cfg.Reps, runLine(r, "s"))
		if wantOneWay {
			r, err := tw.incrNative(ctx, env, oneWay, rep)
			if err != nil {
				fail(fmt.Sprintf("native rep %d: %v", rep, err), ow)
				wantOneWay = false // the directions still have their yardstick
			} else {
				ow.Yardstick.Runs = append(ow.Yardstick.Runs, r)
				logf("%s rep %d/%d native:  %s", twOneWay, rep, b.cfg.Reps, runLine(r, "s"))
			}
		}
		if ctx.Err() != nil {
			break
		}
		f, rv, err := tw.twoWaySluice(ctx, atA, atB, rep)
		if err != nil {
			fail(fmt.Sprintf("two-way rep %d: %v", rep, err), fwd, rev)
			break
		}
		fwd.Sluice.Runs = append(fwd.Sluice.Runs, f)
		rev.Sluice.Runs = append(rev.Sluice.Runs, rv)
		logf("%s rep %d/%d two-way: %s", twForward, rep, b.cfg.Reps, runLine(f, "s"))
		logf("%s rep %d/%d two-way: %s", twReverse, rep, b.cfg.Reps, runLine(rv, "s"))
		if ctx.Err() != nil {
			break
		}
	}
	if wantDirs {
		b.add(fwd)
		b.add(rev)
	}
	if b.want(twOneWay) {
		b.add(ow)
	}
	return ctx.Err()
}

// twoWaySluice is one two-way run: fresh databases, the table seeded at A
// (2n rows), a fresh `sluice up`, a two-way task whose schema and full
// sync bring the table to B (untimed), a warm-up marker each way, a pause,
// then A's and B's workloads, and the measured part: from resume until
// each side's key range at the other side equals the writer's. Then,
// untimed, the checks that nothing looped.
func (b *bench) twoWaySluice(ctx context.Context, atA, atB workload, rep int) (fr, rr run, err error) {
	// Fresh databases: no table, slot, publication or sluice schema of
	// an earlier rep (task delete drops the origins, which are per
	// cluster; checked below).
	for _, pg := range []*testenv.Postgres{b.src, b.dst} {
		if err := createDatabase(ctx, pg, twDB); err != nil {
			return run{}, run{}, err
		}
	}
	a, err := connect(ctx, b.src.DSN(twDB))
	if err != nil {
		return run{}, run{}, err
	}
	defer a.Close(context.Background())
	bc, err := connect(ctx, b.dst.DSN(twDB))
	if err != nil {
		return run{}, run{}, err
	}
	defer bc.Close(context.Background())
	for _, sql := range []string{benchDDL, rowsSQL(benchTable, 1, atA.SeedRows), "VACUUM ANALYZE " + benchTable} {
		if err := execSQL(ctx, a, 30*time.Minute, sql); err != nil {
			return run{}, run{}, err
		}
	}

	p, done, err := b.freshSluice(ctx, fmt.Sprintf("twoway-incr-rep%d", rep))
	if err != nil {
		return run{}, run{}, err
	}
	defer done(&err)
	spec := taskSpec(twTask, b.src.DSN(twDB), b.dst.DSN(twDB), []string{benchTable}, true, true, true,
		"two_way: { conflicts: "+proto.ConflictLastWriterWins+" }")
	if err := p.CreateTask(ctx, spec); err != nil {
		return run{}, run{}, err
	}
	check := func() error { _, err := p.checkTask(ctx, twTask); return err }
	status := func() string {
		st, err := p.Task(ctx, twTask)
		if err != nil {
			return err.Error()
		}
		return twoWayLine(st)
	}
	logf("    two-way: waiting for the full sync of the %s-row seed and both directions streaming (untimed)", count(atA.SeedRows))
	if _, err := p.WaitTask(ctx, twTask, "incremental both ways", catchUpTimeout(atA.SeedRows)*2, 50*time.Millisecond, func(st *proto.TaskStatus) bool {
		if st.TwoWay == nil {
			return false
		}
		f, r := st.TwoWay.Forward, st.TwoWay.Reverse
		return f.Phase == proto.PhaseIncremental && f.State == proto.StateRunning &&
			r.Phase == proto.PhaseIncremental && r.State == proto.StateRunning
	}); err != nil {
		return run{}, run{}, err
	}
	// Both pipelines are known to deliver before the clock starts.
	for _, wm := range []struct {
		at, to *pgx.Conn
		key    int64
	}{{a, bc, twWarmA}, {bc, a, twWarmB}} {
		if err := execSQL(ctx, wm.at, time.Minute, markerSQL(benchTable, wm.key)); err != nil {
			return run{}, run{}, err
		}
		if err := waitMarker(ctx, wm.to, benchTable, wm.key, 2*time.Minute, check, status); err != nil {
			return run{}, run{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	// Pausing the task pauses both directions; the workloads are then
	// left entirely to the measured catch-up.
	bothPaused := func(st *proto.TaskStatus) bool {
		return st.TwoWay != nil && st.TwoWay.Forward.State == proto.StatePaused && st.TwoWay.Reverse.State == proto.StatePaused
	}
	if err := p.Pause(ctx, twTask, bothPaused,
		heldSlot{a, proto.SlotName(twTask)}, heldSlot{bc, proto.SlotName(proto.ReverseTaskName(twTask))}); err != nil {
		return run{}, run{}, err
	}
	// B's table was written by the full sync; vacuumed like the one-way
	// yardstick's seeded tables, so both start from the same state.
	for _, c := range []*pgx.Conn{a, bc} {
		if err := execSQL(ctx, c, 30*time.Minute, "VACUUM ANALYZE "+benchTable); err != nil {
			return run{}, run{}, err
		}
	}
	if err := writeBoth(ctx, a, bc, atA, atB); err != nil {
		return run{}, run{}, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, run{}, err
	}
	aLo, aHi := atA.firstKey(), atA.firstKey()+atA.Rows-1
	bLo, bHi := atB.firstKey(), atB.firstKey()+atB.Rows-1
	watches := []*rangeWatch{
		{what: "forward: A's keys at B", writer: a, reader: bc, lo: aLo, hi: aHi, marker: atA.marker()},
		{what: "reverse: B's keys at A", writer: bc, reader: a, lo: bLo, hi: bHi, marker: atB.marker()},
	}
	for _, w := range watches {
		if w.want, err = w.sum(ctx, w.writer); err != nil {
			return run{}, run{}, err
		}
	}

	m, err := startMeter(p.PID())
	if err != nil {
		return run{}, run{}, err
	}
	t0 := time.Now()
	if err := p.Resume(ctx, twTask); err != nil {
		m.Stop()
		return run{}, run{}, err
	}
	err = waitRanges(ctx, t0, watches, catchUpTimeout(atA.Rows+atB.Rows), check, status)
	u := m.Stop()
	if err != nil {
		return run{}, run{}, err
	}

	// Untimed: everything is checked after a settle marker each way. An
	// echo of A's changes would be the forward apply's transactions at
	// B, captured by the reverse direction: they committed at B before
	// B's settle marker, so the reverse direction applies them at A
	// before that marker arrives there (and the same the other way).
	// Once both markers are in, any echo is in too, for the checks.
	for _, sm := range []struct {
		at, to *pgx.Conn
		key    int64
	}{{a, bc, twSettleA}, {bc, a, twSettleB}} {
		if err := execSQL(ctx, sm.at, time.Minute, markerSQL(benchTable, sm.key)); err != nil {
			return run{}, run{}, err
		}
		if err := waitMarker(ctx, sm.to, benchTable, sm.key, 2*time.Minute, check, status); err != nil {
			return run{}, run{}, fmt.Errorf("settle: %w", err)
		}
	}
	if err := compareTables(ctx, a, bc, benchTable); err != nil {
		return run{}, run{}, err
	}
	fwdSpec := proto.TaskSpec{Name: twTask, TwoWay: &proto.TwoWaySpec{}}
	for _, oc := range []originCheck{
		{side: "A", conn: a, lo: aLo, hi: aHi, origin: ""},
		{side: "A", conn: a, lo: bLo, hi: bHi, origin: fwdSpec.PeerOrigin()},
		{side: "B", conn: bc, lo: bLo, hi: bHi, origin: ""},
		{side: "B", conn: bc, lo: aLo, hi: aHi, origin: fwdSpec.ApplyOrigin()},
	} {
		if err := oc.run(ctx); err != nil {
			return run{}, run{}, err
		}
	}
	st, err := p.Task(ctx, twTask)
	if err != nil {
		return run{}, run{}, err
	}
	if st.TwoWay == nil {
		return run{}, run{}, errors.New("the task shows no two_way status")
	}
	var conflicts int64
	for _, c := range st.TwoWay.Conflicts {
		conflicts += c.Count
	}
	if conflicts != 0 || st.TwoWay.ConflictsError != "" {
		return run{}, run{}, fmt.Errorf("%d conflicts on disjoint key ranges (%+v %s)", conflicts, st.TwoWay.Conflicts, st.TwoWay.ConflictsError)
	}
	// The apply counters restart with the apply groups at resume: each
	// direction must have applied its side's updates, end marker and
	// settle marker, and nothing more (a change gone round would count
	// again).
	applied := map[string]int64{"forward": st.TwoWay.Forward.RowsApplied, "reverse": st.TwoWay.Reverse.RowsApplied}
	written := map[string]int64{"forward": atA.Rows, "reverse": atB.Rows}
	for dir, got := range applied {
		switch want := written[dir] + 2; {
		case got > want:
			return run{}, run{}, fmt.Errorf("LOOP? the %s direction applied %d rows since resume for %d written", dir, got, want)
		case got < want:
			// The content is in (checked above), so the counter lost
			// some: an apply group that restarted during the run starts
			// it again. The check then proves less; say so.
			logf("    warning: the %s direction shows %d rows applied for %d written since resume", dir, got, want)
		}
	}
	dropped := peerDropped(ctx, p)
	if err := p.DeleteTask(ctx, twTask); err != nil {
		return run{}, run{}, err
	}
	for _, c := range []*pgx.Conn{a, bc} {
		if left := originsLeft(ctx, c, twTask); left != "" {
			logf("    warning: after task delete: %s", left)
		}
	}

	dF, dR := watches[0].took, watches[1].took
	both := float64(atA.Rows+atB.Rows) / max(dF, dR).Seconds()
	fr, rr = newRun(rep, dF, atA.Rows, nil), newRun(rep, dR, atB.Rows, nil)
	for _, x := range []struct {
		r       *run
		applied int64
		dropped float64
	}{{&fr, applied["forward"], dropped[twTask]}, {&rr, applied["reverse"], dropped[proto.ReverseTaskName(twTask)]}} {
		// One process runs both directions: its CPU is charged to
		// every row either direction wrote.
		cpu := u.CPUSeconds
		per := cpu / (float64(atA.Rows+atB.Rows) / 1e6)
		x.r.CPUSeconds, x.r.CPUPerMillion, x.r.PeakRSSBytes = &cpu, &per, u.PeakRSSBytes
		x.r.Extra = map[string]float64{"rows_applied": float64(x.applied), "both_rows_per_second": both}
		if x.dropped >= 0 {
			// Transactions of the other direction's apply this
			// direction's capture left out: the loop prevention at work.
			x.r.Extra["peer_tx_dropped"] = x.dropped
		}
	}
	return fr, rr, nil
}

// writeBoth writes A's and B's workloads at the same time, each over its
// own session (untimed; the task is paused).
func writeBoth(ctx context.Context, a, bc *pgx.Conn, atA, atB workload) error {
	errs := make(chan error, 2)
	for _, x := range []struct {
		side string
		conn *pgx.Conn
		w    workload
	}{{"A", a, atA}, {"B", bc, atB}} {
		go func() {
			progress := func(done int64) {
				logf("    workload at %s: %s of %s rows written", x.side, count(done), count(x.w.Rows))
			}
			err := runWorkload(ctx, x.conn, benchTable, x.w, progress)
			if err != nil {
				err = fmt.Errorf("at %s: %w", x.side, err)
			}
			errs <- err
		}()
	}
	return errors.Join(<-errs, <-errs)
}

// rangeWatch is one direction of the measured part: the keys lo..hi that
// writer changed, awaited at reader.
type rangeWatch struct {
	what           string
	writer, reader *pgx.Conn
	lo, hi         int64
	marker         int64
	want           testenv.TableSum // the range at the writer
	last           testenv.TableSum // the range at the reader when last read
	took           time.Duration    // from resume until the range matched
	matched        bool
}

func (w *rangeWatch) query() string {
	return fmt.Sprintf("(SELECT * FROM %s WHERE id BETWEEN %d AND %d)", benchTable, w.lo, w.hi)
}

func (w *rangeWatch) sum(ctx context.Context, conn *pgx.Conn) (testenv.TableSum, error) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	s, err := testenv.ChecksumTable(cctx, conn, w.query())
	if err != nil {
		return s, fmt.Errorf("%s: checksum: %w", w.what, err)
	}
	return s, nil
}

// poll looks at the reader once, in one snapshot: the end marker (cheap;
// it comes in the writer's last transaction), and only once it is there
// the range's checksum. The range matches in the snapshot taken at the
// returned time, so the clock stops there: the checksum's own cost is not
// charged, and a match is by content, not inferred from the marker.
func (w *rangeWatch) poll(ctx context.Context) (at time.Time, err error) {
	qctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	tx, err := w.reader.BeginTx(qctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return at, err
	}
	defer tx.Rollback(context.Background())
	at = time.Now()
	var found bool
	if err := tx.QueryRow(qctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1)", benchTable), w.marker).Scan(&found); err != nil {
		return at, fmt.Errorf("%s: poll for marker %d: %w", w.what, w.marker, err)
	}
	if !found {
		return at, nil
	}
	// ChecksumTable takes the connection; it runs in tx's snapshot.
	if w.last, err = w.sum(qctx, w.reader); err != nil {
		return at, err
	}
	w.matched = w.last == w.want
	return at, nil
}

// waitRanges polls every watch every 20 ms until each matches, recording
// how long each took since t0. check (every second) may fail the wait
// early; status is printed every ten seconds.
func waitRanges(ctx context.Context, t0 time.Time, watches []*rangeWatch, timeout time.Duration, check func() error, status func() string) error {
	deadline := t0.Add(timeout)
	nextCheck, nextStatus := t0.Add(time.Second), t0.Add(10*time.Second)
	for {
		left := 0
		for _, w := range watches {
			if w.matched {
				continue
			}
			at, err := w.poll(ctx)
			if err != nil {
				return err
			}
			if w.matched {
				w.took = at.Sub(t0)
				logf("    %s: in after %.2f s", w.what, w.took.Seconds())
			} else {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		now := time.Now()
		if now.After(deadline) {
			var msgs []string
			for _, w := range watches {
				if !w.matched {
					msgs = append(msgs, fmt.Sprintf("%s: %d rows (sum %s) at the reader, %d (sum %s) at the writer", w.what, w.last.Rows, w.last.Sum, w.want.Rows, w.want.Sum))
				}
			}
			return fmt.Errorf("not caught up within %v: %s (%s)", timeout, strings.Join(msgs, "; "), status())
		}
		if now.After(nextCheck) {
			if err := check(); err != nil {
				return err
			}
			nextCheck = now.Add(time.Second)
		}
		if now.After(nextStatus) {
			logf("    waiting %.0fs: %s", now.Sub(t0).Seconds(), status())
			nextStatus = now.Add(10 * time.Second)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// originCheck: every row of keys lo..hi at one side was last written
// under origin ("" for a local session, else a direction's apply origin
// or one of its numbered session origins), found from the commit record
// of the row version's xmin (track_commit_timestamp keeps its origin).
// A change that went back to the side it came from would leave its rows
// written by the other direction's apply there.
type originCheck struct {
	side   string
	conn   *pgx.Conn
	lo, hi int64
	origin string
}

func (o originCheck) run(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	rows, err := o.conn.Query(cctx, fmt.Sprintf(`SELECT COALESCE(r.roname, CASE WHEN c.roident = 0 THEN '' ELSE 'origin ' || c.roident END), count(*)
		FROM %s t CROSS JOIN LATERAL pg_xact_commit_timestamp_origin(t.xmin) c
		LEFT JOIN pg_replication_origin r ON r.roident = c.roident
		WHERE t.id BETWEEN $1 AND $2 GROUP BY 1`, benchTable), o.lo, o.hi)
	if err != nil {
		return fmt.Errorf("origins at %s: %w", o.side, err)
	}
	type byOrigin struct {
		Name string
		N    int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[byOrigin])
	if err != nil {
		return fmt.Errorf("origins at %s: %w", o.side, err)
	}
	var bad []string
	var total int64
	for _, g := range got {
		total += g.N
		if g.Name == o.origin || proto.OriginOf(g.Name, o.origin) {
			continue
		}
		name := g.Name
		if name == "" {
			name = "local sessions"
		}
		bad = append(bad, fmt.Sprintf("%d by %s", g.N, name))
	}
	want := "local sessions"
	if o.origin != "" {
		want = o.origin
	}
	if len(bad) > 0 || total != o.hi-o.lo+1 {
		return fmt.Errorf("LOOP? keys %d..%d at %s: %d rows, expected %d all last written by %s; written by others: %s",
			o.lo, o.hi, o.side, total, o.hi-o.lo+1, want, strings.Join(bad, ", "))
	}
	return nil
}

// originsLeft names the replication origins of task left at a side
// ("" when none): task delete drops them.
func originsLeft(ctx context.Context, conn *pgx.Conn, task string) string {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var left []string
	rows, err := conn.Query(cctx, `SELECT roname FROM pg_replication_origin WHERE roname LIKE $1 ORDER BY 1`, "sluice:"+task+":%")
	if err == nil {
		left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return "cannot read pg_replication_origin: " + err.Error()
	}
	if len(left) == 0 {
		return ""
	}
	return "replication origins left: " + strings.Join(left, ", ")
}

// peerDropped reads sluice_task_peer_transactions_dropped_total by task
// from the process's /metrics (-1 for a task it does not show): how many
// transactions each capture left out because the other direction wrote
// them. Informational; the content and origin checks decide.
func peerDropped(ctx context.Context, p *sluiceProc) map[string]float64 {
	out := map[string]float64{twTask: -1, proto.ReverseTaskName(twTask): -1}
	lines, err := p.metrics(ctx, p.URL)
	if err != nil {
		logf("    warning: %v", err)
		return out
	}
	for _, line := range lines {
		for task := range out {
			if v, ok := sample(line, "sluice_task_peer_transactions_dropped_total", task); ok {
				out[task] = v
			}
		}
	}
	return out
}

// twoWayLine summarises a two-way task for progress lines.
func twoWayLine(st *proto.TaskStatus) string {
	if st == nil || st.TwoWay == nil {
		return statusLine(st)
	}
	dir := func(d proto.DirectionStatus) string {
		s := fmt.Sprintf("%s/%s, applied %d rows (%.0f rows/s)", d.Phase, d.State, d.RowsApplied, d.ThroughputRPS)
		if d.LastError != nil {
			s += ", last error: " + d.LastError.Message
		}
		return s
	}
	return fmt.Sprintf("forward %s; reverse %s", dir(st.TwoWay.Forward), dir(st.TwoWay.Reverse))
}
