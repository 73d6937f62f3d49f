package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
	"github.com/sluicedb/sluice/proto"
)

// Doris scenarios: Sluice into the Doris emulator (internal/testenv/dorisemu,
// an FE/BE over a private MariaDB; no real Doris runs here). The yardstick
// is the emulator's own ingest ceiling: a plain Stream Load of the same
// rows from the bench process. Ratios say how close Sluice gets to what
// the emulator can take, not how Sluice does against a real Doris.
const (
	dorisSrcDB    = "doris_src" // the source database (PostgreSQL)
	dorisFullTask = "bench-doris-full"
	dorisIncrTask = "bench-doris-incr"
	// dorisLoadChunk is the rows per Stream Load of the yardstick.
	dorisLoadChunk = 50_000
	// dorisBatchInterval is the task's destination.batch_interval.
	dorisBatchInterval = "1s"
)

// dorisFullRows and dorisIncrRows are the scenarios' sizes at --scale 1:
// reduced from full/big and catchup/update, since the emulator writes
// through one MariaDB.
func dorisFullRows(scale float64) int64 { return scaled(1_000_000, scale) }
func dorisIncrRows(scale float64) int64 { return scaled(500_000, scale) }

// dorisDDL is the yardstick's table: the columns of `big`/`bench` as the
// Unique merge-on-write table with a hidden sequence column that Sluice's
// schema sync creates for a table with a primary key.
func dorisDDL(table string) string {
	return "CREATE TABLE `" + table + "` (\n" +
		"  `id` BIGINT NOT NULL, `k` INT NOT NULL, `c` STRING NOT NULL, `pad` STRING NOT NULL\n" +
		") UNIQUE KEY(`id`)\nDISTRIBUTED BY HASH(`id`) BUCKETS 1\n" +
		"PROPERTIES (\"replication_num\" = \"1\", \"enable_unique_key_merge_on_write\" = \"true\", " +
		"\"light_schema_change\" = \"true\", \"function_column.sequence_type\" = \"LARGEINT\")"
}

// dorisEnv is the group's emulator and source session.
type dorisEnv struct {
	emu  *emu.Emulator
	src  *pgx.Conn
	http *http.Client
}

func (b *bench) runDoris(ctx context.Context) error {
	wantFull, wantIncr := b.want("doris/full"), b.want("doris/incr")
	if !wantFull && !wantIncr {
		return nil
	}
	dir := filepath.Join(b.work, "dorisemu")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf("doris: starting the Doris emulator (MariaDB-backed; no real Doris)")
	e, err := emu.Start(emu.Options{Dir: dir})
	if errors.Is(err, emu.ErrNoMariaDB) {
		logf("doris: SKIPPED doris/full and doris/incr: %v (scripts/ensure-mariadb.sh installs it)", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("start the Doris emulator: %w", err)
	}
	defer e.Close()
	logf("doris: emulator FE at %s", e.FEURL())

	if err := createDatabase(ctx, b.src, dorisSrcDB); err != nil {
		return err
	}
	defer b.dropDatabases(dorisSrcDB)
	src, err := connect(ctx, b.src.DSN(dorisSrcDB))
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ExpectContinueTimeout = 5 * time.Second
	env := &dorisEnv{emu: e, src: src, http: &http.Client{
		Transport: tr, Timeout: 10 * time.Minute,
		// Redirects are followed by hand, with the credentials again.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if wantFull {
		if err := b.dorisFull(ctx, env); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if wantIncr {
		if err := b.dorisIncr(ctx, env); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// ---- doris/full ------------------------------------------------------

func (b *bench) dorisFull(ctx context.Context, env *dorisEnv) error {
	t := fullTables(1)[0] // big: DDL and seed
	rows := dorisFullRows(b.cfg.Scale)
	logf("doris/full: creating the source table (%s rows shaped like full/big)", count(rows))
	start := time.Now()
	for _, sql := range []string{"DROP TABLE IF EXISTS big", t.DDL, t.Seed(rows), "VACUUM ANALYZE big"} {
		if err := execSQL(ctx, env.src, time.Hour, sql); err != nil {
			return err
		}
	}
	logf("doris/full: seeded in %.1f s", time.Since(start).Seconds())
	s := &scenario{
		Name: "doris/full", Unit: "s", Rows: rows,
		Description: fmt.Sprintf("full sync of %s rows shaped like full/big into the Doris emulator (Unique table, batch_interval %s); "+
			"yardstick: plain Stream Loads of the same rows as JSON lines, %d rows each (the emulator's ingest ceiling, not a real Doris)",
			count(rows), dorisBatchInterval, dorisLoadChunk),
		Sluice: side{Name: "sluice"}, Yardstick: &side{Name: "streamload"},
		Target: target{MaxRSSBytes: rssLimit},
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := b.dorisFullSluice(ctx, env, rows, rep)
		if err != nil {
			s.Error = fmt.Sprintf("sluice rep %d: %v", rep, err)
			break
		}
		s.Sluice.Runs = append(s.Sluice.Runs, r)
		logf("%s rep %d/%d sluice:     %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
		r, err = b.dorisFullLoad(ctx, env, rows, rep)
		if err != nil {
			s.Error = fmt.Sprintf("streamload rep %d: %v", rep, err)
			break
		}
		s.Yardstick.Runs = append(s.Yardstick.Runs, r)
		logf("%s rep %d/%d streamload: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
	}
	b.add(s)
	return nil
}

func (b *bench) dorisFullSluice(ctx context.Context, env *dorisEnv, rows int64, rep int) (_ run, err error) {
	db := fmt.Sprintf("bench_full_s%d", rep)
	if err := env.dropDB(db); err != nil {
		return run{}, err
	}
	defer env.dropDBUnlessKept(b.cfg.Keep, db)
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("doris-full-rep%d", rep))
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	spec := dorisTaskSpec(dorisFullTask, b.src.DSN(dorisSrcDB), env.emu.FEURL(), db, "big", true, true, false)
	if err := p.CreateTask(ctx, spec); err != nil {
		return run{}, err
	}
	st0 := env.emu.Stats()
	m, err := startMeter(p.PID())
	if err != nil {
		return run{}, err
	}
	t0 := time.Now()
	nextStatus := t0.Add(10 * time.Second)
	_, err = p.WaitTask(ctx, dorisFullTask, "released", catchUpTimeout(rows)*2, 20*time.Millisecond, func(st *proto.TaskStatus) bool {
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
	if err := env.compare(ctx, db, "big"); err != nil {
		return run{}, err
	}
	if err := p.DeleteTask(ctx, dorisFullTask); err != nil {
		return run{}, err
	}
	r := newRun(rep, d, rows, &u)
	r.Extra = env.loadExtra(st0)
	return r, nil
}

// dorisFullLoad is the yardstick: CREATE TABLE, then the source's rows as
// JSON lines in Stream Loads of dorisLoadChunk rows, timed from the
// CREATE to the last load's answer.
func (b *bench) dorisFullLoad(ctx context.Context, env *dorisEnv, rows int64, rep int) (run, error) {
	db := fmt.Sprintf("bench_full_y%d", rep)
	if err := env.dropDB(db); err != nil {
		return run{}, err
	}
	defer env.dropDBUnlessKept(b.cfg.Keep, db)
	if err := checkpoint(ctx, b.src); err != nil {
		return run{}, err
	}
	st0 := env.emu.Stats()
	t0 := time.Now()
	if _, err := env.emu.SQL("", "CREATE DATABASE `"+db+"`"); err != nil {
		return run{}, fmt.Errorf("doris: create database %s: %w", db, err)
	}
	if _, err := env.emu.SQL(db, dorisDDL("big")); err != nil {
		return run{}, fmt.Errorf("doris: create table big: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, catchUpTimeout(rows)*2)
	n, err := env.streamLoad(lctx, db, "big", "SELECT id, k, c, pad FROM big")
	cancel()
	d := time.Since(t0)
	if err != nil {
		return run{}, err
	}
	if n != rows {
		return run{}, fmt.Errorf("stream load moved %d rows, want %d", n, rows)
	}
	if err := env.compare(ctx, db, "big"); err != nil {
		return run{}, err
	}
	r := newRun(rep, d, rows, nil)
	r.Extra = env.loadExtra(st0)
	return r, nil
}

// ---- doris/incr ------------------------------------------------------

func (b *bench) dorisIncr(ctx context.Context, env *dorisEnv) error {
	n := dorisIncrRows(b.cfg.Scale)
	w := workload{Name: "update", Kind: "update", Rows: n, SeedRows: n, TxRows: 1000,
		What: fmt.Sprintf("%s updates in 1k-row transactions", count(n))}
	if err := execSQL(ctx, env.src, time.Minute, benchDDL); err != nil {
		return err
	}
	s := &scenario{
		Name: "doris/incr", Unit: "s", Rows: w.Rows,
		Description: "catch-up after a pause into the Doris emulator: " + w.What + " of a " + count(w.SeedRows) +
			"-row table (batch_interval " + dorisBatchInterval + "); timed from resume to the end marker visible in Doris; " +
			"yardstick: plain Stream Loads of the table's final rows over the seeded Doris table (upserts; the emulator's ingest ceiling, not a real Doris)",
		Sluice: side{Name: "sluice"}, Yardstick: &side{Name: "streamload"},
		Target: target{MaxRSSBytes: rssLimit},
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		r, err := b.dorisIncrSluice(ctx, env, w, rep)
		if err != nil {
			s.Error = fmt.Sprintf("sluice rep %d: %v", rep, err)
			break
		}
		s.Sluice.Runs = append(s.Sluice.Runs, r)
		logf("%s rep %d/%d sluice:     %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
		// The source table now holds the workload's final rows.
		r, err = b.dorisIncrLoad(ctx, env, w, rep)
		if err != nil {
			s.Error = fmt.Sprintf("streamload rep %d: %v", rep, err)
			break
		}
		s.Yardstick.Runs = append(s.Yardstick.Runs, r)
		logf("%s rep %d/%d streamload: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
	}
	b.add(s)
	return nil
}

// dorisIncrSluice: the source table reset and seeded with no slot, a
// task with schema, full and incremental sync (the full sync seeds the
// Doris table, untimed), a warm-up marker, `task pause`, the workload,
// then the clock runs from `task resume` to the end marker in Doris.
func (b *bench) dorisIncrSluice(ctx context.Context, env *dorisEnv, w workload, rep int) (_ run, err error) {
	if err := capture.DropTaskObjects(ctx, env.src, dorisIncrTask); err != nil {
		return run{}, err
	}
	for _, sql := range []string{"TRUNCATE " + benchTable, rowsSQL(benchTable, 1, w.SeedRows), "VACUUM ANALYZE " + benchTable} {
		if err := execSQL(ctx, env.src, 30*time.Minute, sql); err != nil {
			return run{}, err
		}
	}
	db := fmt.Sprintf("bench_incr_s%d", rep)
	if err := env.dropDB(db); err != nil {
		return run{}, err
	}
	defer env.dropDBUnlessKept(b.cfg.Keep, db)
	p, done, err := b.freshSluice(ctx, fmt.Sprintf("doris-incr-rep%d", rep))
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	spec := dorisTaskSpec(dorisIncrTask, b.src.DSN(dorisSrcDB), env.emu.FEURL(), db, benchTable, true, true, true)
	if err := p.CreateTask(ctx, spec); err != nil {
		return run{}, err
	}
	check := func() error { _, err := p.checkTask(ctx, dorisIncrTask); return err }
	status := func() string {
		st, err := p.Task(ctx, dorisIncrTask)
		if err != nil {
			return err.Error()
		}
		return statusLine(st)
	}
	logf("    doris/incr: waiting for the full sync of the %s-row seed (untimed)", count(w.SeedRows))
	if _, err := p.WaitTask(ctx, dorisIncrTask, "incremental", catchUpTimeout(w.SeedRows)*2, 50*time.Millisecond, func(st *proto.TaskStatus) bool {
		return st.Phase == proto.PhaseIncremental && st.State == proto.StateRunning
	}); err != nil {
		return run{}, err
	}
	if err := execSQL(ctx, env.src, time.Minute, markerSQL(benchTable, warmupMarker)); err != nil {
		return run{}, err
	}
	if err := env.waitMarker(ctx, db, benchTable, warmupMarker, 2*time.Minute, check, status); err != nil {
		return run{}, fmt.Errorf("warm-up: %w", err)
	}
	if err := p.Pause(ctx, dorisIncrTask, isPaused, heldSlot{env.src, proto.SlotName(dorisIncrTask)}); err != nil {
		return run{}, err
	}
	progress := func(done int64) { logf("    workload: %s of %s rows written", count(done), count(w.Rows)) }
	if err := runWorkload(ctx, env.src, benchTable, w, progress); err != nil {
		return run{}, err
	}
	if err := checkpoint(ctx, b.src); err != nil {
		return run{}, err
	}
	st0 := env.emu.Stats()
	m, err := startMeter(p.PID())
	if err != nil {
		return run{}, err
	}
	t0 := time.Now()
	if err := p.Resume(ctx, dorisIncrTask); err != nil {
		m.Stop()
		return run{}, err
	}
	err = env.waitMarker(ctx, db, benchTable, endMarker, catchUpTimeout(w.Rows), check, status)
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	if err := env.compare(ctx, db, benchTable); err != nil {
		return run{}, err
	}
	if err := p.DeleteTask(ctx, dorisIncrTask); err != nil {
		return run{}, err
	}
	r := newRun(rep, d, w.Rows, &u)
	r.Extra = env.loadExtra(st0)
	return r, nil
}

// dorisIncrLoad is the yardstick of doris/incr: a Doris table seeded
// (untimed) with the same seed rows, then, timed, Stream Loads of the
// source table's final rows (every seed row updated, plus the two marker
// rows): the same keys written with their final values, as upserts.
func (b *bench) dorisIncrLoad(ctx context.Context, env *dorisEnv, w workload, rep int) (run, error) {
	db := fmt.Sprintf("bench_incr_y%d", rep)
	if err := env.dropDB(db); err != nil {
		return run{}, err
	}
	defer env.dropDBUnlessKept(b.cfg.Keep, db)
	if _, err := env.emu.SQL("", "CREATE DATABASE `"+db+"`"); err != nil {
		return run{}, fmt.Errorf("doris: create database %s: %w", db, err)
	}
	if _, err := env.emu.SQL(db, dorisDDL(benchTable)); err != nil {
		return run{}, fmt.Errorf("doris: create table %s: %w", benchTable, err)
	}
	lctx, cancel := context.WithTimeout(ctx, catchUpTimeout(w.Rows)*2)
	defer cancel()
	seed := fmt.Sprintf("SELECT "+benchRows+" FROM generate_series(1::bigint, %d::bigint) g", w.SeedRows)
	if _, err := env.streamLoad(lctx, db, benchTable, "SELECT id, k, c, pad FROM ("+seed+") s(id, k, c, pad)"); err != nil {
		return run{}, fmt.Errorf("seed: %w", err)
	}
	if err := checkpoint(ctx, b.src); err != nil {
		return run{}, err
	}
	st0 := env.emu.Stats()
	t0 := time.Now()
	n, err := env.streamLoad(lctx, db, benchTable, "SELECT id, k, c, pad FROM "+benchTable)
	d := time.Since(t0)
	if err != nil {
		return run{}, err
	}
	if want := w.SeedRows + 2; n != want { // the seed rows and both markers
		return run{}, fmt.Errorf("stream load moved %d rows, want %d", n, want)
	}
	if err := env.compare(ctx, db, benchTable); err != nil {
		return run{}, err
	}
	r := newRun(rep, d, w.Rows, nil)
	r.Extra = env.loadExtra(st0)
	return r, nil
}

// ---- helpers ---------------------------------------------------------

// dorisTaskSpec is a task's YAML with a doris destination.
func dorisTaskSpec(name, srcDSN, feURL, db, table string, schema, full, incremental bool) string {
	return fmt.Sprintf(`name: %s
source:      { dsn: %q }
destination: { type: doris, url: %q, user: root, database: %s, batch_interval: %s }
sync:        { schema: %t, full: %t, incremental: %t }
objects:
  - schema: public
    tables: [%s]
retry: { connection: 10m, other: 2m }
`, name, srcDSN, feURL, db, dorisBatchInterval, schema, full, incremental, table)
}

func (env *dorisEnv) dropDB(db string) error {
	if _, err := env.emu.SQL("", "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		return fmt.Errorf("doris: drop database %s: %w", db, err)
	}
	return nil
}

func (env *dorisEnv) dropDBUnlessKept(keep bool, db string) {
	if keep {
		return
	}
	if err := env.dropDB(db); err != nil {
		logf("warning: %v", err)
	}
}

// loadExtra is what the emulator's BE did since st0, for the JSON.
func (env *dorisEnv) loadExtra(st0 emu.Stats) map[string]float64 {
	st := env.emu.Stats()
	return map[string]float64{
		"doris_loads":   float64(st.Loads - st0.Loads),
		"doris_commits": float64(st.Commits - st0.Commits),
		"doris_rows":    float64(st.Rows - st0.Rows),
		"doris_mb":      float64(st.Bytes-st0.Bytes) / (1 << 20),
	}
}

// waitMarker polls the Doris table every 20 ms until the row with key id
// is visible (see waitMarker for check and status).
func (env *dorisEnv) waitMarker(ctx context.Context, db, table string, id int64, timeout time.Duration, check func() error, status func() string) error {
	start := time.Now()
	deadline := start.Add(timeout)
	nextCheck, nextStatus := start.Add(time.Second), start.Add(10*time.Second)
	q := fmt.Sprintf("SELECT COUNT(*) FROM `%s` WHERE id = %d", table, id)
	for {
		rows, err := env.emu.SQL(db, q)
		// The table does not exist until the schema sync created it.
		if err == nil && len(rows) == 1 && len(rows[0]) == 1 && rows[0][0] != nil && *rows[0][0] != "0" {
			return nil
		}
		now := time.Now()
		if now.After(deadline) {
			s := ""
			if status != nil {
				s = " (" + status() + ")"
			}
			if err != nil {
				s += fmt.Sprintf(" (last poll: %v)", err)
			}
			return fmt.Errorf("marker row %d not in Doris %s.%s within %v%s", id, db, table, timeout, s)
		}
		if check != nil && now.After(nextCheck) {
			if err := check(); err != nil {
				return err
			}
			nextCheck = now.Add(time.Second)
		}
		if status != nil && now.After(nextStatus) {
			logf("    waiting %.0fs: %s", now.Sub(start).Seconds(), status())
			nextStatus = now.Add(10 * time.Second)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// Content check: row count and an order-independent sum over every row of
// the first 60 bits of md5(id|k|c|pad), computed by PostgreSQL at the
// source and by the emulator's MariaDB under the Doris table's view. The
// columns are bigint, int and text only, whose text is the same in both.
const (
	pgChecksum    = `SELECT count(*)::text, COALESCE(sum(('x' || substr(md5(concat_ws('|', id, k, c, pad)), 1, 15))::bit(60)::bigint), 0)::text FROM %s`
	dorisChecksum = "SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTR(MD5(CONCAT_WS('|', id, k, c, pad)), 1, 15), 16, 10) AS UNSIGNED)), 0) FROM `%s`"
)

func (env *dorisEnv) compare(ctx context.Context, db, table string) error {
	var srcCount, srcSum string
	qctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	err := env.src.QueryRow(qctx, fmt.Sprintf(pgChecksum, pgx.Identifier{table}.Sanitize())).Scan(&srcCount, &srcSum)
	cancel()
	if err != nil {
		return fmt.Errorf("checksum of source %s: %w", table, err)
	}
	rows, err := env.emu.SQL(db, fmt.Sprintf(dorisChecksum, table))
	if err != nil {
		return fmt.Errorf("checksum of Doris %s.%s: %w", db, table, err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 || rows[0][0] == nil || rows[0][1] == nil {
		return fmt.Errorf("checksum of Doris %s.%s: unexpected answer %v", db, table, rows)
	}
	dstCount, dstSum := *rows[0][0], *rows[0][1]
	if srcCount != dstCount || srcSum != dstSum {
		return fmt.Errorf("CONTENT MISMATCH: %s: source %s rows (checksum %s), Doris %s.%s %s rows (checksum %s)",
			table, srcCount, srcSum, db, table, dstCount, dstSum)
	}
	return nil
}

// streamLoad is the yardstick's load: `COPY (SELECT json_build_object(...)
// FROM (query)) TO STDOUT` from the source, cut into JSON-lines bodies of
// dorisLoadChunk rows, each PUT to the FE's _stream_load, following its 307
// to the BE with the same credentials. Reading the next chunk overlaps the
// load of the previous one. It returns the rows loaded.
func (env *dorisEnv) streamLoad(ctx context.Context, db, table, query string) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	copyDone := make(chan error, 1)
	go func() {
		sql := "COPY (SELECT json_build_object('id', id, 'k', k, 'c', c, 'pad', pad, 'seq', 0) FROM (" + query + ") q) TO STDOUT"
		_, err := env.src.PgConn().CopyTo(ctx, pw, sql)
		pw.CloseWithError(err)
		copyDone <- err
	}()
	type chunk struct {
		body []byte
		rows int64
	}
	chunks := make(chan chunk, 1)
	readDone := make(chan error, 1)
	go func() {
		defer close(chunks)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		var buf bytes.Buffer
		var n int64
		flush := func() bool {
			if n == 0 {
				return true
			}
			select {
			case chunks <- chunk{body: bytes.Clone(buf.Bytes()), rows: n}:
			case <-ctx.Done():
				return false
			}
			buf.Reset()
			n = 0
			return true
		}
		for sc.Scan() {
			// COPY's text format doubles backslashes; a JSON text has no
			// raw control characters, so that is its only escape.
			line := sc.Bytes()
			if bytes.IndexByte(line, '\\') >= 0 {
				line = bytes.ReplaceAll(line, []byte(`\\`), []byte(`\`))
			}
			buf.Write(line)
			buf.WriteByte('\n')
			if n++; n == dorisLoadChunk && !flush() {
				pr.CloseWithError(ctx.Err())
				readDone <- ctx.Err()
				return
			}
		}
		if err := sc.Err(); err != nil {
			readDone <- err
			return
		}
		flush()
		readDone <- nil
	}()
	var total int64
	var loadErr error
	for i := 0; ; i++ {
		c, ok := <-chunks
		if !ok {
			break
		}
		if loadErr != nil {
			continue // drain
		}
		label := fmt.Sprintf("bench_%s_%s_%d_%d", db, table, time.Now().UnixNano(), i)
		if err := env.putLoad(ctx, db, table, label, c.body, c.rows); err != nil {
			loadErr = err
			cancel()
			continue
		}
		total += c.rows
	}
	rerr, cerr := <-readDone, <-copyDone
	switch {
	case loadErr != nil:
		return total, loadErr
	case cerr != nil:
		return total, fmt.Errorf("COPY TO: %w", cerr)
	case rerr != nil:
		return total, rerr
	}
	return total, nil
}

// putLoad sends one Stream Load (no two-phase commit) and checks its
// answer.
func (env *dorisEnv) putLoad(ctx context.Context, db, table, label string, body []byte, rows int64) error {
	endpoint := env.emu.FEURL() + "/api/" + url.PathEscape(db) + "/" + url.PathEscape(table) + "/_stream_load"
	for hop := 0; hop < 3; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.SetBasicAuth("root", "")
		req.Header.Set("Expect", "100-continue")
		for k, v := range map[string]string{
			"label": label, "format": "json", "read_json_by_line": "true",
			"columns": "id,k,c,pad,seq", "function_column.sequence_col": "seq",
			"strict_mode": "false", "max_filter_ratio": "0",
		} {
			req.Header.Set(k, v)
		}
		resp, err := env.http.Do(req)
		if err != nil {
			return fmt.Errorf("stream load %s.%s: %w", db, table, err)
		}
		if resp.StatusCode == http.StatusTemporaryRedirect {
			resp.Body.Close()
			loc, err := resp.Location()
			if err != nil {
				return fmt.Errorf("stream load %s.%s: redirect: %w", db, table, err)
			}
			loc.User = nil
			endpoint = loc.String()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("stream load %s.%s: %w", db, table, err)
		}
		var ans struct {
			Status           string
			Message          string
			NumberLoadedRows int64
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &ans) != nil {
			return fmt.Errorf("stream load %s.%s: HTTP %d: %s", db, table, resp.StatusCode, truncateBytes(data, 500))
		}
		if ans.Status != "Success" && ans.Status != "Publish Timeout" {
			return fmt.Errorf("stream load %s.%s: %s: %s", db, table, ans.Status, ans.Message)
		}
		if ans.NumberLoadedRows != rows {
			return fmt.Errorf("stream load %s.%s: %d rows loaded of %d sent (%s)", db, table, ans.NumberLoadedRows, rows, truncateBytes(data, 500))
		}
		return nil
	}
	return fmt.Errorf("stream load %s.%s: too many redirects", db, table)
}

func truncateBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
