package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The incremental, capture and large-transaction scenarios use one table
// shape on both sides, with the same primary key.
const benchTable = "bench"

const benchDDL = `CREATE TABLE IF NOT EXISTS bench (id bigint PRIMARY KEY, k int NOT NULL, c text NOT NULL, pad text NOT NULL)`

// benchRows is the SELECT list of the deterministic row for key g: k in
// 0..99999, c an md5 (32 chars), pad 60 to 100 chars.
const benchRows = `g, (g %% 100000)::int, md5(g::text), rpad(md5((g * 7)::text) || md5((g * 13)::text), 60 + (g %% 41)::int, 'x')`

// rowsSQL inserts keys lo..hi into table.
func rowsSQL(table string, lo, hi int64) string { return rowsSQLWidth(table, lo, hi, 0) }

// rowsSQLWidth inserts keys lo..hi into table, rows of width bytes (0:
// benchRows).
func rowsSQLWidth(table string, lo, hi, width int64) string {
	return fmt.Sprintf("INSERT INTO %s SELECT "+selectList(width)+" FROM generate_series(%d::bigint, %d::bigint) g", table, lo, hi)
}

// rowFixedBytes is the payload of a row's id, k and c (8 + 4 + 32 bytes).
const rowFixedBytes = 44

// selectList is the SELECT list of the deterministic row for key g: the
// benchRows (about 125 bytes) for width 0, else a row of width bytes of
// column values, its pad a chain of distinct md5s, so that neither
// PostgreSQL's TOAST compression nor anything on the way shrinks it.
func selectList(width int64) string {
	if width == 0 {
		return benchRows
	}
	pad := max(width-rowFixedBytes, 1)
	return fmt.Sprintf(`g, (g %%%% 100000)::int, md5(g::text), (SELECT left(string_agg(md5((g * 100003 + i)::text), ''), %d) FROM generate_series(1, %d) i)`, pad, (pad+31)/32)
}

// Marker keys: negative, so they never collide with workload keys. The
// warm-up marker proves a freshly started pipeline delivers before the
// clock starts; the end marker is written by the workload's last
// transaction (or right after it), so its arrival at the destination
// means everything before it has arrived too: both Sluice (per table, in
// stream order) and PostgreSQL's apply worker apply a table's changes in
// commit order.
const (
	warmupMarker int64 = -1
	endMarker    int64 = -2
)

func markerSQL(table string, id int64) string {
	return fmt.Sprintf("INSERT INTO %s VALUES (%d, 0, 'marker', 'marker')", table, id)
}

// workload is a write pattern measured in the incremental scenarios.
type workload struct {
	Name string
	// Rows is the number of changed rows (the end marker not counted).
	Rows int64
	// SeedRows is the table's content before the workload (keys 1..SeedRows).
	SeedRows int64
	// TxRows is the rows per transaction; 1 means autocommit statements.
	TxRows int64
	Kind   string // insert | update | delete
	What   string // for the report
	// First is the first key written (0: key 1 for updates and deletes,
	// the key above the seed for inserts), so two writers can share a
	// table on disjoint key ranges (the two-way scenario).
	First int64
	// Marker is the end marker's key (0: endMarker): a writer of its own
	// needs a marker of its own.
	Marker int64
	// Tables is the number of tables every transaction writes (0 or 1:
	// the one table named to runWorkload); each transaction's rows are
	// split evenly over them, and its last one writes the end marker
	// into each.
	Tables int
	// Width is the bytes of column values of an inserted row (0: the
	// benchRows, about 125 bytes).
	Width int64
}

// tables names the tables w writes: base alone, or base_0001 ... for
// Tables > 1 (created by createScaleTables).
func (w workload) tables(base string) []string {
	if w.Tables <= 1 {
		return []string{base}
	}
	list := make([]string, w.Tables)
	for i := range list {
		list[i] = fmt.Sprintf("%s_%04d", base, i+1)
	}
	return list
}

// firstKey is the first key w writes.
func (w workload) firstKey() int64 {
	switch {
	case w.First != 0:
		return w.First
	case w.Kind == "insert":
		return w.SeedRows + 1
	}
	return 1
}

// marker is the key of w's end marker.
func (w workload) marker() int64 {
	if w.Marker != 0 {
		return w.Marker
	}
	return endMarker
}

// workloads are the four patterns of the incremental and capture
// scenarios, scaled.
func workloads(scale float64) []workload {
	m := scaled(1_000_000, scale)
	return []workload{
		{Name: "insert", Kind: "insert", Rows: m, TxRows: 1000, What: fmt.Sprintf("%s inserts in 1k-row transactions", count(m))},
		{Name: "update", Kind: "update", Rows: m, SeedRows: m, TxRows: 1000, What: fmt.Sprintf("%s updates in 1k-row transactions", count(m))},
		{Name: "delete", Kind: "delete", Rows: m, SeedRows: m, TxRows: 1000, What: fmt.Sprintf("%s deletes in 1k-row transactions", count(m))},
		{Name: "single-insert", Kind: "insert", Rows: scaled(200_000, scale), TxRows: 1, What: fmt.Sprintf("%s single-row autocommit inserts", count(scaled(200_000, scale)))},
	}
}

// largeTx is the one-transaction workload of the extra run.
func largeTx(scale float64) workload {
	n := scaled(5_000_000, scale)
	return workload{Name: "largetx", Kind: "insert", Rows: n, TxRows: n, What: fmt.Sprintf("one transaction inserting %s rows", count(n))}
}

// seedTable empties table on both sides and loads keys 1..rows into the
// source (INSERT ... SELECT) and from there into the destination (binary
// COPY pipe), then vacuums and analyses both. Call it only when no slot
// replicates the table, or the truncate and the seed would be replicated
// too.
func seedTable(ctx context.Context, src, dst *pgx.Conn, table string, rows int64) error {
	return seedTables(ctx, src, dst, []string{table}, rows)
}

// seedTables is seedTable for several tables, each seeded with the same
// keys; one TRUNCATE and one VACUUM statement for all (a thousand tables
// take a second, not a thousand round trips).
func seedTables(ctx context.Context, src, dst *pgx.Conn, tables []string, rows int64) error {
	list := strings.Join(tables, ", ")
	for _, c := range []*pgx.Conn{src, dst} {
		if err := execSQL(ctx, c, time.Minute, "TRUNCATE "+list); err != nil {
			return err
		}
	}
	if rows > 0 {
		for _, table := range tables {
			if err := execSQL(ctx, src, 30*time.Minute, rowsSQL(table, 1, rows)); err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
			_, err := copyPipe(cctx, src, dst, "SELECT * FROM "+table, table)
			cancel()
			if err != nil {
				return err
			}
		}
	}
	for _, c := range []*pgx.Conn{src, dst} {
		if err := execSQL(ctx, c, 30*time.Minute, "VACUUM ANALYZE "+list); err != nil {
			return err
		}
	}
	return nil
}

// runWorkload writes w into table (or w's tables, workload.Tables) at
// the source, ending with the end marker: in the last transaction for
// inserts and updates, in its own transaction right after the deletes.
// progress is called about every ten seconds.
func runWorkload(ctx context.Context, conn *pgx.Conn, table string, w workload, progress func(done int64)) error {
	deadline := time.Now().Add(workloadTimeout(w.Rows))
	next := time.Now().Add(10 * time.Second)
	// Keys: inserts go above the seed, updates and deletes walk the seed.
	base := w.firstKey()
	tables := w.tables(table)
	if w.TxRows == 1 {
		return runSingleRow(ctx, conn, tables, w, base, deadline, progress)
	}
	for done := int64(0); done < w.Rows; {
		if time.Now().After(deadline) {
			return fmt.Errorf("workload %s: %d of %d rows written when its deadline passed", w.Name, done, w.Rows)
		}
		n := min(w.TxRows, w.Rows-done)
		last := done+n == w.Rows
		// The transaction's keys, split into one contiguous range per
		// table; several statements in one simple query are one
		// transaction.
		var stmts []string
		per := (n + int64(len(tables)) - 1) / int64(len(tables))
		for i, t := range tables {
			lo := base + done + int64(i)*per
			hi := min(lo+per-1, base+done+n-1)
			if lo > hi {
				break
			}
			sql, err := w.changeSQL(t, lo, hi)
			if err != nil {
				return err
			}
			stmts = append(stmts, sql)
		}
		if last && w.Kind != "delete" {
			stmts = append(stmts, markersSQL(tables, w.marker()))
		}
		if err := execSQL(ctx, conn, 30*time.Minute, strings.Join(stmts, "; ")); err != nil {
			return fmt.Errorf("workload %s: %w", w.Name, err)
		}
		done += n
		if progress != nil && time.Now().After(next) {
			progress(done)
			next = time.Now().Add(10 * time.Second)
		}
	}
	if w.Kind == "delete" {
		return execSQL(ctx, conn, time.Minute, markersSQL(tables, w.marker()))
	}
	return nil
}

// changeSQL is w's statement over keys lo..hi of table.
func (w workload) changeSQL(table string, lo, hi int64) (string, error) {
	switch w.Kind {
	case "insert":
		return rowsSQLWidth(table, lo, hi, w.Width), nil
	case "update":
		return fmt.Sprintf("UPDATE %s SET k = k + 1, c = md5(c) WHERE id BETWEEN %d AND %d", table, lo, hi), nil
	case "delete":
		return fmt.Sprintf("DELETE FROM %s WHERE id BETWEEN %d AND %d", table, lo, hi), nil
	}
	return "", fmt.Errorf("workload %s: unknown kind %q", w.Name, w.Kind)
}

// markersSQL writes marker id into every table, in one transaction.
func markersSQL(tables []string, id int64) string {
	stmts := make([]string, len(tables))
	for i, t := range tables {
		stmts[i] = markerSQL(t, id)
	}
	return strings.Join(stmts, "; ")
}

// runSingleRow inserts one row per autocommit statement (into the
// tables in turn), then the markers.
func runSingleRow(ctx context.Context, conn *pgx.Conn, tables []string, w workload, base int64, deadline time.Time, progress func(int64)) error {
	sqls := make([]string, len(tables))
	for i, t := range tables {
		sqls[i] = fmt.Sprintf("INSERT INTO %s SELECT "+selectList(w.Width)+" FROM (SELECT $1::bigint AS g) s", t)
	}
	next := time.Now().Add(10 * time.Second)
	for i := int64(0); i < w.Rows; i++ {
		if i%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("workload %s: %d of %d rows written when its deadline passed", w.Name, i, w.Rows)
			}
			if progress != nil && time.Now().After(next) {
				progress(i)
				next = time.Now().Add(10 * time.Second)
			}
		}
		if _, err := conn.Exec(ctx, sqls[i%int64(len(sqls))], base+i); err != nil {
			return fmt.Errorf("workload %s: %w", w.Name, err)
		}
	}
	return execSQL(ctx, conn, time.Minute, markersSQL(tables, w.marker()))
}

// workloadTimeout bounds writing rows: generous, at least 10 minutes, and
// 1 ms a row (1,000 rows/s would be pathological for any pattern here).
func workloadTimeout(rows int64) time.Duration {
	return 10*time.Minute + time.Duration(rows)*time.Millisecond
}

// catchUpTimeout bounds waiting for a replica to catch up.
func catchUpTimeout(rows int64) time.Duration {
	return 5*time.Minute + time.Duration(rows)*time.Millisecond
}

// rowMatch is the row a wait looks for in each table: a WHERE clause
// with one parameter, its argument, and how to name it in errors.
type rowMatch struct {
	where string
	arg   any
	what  string
}

// markerRow matches the marker row of key id.
func markerRow(id int64) rowMatch {
	return rowMatch{where: "id = $1", arg: id, what: fmt.Sprintf("marker row %d", id)}
}

// waitMarker polls the destination every 20 ms until the row with key id
// is visible. Every second it calls check (nil: no check), which may fail
// the wait early (a failed task); every ten seconds it prints a progress
// line from status (nil: none).
func waitMarker(ctx context.Context, dst *pgx.Conn, table string, id int64, timeout time.Duration, check func() error, status func() string) error {
	return waitRow(ctx, dst, table, markerRow(id), timeout, check, status)
}

// waitRow is waitMarker for any row match.
func waitRow(ctx context.Context, dst *pgx.Conn, table string, m rowMatch, timeout time.Duration, check func() error, status func() string) error {
	start := time.Now()
	deadline := start.Add(timeout)
	nextCheck := start.Add(time.Second)
	nextStatus := start.Add(10 * time.Second)
	q := fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", table, m.where)
	for {
		var found bool
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := dst.QueryRow(qctx, q, m.arg).Scan(&found)
		cancel()
		if err != nil {
			return fmt.Errorf("poll destination for %s: %w", m.what, err)
		}
		if found {
			return nil
		}
		now := time.Now()
		if now.After(deadline) {
			s := ""
			if status != nil {
				s = " (" + status() + ")"
			}
			return fmt.Errorf("%s not at the destination within %v%s", m.what, timeout, s)
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

// waitMarkers is waitMarker over several tables: the marker must be in
// each (Sluice applies tables independently, so one table's marker says
// nothing of another's). It waits on the last table, polled every 20 ms,
// then sweeps the others a hundred tables to a query until all have it.
func waitMarkers(ctx context.Context, dst *pgx.Conn, tables []string, id int64, timeout time.Duration, check func() error, status func() string) error {
	return waitRows(ctx, dst, tables, markerRow(id), timeout, check, status)
}

// waitRows is waitMarkers for any row match.
func waitRows(ctx context.Context, dst *pgx.Conn, tables []string, m rowMatch, timeout time.Duration, check func() error, status func() string) error {
	deadline := time.Now().Add(timeout)
	if err := waitRow(ctx, dst, tables[len(tables)-1], m, timeout, check, status); err != nil {
		return err
	}
	rest := tables[:len(tables)-1]
	for len(rest) > 0 {
		chunk := rest[:min(100, len(rest))]
		missing, err := tablesMissing(ctx, dst, chunk, m)
		if err != nil {
			return err
		}
		if missing == 0 {
			rest = rest[len(chunk):]
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not in %d of the tables %s..%s at the destination within %v", m.what, missing, chunk[0], chunk[len(chunk)-1], timeout)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// tablesMissing counts the tables without a row that matches m.
func tablesMissing(ctx context.Context, dst *pgx.Conn, tables []string, m rowMatch) (int, error) {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("(NOT EXISTS (SELECT 1 FROM %s WHERE %s))::int", t, m.where)
	}
	var n int
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := dst.QueryRow(qctx, "SELECT "+strings.Join(parts, " + "), m.arg).Scan(&n); err != nil {
		return 0, fmt.Errorf("poll destination for %s: %w", m.what, err)
	}
	return n, nil
}

// scaled multiplies a row count by the scale, at least 1,000.
func scaled(n int64, scale float64) int64 {
	v := int64(float64(n) * scale)
	if v < 1000 {
		v = 1000
	}
	return v
}

// count prints a row count compactly (2M, 100k, 1.5k).
func count(n int64) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e6)) + "M"
	case n >= 1000 && n%100 == 0:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e3)) + "k"
	}
	return fmt.Sprint(n)
}

func trimZero(s string) string {
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		return s[:len(s)-2]
	}
	return s
}
