package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
)

// Scale scenarios: how throughput grows with the number of tables each
// transaction writes, with the row width and with the transaction size.
// Each case is a catch-up of inserts through the incremental harness
// (scenarios_incr.go): Sluice and native replication alternating, content
// compared after each run; a catch-up so the time is the pipeline's alone,
// not the writer's. Each case moves a bounded volume: 200k rows at scale 1
// (or 200 MB, whichever is smaller), except the one-transaction case.
const (
	scaleSluiceDB = "scale_sluice"
	scaleNativeDB = "scale_native"
	scaleRows     = 200_000
	scaleBytes    = 200_000_000
)

var (
	scaleTableCounts = []int{1, 10, 100, 1000}
	scaleWidths      = []int64{100, 1000, 10_000, 100_000}
	scaleTxSizes     = []int64{1, 100, 10_000, 1_000_000}
)

func scaleCases(scale float64) []incrCase {
	var list []incrCase
	add := func(name string, w workload) {
		w.Name, w.Kind = name, "insert"
		list = append(list, incrCase{Name: "scale/" + name, Mode: "catchup", W: w, Bytes: true})
	}
	rows := scaled(scaleRows, scale)
	for _, n := range scaleTableCounts {
		w := workload{Rows: rows, TxRows: 1000, Tables: n,
			What: fmt.Sprintf("%s inserts in 1k-row transactions, each spread evenly over %d table(s)", count(rows), n)}
		add(fmt.Sprintf("tables/%d", n), w)
	}
	for _, width := range scaleWidths {
		// At most 200 MB and 10 MB a transaction.
		r := max(int64(float64(min(scaleRows, scaleBytes/width))*scale), 100)
		tx := min(max(10_000_000/width, 1), 1000, r)
		w := workload{Rows: r, TxRows: tx, Width: width,
			What: fmt.Sprintf("%s inserts of %s rows in %s-row transactions", count(r), fmtWidth(width), count(tx))}
		add("width/"+fmtWidth(width), w)
	}
	for _, nominal := range scaleTxSizes {
		r := rows
		if nominal > scaleRows {
			r = scaled(nominal, scale) // the one-transaction case, scaled
		}
		tx := min(nominal, r)
		w := workload{Rows: r, TxRows: tx, What: fmt.Sprintf("%s inserts in %s-row transactions", count(r), count(tx))}
		if tx == 1 {
			w.What = fmt.Sprintf("%s single-row autocommit inserts", count(r))
		}
		add(fmt.Sprintf("txsize/%d", nominal), w)
	}
	return list
}

// fmtWidth prints a row width: 100B, 1KB, 10KB, 100KB (decimal).
func fmtWidth(n int64) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dKB", n/1000)
	}
	return fmt.Sprintf("%dB", n)
}

func (b *bench) runScale(ctx context.Context) error {
	var cases []incrCase
	maxTables := 0
	for _, c := range scaleCases(b.cfg.Scale) {
		if b.want(c.Name) {
			cases = append(cases, c)
			maxTables = max(maxTables, c.W.Tables)
		}
	}
	if len(cases) == 0 {
		return nil
	}
	if err := b.createBenchDatabases(ctx, scaleSluiceDB, scaleNativeDB); err != nil {
		return err
	}
	defer b.dropDatabases(scaleSluiceDB, scaleNativeDB)
	if err := b.createScaleTables(ctx, maxTables); err != nil {
		return err
	}
	for _, c := range cases {
		// A publication of the case's tables for native.
		env, err := b.openPairEnv(ctx, scaleSluiceDB, scaleNativeDB, "bench_scale", c.tables())
		if err != nil {
			return err
		}
		err = b.runIncrCases(ctx, env, []incrCase{c})
		env.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// createScaleTables creates bench_0001 ... bench_<n> (the bench table's
// shape) in the scale databases on both clusters.
func (b *bench) createScaleTables(ctx context.Context, n int) error {
	if n <= 1 {
		return nil
	}
	var ddl []string
	for _, t := range (workload{Tables: n}).tables(benchTable) {
		ddl = append(ddl, benchTableDDL(t))
	}
	for _, db := range []string{scaleSluiceDB, scaleNativeDB} {
		for _, pg := range []*testenv.Postgres{b.src, b.dst} {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			err := pg.Exec(cctx, db, strings.Join(ddl, "; "))
			cancel()
			if err != nil {
				return fmt.Errorf("create %d scale tables in %s: %w", n, db, err)
			}
		}
	}
	return nil
}

// payloadBytes is the size of the column values of tables' rows (the
// markers left out), as PostgreSQL stores them: what a case moved.
func payloadBytes(ctx context.Context, conn *pgx.Conn, tables []string) (int64, error) {
	var total int64
	for _, t := range tables {
		var n int64
		q := fmt.Sprintf(`SELECT COALESCE(sum(pg_column_size(id) + pg_column_size(k) + pg_column_size(c) + pg_column_size(pad)), 0)::bigint FROM %s WHERE id > 0`, t)
		qctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := conn.QueryRow(qctx, q).Scan(&n)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("payload of %s: %w", t, err)
		}
		total += n
	}
	return total, nil
}

// addThroughput records a case's payload in the scenario and MB/s in
// every run of both sides.
func addThroughput(s *scenario, bytes int64) {
	s.Bytes = bytes
	sides := []*side{&s.Sluice}
	if s.Yardstick != nil {
		sides = append(sides, s.Yardstick)
	}
	for _, sd := range sides {
		for i := range sd.Runs {
			r := &sd.Runs[i]
			if r.Value > 0 {
				r.extra("MB/s", float64(bytes)/1e6/r.Value)
			}
		}
	}
}

// printScaleTable writes the scale/ scenarios of a run as the markdown
// table of bench/README.md ("Scale"); nothing when there are none.
func printScaleTable(w io.Writer, list []*scenario) {
	var rows []*scenario
	for _, s := range list {
		if strings.HasPrefix(s.Name, "scale/") {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "| case | rows | rows/tx | row bytes | Sluice rows/s | native rows/s | Sluice MB/s | native MB/s | ratio | pipeline CPU s/Mrow Sluice / native | Sluice process CPU s/Mrow | peak RSS |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range rows {
		if s.Error != "" || len(s.Sluice.Runs) == 0 {
			fmt.Fprintf(w, "| `%s` | %s | | | FAILED: %s | | | | | | | |\n", s.Name, count(s.Rows), firstLine(s.Error))
			continue
		}
		rate := func(sd *side) string {
			if sd == nil || sd.Median <= 0 {
				return "-"
			}
			return fmtRate(float64(s.Rows) / sd.Median)
		}
		mbs := func(sd *side) string {
			if sd == nil || sd.Median <= 0 || s.Bytes == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", float64(s.Bytes)/1e6/sd.Median)
		}
		rowBytes, ratio, rss := "-", "-", "-"
		if s.Bytes > 0 && s.Rows > 0 {
			rowBytes = fmt.Sprint(s.Bytes / s.Rows)
		}
		if s.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", s.Ratio)
		}
		if s.PeakRSSBytes > 0 {
			rss = fmt.Sprintf("%d MB", s.PeakRSSBytes>>20)
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n",
			s.Name, count(s.Rows), count(txRowsOf(s)), rowBytes, rate(&s.Sluice), rate(s.Yardstick), mbs(&s.Sluice), mbs(s.Yardstick),
			ratio, fmtCPU(s.PipelineCPUPerMillion), fmtCPU(s.YardstickPipelineCPUPerMillion), fmtCPU(s.CPUPerMillion), rss)
	}
}

// txRowsOf is a scale scenario's rows per transaction: its case's at
// scale 1, cut to the rows the run's scale left (scaleCases).
func txRowsOf(s *scenario) int64 {
	for _, c := range scaleCases(1) {
		if c.Name == s.Name {
			return min(c.W.TxRows, s.Rows)
		}
	}
	return 0
}

// printScaleTableFile prints the scale table of a results JSON (the
// --scale-table flag).
func printScaleTableFile(w io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(w, "Scale %g, %d reps, %s, commit %.7s (%s):\n\n", r.Config.Scale, r.Config.Reps, shortVersion(r.Machine.Postgres), r.Machine.GitCommit, path)
	printScaleTable(w, r.Scenarios)
	return nil
}
