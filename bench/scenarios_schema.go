package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Wide-schema scenarios (issue 22): one task over thousands of small
// tables (the bench table's shape, 20 rows each), side by side with a
// native subscription of the same tables in databases of their own:
//
//   - schema/N/streaming: from `task create` (schema, full and
//     incremental sync) to streaming, against CREATE SUBSCRIPTION with
//     copy_data = true;
//   - schema/N/onetx: one transaction updating one row in each table;
//   - schema/N/steady: a catch-up of 100-row transactions, each touching
//     100 tables;
//   - schema/4N/streaming: Sluice alone on four times the tables.
//
// N is --schema-tables (5,000), whatever the scale: the number of tables
// is the point of the family.
const (
	schemaSluiceDB = "schema_sluice"
	schemaNativeDB = "schema_native"
	schemaWideDB   = "schema_wide"
	schemaTask     = "bench-schema"
	schemaPub      = "bench_schema"
	// schemaBase names the tables s_0001 ... (workload.tables).
	schemaBase         = "s"
	schemaRowsPerTable = 20
	// schemaChunk is the tables per multi-statement Exec (one
	// transaction) of the setup: about 2,000 locks, far from the lock
	// table's size.
	schemaChunk = 500
	// schemaSteadyUpdates is the steady workload's rows at scale 1, in
	// transactions of schemaSteadyTxRows rows, one row in each of as
	// many tables.
	schemaSteadyUpdates = 100_000
	schemaSteadyTxRows  = 100
	// defaultSchemaTables is --schema-tables' default.
	defaultSchemaTables = 5000
)

// schemaNames are the family's scenario names for n tables.
type schemaNames struct{ streaming, onetx, steady, wide string }

func schemaCaseNames(n int) schemaNames {
	p := fmt.Sprintf("schema/%d/", n)
	return schemaNames{p + "streaming", p + "onetx", p + "steady", fmt.Sprintf("schema/%d/streaming", 4*n)}
}

func (s schemaNames) list() []string { return []string{s.streaming, s.onetx, s.steady, s.wide} }

// wantWide: the 4N-table case takes minutes of table creation alone, so
// it runs at --scale 0.5 and above, or when --only names it with its
// number (--only schema/20000).
func (b *bench) wantWide(names schemaNames) bool {
	if !b.want(names.wide) {
		return false
	}
	return b.cfg.Scale >= 0.5 || strings.Contains(b.cfg.Only, strings.TrimSuffix(strings.TrimPrefix(names.wide, "schema/"), "/streaming"))
}

func (b *bench) runSchema(ctx context.Context) error {
	n := b.cfg.SchemaTables
	names := schemaCaseNames(n)
	if b.want(names.streaming) || b.want(names.onetx) || b.want(names.steady) {
		if err := b.runSchemaPair(ctx, n, names); err != nil {
			return err
		}
	}
	if b.wantWide(names) {
		return b.runSchemaWide(ctx, 4*n, names.wide)
	}
	if b.want(names.wide) {
		logf("%s skipped: it runs at --scale 0.5 and above, or with --only naming it", names.wide)
	}
	return nil
}

// schemaTimeout bounds a wait on n tables: 10 minutes and 100 ms a table.
func schemaTimeout(n int) time.Duration {
	return 10*time.Minute + time.Duration(n)*100*time.Millisecond
}

// runSchemaPair runs the N-table cases: the two source databases get the
// seeded tables, native's destination the same tables empty (native
// replication does not create tables: created untimed), Sluice's
// destination nothing (schema sync creates them).
func (b *bench) runSchemaPair(ctx context.Context, n int, names schemaNames) error {
	tables := (workload{Tables: n}).tables(schemaBase)
	start := time.Now()
	logf("schema/%d: creating %d tables of %d rows in two source databases", n, n, schemaRowsPerTable)
	for _, db := range []string{schemaSluiceDB, schemaNativeDB} {
		if err := b.createSchemaSource(ctx, db, tables); err != nil {
			return err
		}
	}
	defer b.dropDatabases(schemaSluiceDB, schemaNativeDB)
	for _, db := range []string{schemaSluiceDB, schemaNativeDB} {
		if err := createDatabase(ctx, b.dst, db); err != nil {
			return err
		}
	}
	if err := execChunkedIn(ctx, b.dst, schemaNativeDB, tables, benchTableDDL); err != nil {
		return fmt.Errorf("create native's destination tables: %w", err)
	}
	env, err := b.openPairEnv(ctx, schemaSluiceDB, schemaNativeDB, schemaPub, tables)
	if err != nil {
		return err
	}
	defer env.Close()
	logf("schema/%d: set up in %.0f s", n, time.Since(start).Seconds())

	if b.want(names.streaming) {
		s := schemaStreamingScenario(names.streaming, n, true)
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			r, err := b.schemaStreamingSluice(ctx, env, tables, rep)
			if !s.record(&s.Sluice, rep, b.cfg.Reps, r, err) {
				break
			}
			r, err = b.schemaStreamingNative(ctx, env.nat, tables, rep)
			if !s.record(s.Yardstick, rep, b.cfg.Reps, r, err) {
				break
			}
		}
		b.add(s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if b.want(names.onetx) || b.want(names.steady) {
		return b.runSchemaIncremental(ctx, env, tables, names)
	}
	return nil
}

// record adds a run to a side, or the error to the scenario; it tells
// whether to go on.
func (s *scenario) record(sd *side, rep, reps int, r run, err error) bool {
	if err != nil {
		s.Error = fmt.Sprintf("%s rep %d: %v", sd.Name, rep, err)
		return false
	}
	sd.Runs = append(sd.Runs, r)
	logf("%s rep %d/%d %s: %s", s.Name, rep, reps, sd.Name, runLine(r, s.Unit))
	return true
}

func schemaStreamingScenario(name string, n int, native bool) *scenario {
	s := &scenario{
		Name: name, Unit: "s", Rows: int64(n) * schemaRowsPerTable,
		Description: fmt.Sprintf("%d tables of %d rows: `task create` (schema, full and incremental sync) until the task is incremental/running and a marker row written then into every table is at the destination", n, schemaRowsPerTable),
		Sluice:      side{Name: "sluice"},
		Target:      target{MaxRSSBytes: rssLimit},
	}
	if native {
		s.Description += "; native: CREATE SUBSCRIPTION with copy_data = true (the destination tables created untimed before) until every table is ready ('r' in pg_subscription_rel) and a marker row written then into every table is at the destination"
		s.Yardstick = &side{Name: "native"}
	}
	return s
}

// runSchemaWide runs the 4N-table streaming case, Sluice alone: native's
// two table sync workers take far too long over that many tables.
func (b *bench) runSchemaWide(ctx context.Context, n int, name string) error {
	tables := (workload{Tables: n}).tables(schemaBase)
	start := time.Now()
	logf("%s: creating %d tables of %d rows", name, n, schemaRowsPerTable)
	if err := b.createSchemaSource(ctx, schemaWideDB, tables); err != nil {
		return err
	}
	defer b.dropDatabases(schemaWideDB)
	if err := createDatabase(ctx, b.dst, schemaWideDB); err != nil {
		return err
	}
	env := &pairEnv{db: schemaWideDB}
	defer env.Close()
	var err error
	if env.src, err = connect(ctx, b.src.DSN(schemaWideDB)); err != nil {
		return err
	}
	logf("%s: set up in %.0f s", name, time.Since(start).Seconds())
	s := schemaStreamingScenario(name, n, false)
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := b.schemaStreamingSluice(ctx, env, tables, rep)
		if !s.record(&s.Sluice, rep, b.cfg.Reps, r, err) {
			break
		}
	}
	b.add(s)
	return nil
}

// benchTableDDL creates a table of the bench table's shape named t.
func benchTableDDL(t string) string {
	return strings.Replace(benchDDL, "EXISTS bench ", "EXISTS "+t+" ", 1)
}

// chunkedSQL applies stmt to every table and joins the statements
// schemaChunk tables to a string: one multi-statement Exec (one
// transaction) each.
func chunkedSQL(tables []string, stmt func(t string) string) []string {
	var out []string
	for i := 0; i < len(tables); i += schemaChunk {
		chunk := tables[i:min(i+schemaChunk, len(tables))]
		stmts := make([]string, len(chunk))
		for j, t := range chunk {
			stmts[j] = stmt(t)
		}
		out = append(out, strings.Join(stmts, "; "))
	}
	return out
}

// execChunked runs chunkedSQL's strings on a session.
func execChunked(ctx context.Context, conn *pgx.Conn, tables []string, stmt func(t string) string) error {
	for _, sql := range chunkedSQL(tables, stmt) {
		if err := execSQL(ctx, conn, 5*time.Minute, sql); err != nil {
			return err
		}
	}
	return nil
}

// execChunkedIn is execChunked in database db of a cluster, over a
// session of its own.
func execChunkedIn(ctx context.Context, pg *testenv.Postgres, db string, tables []string, stmt func(t string) string) error {
	conn, err := connect(ctx, pg.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return execChunked(ctx, conn, tables, stmt)
}

// seedSchemaSQL creates table t with keys 1..schemaRowsPerTable (the
// bench rows: deterministic, so the destination is seeded by the same
// statements).
func seedSchemaSQL(t string) string {
	return benchTableDDL(t) + "; " + rowsSQL(t, 1, schemaRowsPerTable)
}

// createSchemaSource (re)creates a source database with the seeded
// tables.
func (b *bench) createSchemaSource(ctx context.Context, db string, tables []string) error {
	if err := createDatabase(ctx, b.src, db); err != nil {
		return err
	}
	if err := execChunkedIn(ctx, b.src, db, tables, seedSchemaSQL); err != nil {
		return fmt.Errorf("create the tables of %s: %w", db, err)
	}
	return nil
}

// freshSluiceDestination recreates Sluice's destination database of env
// (seeded: with the seeded tables; else empty, for schema sync) and
// reconnects env.dst.
func (b *bench) freshSluiceDestination(ctx context.Context, env *pairEnv, tables []string, seeded bool) error {
	if env.dst != nil {
		env.dst.Close(context.Background())
		env.dst = nil
	}
	if err := createDatabase(ctx, b.dst, env.db); err != nil {
		return err
	}
	conn, err := connect(ctx, b.dst.DSN(env.db))
	if err != nil {
		return err
	}
	env.dst = conn
	if seeded {
		return execChunked(ctx, conn, tables, seedSchemaSQL)
	}
	return nil
}

// deleteMarkers removes the marker rows (negative keys) from tables; call
// it only while no slot replicates them.
func deleteMarkers(ctx context.Context, tables []string, conns ...*pgx.Conn) error {
	for _, c := range conns {
		if err := execChunked(ctx, c, tables, func(t string) string { return "DELETE FROM " + t + " WHERE id < 0" }); err != nil {
			return err
		}
	}
	return nil
}

// writeMarkers writes marker id into every table, schemaChunk tables to a
// transaction (a 20,000-table transaction is not what is measured).
func writeMarkers(ctx context.Context, conn *pgx.Conn, tables []string, id int64) error {
	return execChunked(ctx, conn, tables, func(t string) string { return markerSQL(t, id) })
}

// measure runs a measured part between a run meter's start and stop and
// returns its duration.
func measure(ctx context.Context, procs []int, pids []pidQuery, part func() error) (time.Duration, usage, error) {
	m, err := startRunMeter(ctx, procs, pids)
	if err != nil {
		return 0, usage{}, err
	}
	t0 := time.Now()
	err = part()
	d := time.Since(t0)
	return d, m.Stop(), err
}

// schemaStreamingSluice is one Sluice run of a streaming case: a fresh
// `sluice up` and an empty destination database, the clock started
// before `task create` and stopped when the task is incremental/running
// and a marker row written then into every table has arrived. Written
// any earlier, the markers would come with the full sync's copy and
// prove nothing of the stream (as startIncrementalTask's warm-up).
func (b *bench) schemaStreamingSluice(ctx context.Context, env *pairEnv, tables []string, rep int) (_ run, err error) {
	if err := capture.DropTaskObjects(ctx, env.src, schemaTask); err != nil {
		return run{}, err
	}
	if err := deleteMarkers(ctx, tables, env.src); err != nil {
		return run{}, err
	}
	if err := b.freshSluiceDestination(ctx, env, tables, false); err != nil {
		return run{}, err
	}
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("schema-%d-streaming-rep%d", len(tables), rep))
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	timeout := schemaTimeout(len(tables))
	check := func() error { _, err := p.checkTask(ctx, schemaTask); return err }
	d, u, err := measure(ctx, p.PIDs(), sluicePIDs(b.src, b.dst, env.db), func() error {
		t0 := time.Now()
		spec := taskSpec(schemaTask, b.src.DSN(env.db), b.dst.DSN(env.db), tables, true, true, true)
		if err := p.CreateTask(ctx, spec); err != nil {
			return err
		}
		logf("    task created in %.1f s", time.Since(t0).Seconds())
		next := time.Now().Add(10 * time.Second)
		if _, err := p.WaitTask(ctx, schemaTask, "incremental", timeout, 100*time.Millisecond, func(st *proto.TaskStatus) bool {
			if time.Now().After(next) {
				logf("    %.0fs: %s", time.Since(t0).Seconds(), statusLine(st))
				next = time.Now().Add(10 * time.Second)
			}
			return st.Phase == proto.PhaseIncremental && st.State == proto.StateRunning
		}); err != nil {
			return err
		}
		logf("    incremental/running after %.1f s", time.Since(t0).Seconds())
		if err := writeMarkers(ctx, env.src, tables, warmupMarker); err != nil {
			return err
		}
		return waitMarkers(ctx, env.dst, tables, warmupMarker, timeout, check, nil)
	})
	if err != nil {
		return run{}, err
	}
	if err := compareTables(ctx, env.src, env.dst, tables...); err != nil {
		return run{}, err
	}
	if err := p.DeleteTask(ctx, schemaTask); err != nil {
		return run{}, err
	}
	return newRun(rep, d, int64(len(tables))*schemaRowsPerTable, &u), nil
}

// schemaStreamingNative is one native run of the streaming case: the
// destination tables emptied, the subscription created with copy_data =
// true; when every table is ready, the markers are written and awaited.
func (b *bench) schemaStreamingNative(ctx context.Context, n *native, tables []string, rep int) (run, error) {
	if err := n.Drop(ctx); err != nil {
		return run{}, err
	}
	if err := deleteMarkers(ctx, tables, n.src1); err != nil {
		return run{}, err
	}
	if err := execChunked(ctx, n.dst1, tables, func(t string) string { return "TRUNCATE " + t }); err != nil {
		return run{}, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, err
	}
	if err := n.PrepareEnable(ctx); err != nil {
		return run{}, err
	}
	timeout := schemaTimeout(len(tables))
	d, u, err := measure(ctx, nil, nativeCopyPIDs(n), func() error {
		if err := n.CreateCopying(ctx); err != nil {
			return err
		}
		if err := n.WaitTablesReady(ctx, len(tables), timeout); err != nil {
			return err
		}
		if err := writeMarkers(ctx, n.src1, tables, warmupMarker); err != nil {
			return err
		}
		return waitMarkers(ctx, n.dst1, tables, warmupMarker, timeout, nil, nil)
	})
	if err != nil {
		return run{}, err
	}
	if err := compareTables(ctx, n.src1, n.dst1, tables...); err != nil {
		return run{}, err
	}
	if err := n.Drop(ctx); err != nil {
		return run{}, err
	}
	return newRun(rep, d, int64(len(tables))*schemaRowsPerTable, &u), nil
}

// schemaPipeline is one side of the incremental cases, streaming: its
// sessions and how to meter, check, pause and resume it.
type schemaPipeline struct {
	src, dst *pgx.Conn
	procs    []int // the sluice processes, none for native
	pids     []pidQuery
	check    func() error
	status   func() string
	pause    func() error
	// prepareResume runs untimed right before resume (native's launcher
	// interval); nil for none.
	prepareResume func() error
	resume        func() error
}

// runSchemaIncremental runs the onetx and steady cases, Sluice and native
// alternating, one fresh pipeline per side and rep for both cases. Both
// destinations start from the seed (the sources' content once the
// streaming case's markers are gone).
func (b *bench) runSchemaIncremental(ctx context.Context, env *pairEnv, tables []string, names schemaNames) error {
	n := env.nat
	if err := n.Drop(ctx); err != nil {
		return err
	}
	if err := capture.DropTaskObjects(ctx, env.src, schemaTask); err != nil {
		return err
	}
	if err := deleteMarkers(ctx, tables, env.src, n.src1); err != nil {
		return err
	}
	if err := b.freshSluiceDestination(ctx, env, tables, true); err != nil {
		return err
	}
	if err := execChunked(ctx, n.dst1, tables, func(t string) string {
		return "TRUNCATE " + t + "; " + rowsSQL(t, 1, schemaRowsPerTable)
	}); err != nil {
		return err
	}
	updates := scaled(schemaSteadyUpdates, b.cfg.Scale)
	var onetx, steady *scenario
	if b.want(names.onetx) {
		onetx = &scenario{
			Name: names.onetx, Unit: "s", Rows: int64(len(tables)),
			Description: fmt.Sprintf("one transaction updating one row in each of %d tables (20 rows each), streaming; timed from its commit until all %d updated rows are at the destination", len(tables), len(tables)),
			Sluice:      side{Name: "sluice"}, Yardstick: &side{Name: "native"},
			Target: target{MinRatio: 1.0, MaxRSSBytes: rssLimit},
		}
	}
	if b.want(names.steady) {
		steady = &scenario{
			Name: names.steady, Unit: "s", Rows: updates,
			Description: fmt.Sprintf("catch-up after a pause: %s single-row updates over %d tables in %d-row transactions, each touching %d random tables; timed from resume until every touched table's last update is at the destination", count(updates), len(tables), schemaSteadyTxRows, schemaSteadyTxRows),
			Sluice:      side{Name: "sluice"}, Yardstick: &side{Name: "native"},
			Target: target{MinRatio: 1.0, MaxRSSBytes: rssLimit},
		}
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		if err := b.schemaIncrSluice(ctx, env, tables, rep, onetx, steady, updates); err != nil {
			break
		}
		if err := b.schemaIncrNative(ctx, n, tables, rep, onetx, steady, updates); err != nil {
			break
		}
	}
	for _, s := range []*scenario{onetx, steady} {
		if s != nil {
			b.add(s)
		}
	}
	return ctx.Err()
}

// failBoth records err in whichever of the scenarios has no error yet.
func failBoth(err error, sideName string, rep int, list ...*scenario) {
	for _, s := range list {
		if s != nil && s.Error == "" {
			s.Error = fmt.Sprintf("%s rep %d: %v", sideName, rep, err)
		}
	}
}

// schemaIncrSluice is one Sluice rep of the incremental cases: a fresh
// `sluice up`, an incremental-only task of the tables, warmed up.
func (b *bench) schemaIncrSluice(ctx context.Context, env *pairEnv, tables []string, rep int, onetx, steady *scenario, updates int64) (err error) {
	defer func() {
		if err != nil {
			failBoth(err, "sluice", rep, onetx, steady)
		}
	}()
	if err := capture.DropTaskObjects(ctx, env.src, schemaTask); err != nil {
		return err
	}
	if err := deleteMarkers(ctx, tables, env.src, env.dst); err != nil {
		return err
	}
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("schema-%d-incremental-rep%d", len(tables), rep))
	if err != nil {
		return err
	}
	defer done(&err)
	if err := startIncrementalTask(ctx, p, schemaTask, b.src.DSN(env.db), b.dst.DSN(env.db), env.src, env.dst, tables, ""); err != nil {
		return err
	}
	pl := &schemaPipeline{
		src: env.src, dst: env.dst, procs: p.PIDs(), pids: sluicePIDs(b.src, b.dst, env.db),
		check: func() error { _, err := p.checkTask(ctx, schemaTask); return err },
		status: func() string {
			st, err := p.Task(ctx, schemaTask)
			if err != nil {
				return err.Error()
			}
			return statusLine(st)
		},
		pause:  func() error { return p.Pause(ctx, schemaTask, isPaused, heldSlot{env.src, proto.SlotName(schemaTask)}) },
		resume: func() error { return p.Resume(ctx, schemaTask) },
	}
	if err := b.schemaIncrRuns(ctx, pl, tables, rep, onetx, steady, updates, func(s *scenario) *side { return &s.Sluice }); err != nil {
		return err
	}
	return p.DeleteTask(ctx, schemaTask)
}

// schemaIncrNative is one native rep of the incremental cases: the
// subscription created with copy_data = false on the equal tables,
// warmed up.
func (b *bench) schemaIncrNative(ctx context.Context, n *native, tables []string, rep int, onetx, steady *scenario, updates int64) (err error) {
	defer func() {
		if err != nil {
			failBoth(err, "native", rep, onetx, steady)
		}
	}()
	if err := n.Drop(ctx); err != nil {
		return err
	}
	if err := deleteMarkers(ctx, tables, n.src1, n.dst1); err != nil {
		return err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return err
	}
	if err := startNative(ctx, n, tables...); err != nil {
		return err
	}
	pl := &schemaPipeline{
		src: n.src1, dst: n.dst1, pids: nativePIDs(n),
		status:        func() string { return n.Status(ctx) },
		pause:         func() error { return n.Disable(ctx) },
		prepareResume: func() error { return n.PrepareEnable(ctx) },
		resume:        func() error { return n.Enable(ctx) },
	}
	if err := b.schemaIncrRuns(ctx, pl, tables, rep, onetx, steady, updates, func(s *scenario) *side { return s.Yardstick }); err != nil {
		return err
	}
	return n.Drop(ctx)
}

// schemaIncrRuns measures the selected incremental cases on a streaming
// pipeline and records each run in its scenario's side.
func (b *bench) schemaIncrRuns(ctx context.Context, pl *schemaPipeline, tables []string, rep int, onetx, steady *scenario, updates int64, sideOf func(*scenario) *side) error {
	if onetx != nil {
		r, err := b.schemaOneTx(ctx, pl, tables, rep)
		if err != nil {
			return err
		}
		onetx.record(sideOf(onetx), rep, b.cfg.Reps, r, nil)
	}
	if steady != nil {
		r, err := b.schemaSteady(ctx, pl, tables, rep, updates)
		if err != nil {
			return err
		}
		steady.record(sideOf(steady), rep, b.cfg.Reps, r, nil)
	}
	return nil
}

// schemaOneTx commits one transaction updating the row of key 1 in every
// table and times it until every updated row is at the destination.
func (b *bench) schemaOneTx(ctx context.Context, pl *schemaPipeline, tables []string, rep int) (run, error) {
	tag := fmt.Sprintf("onetx-%d", rep)
	stmts := make([]string, len(tables))
	for i, t := range tables {
		stmts[i] = fmt.Sprintf("UPDATE %s SET k = k + 1, c = %s WHERE id = 1", t, sqlLiteral(tag))
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, err
	}
	match := rowMatch{where: "c = $1", arg: tag, what: "the row updated by " + tag}
	d, u, err := measure(ctx, pl.procs, pl.pids, func() error {
		// Several statements in one simple query are one transaction.
		if err := execSQL(ctx, pl.src, 5*time.Minute, strings.Join(stmts, "; ")); err != nil {
			return err
		}
		return waitRows(ctx, pl.dst, tables, match, catchUpTimeout(int64(len(tables))), pl.check, pl.status)
	})
	if err != nil {
		return run{}, err
	}
	if err := compareTables(ctx, pl.src, pl.dst, tables...); err != nil {
		return run{}, err
	}
	return newRun(rep, d, int64(len(tables)), &u), nil
}

// schemaSteady pauses the pipeline, writes the steady workload, and times
// the catch-up from resume until the last update of every table it
// touched is at the destination.
func (b *bench) schemaSteady(ctx context.Context, pl *schemaPipeline, tables []string, rep int, updates int64) (run, error) {
	tag := fmt.Sprintf("steady-%d", rep)
	if err := pl.pause(); err != nil {
		return run{}, err
	}
	touched, err := writeSteady(ctx, pl.src, tables, updates, tag, rep)
	if err != nil {
		return run{}, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, err
	}
	if pl.prepareResume != nil {
		if err := pl.prepareResume(); err != nil {
			return run{}, err
		}
	}
	match := rowMatch{where: "c = $1", arg: tag, what: "the last update of " + tag}
	d, u, err := measure(ctx, pl.procs, pl.pids, func() error {
		if err := pl.resume(); err != nil {
			return err
		}
		return waitRows(ctx, pl.dst, touched, match, catchUpTimeout(updates), pl.check, pl.status)
	})
	if err != nil {
		return run{}, err
	}
	if err := compareTables(ctx, pl.src, pl.dst, tables...); err != nil {
		return run{}, err
	}
	return newRun(rep, d, updates, &u), nil
}

// writeSteady writes the steady workload: rounds over the tables, each a
// random permutation of them (the same for both sides of a rep), round r
// updating the row of key r%20+1; consecutive schemaSteadyTxRows updates
// make a transaction. The last update of each table sets c to tag, so
// its arrival means the table caught up (one table's changes apply in
// commit order). It returns the tables written.
func writeSteady(ctx context.Context, conn *pgx.Conn, tables []string, updates int64, tag string, rep int) ([]string, error) {
	type upd struct{ table, key int }
	rng := rand.New(rand.NewPCG(uint64(rep), 22))
	list := make([]upd, 0, updates)
	for r := 0; int64(len(list)) < updates; r++ {
		for _, t := range rng.Perm(len(tables)) {
			if int64(len(list)) == updates {
				break
			}
			list = append(list, upd{t, r%schemaRowsPerTable + 1})
		}
	}
	last := make([]int, len(tables))
	for i := range last {
		last[i] = -1
	}
	for i, u := range list {
		last[u.table] = i
	}
	deadline := time.Now().Add(workloadTimeout(updates))
	next := time.Now().Add(10 * time.Second)
	for lo := 0; lo < len(list); lo += schemaSteadyTxRows {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("steady workload: %d of %d rows written when its deadline passed", lo, len(list))
		}
		var stmts []string
		for i := lo; i < min(lo+schemaSteadyTxRows, len(list)); i++ {
			u := list[i]
			c := "md5(c)"
			if last[u.table] == i {
				c = sqlLiteral(tag)
			}
			stmts = append(stmts, fmt.Sprintf("UPDATE %s SET k = k + 1, c = %s WHERE id = %d", tables[u.table], c, u.key))
		}
		if err := execSQL(ctx, conn, 5*time.Minute, strings.Join(stmts, "; ")); err != nil {
			return nil, fmt.Errorf("steady workload: %w", err)
		}
		if time.Now().After(next) {
			logf("    workload: %s of %s rows written", count(int64(lo)), count(updates))
			next = time.Now().Add(10 * time.Second)
		}
	}
	var touched []string
	for i, t := range tables {
		if last[i] >= 0 {
			touched = append(touched, t)
		}
	}
	return touched, nil
}
