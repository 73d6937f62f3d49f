package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/proto"
)

// Incremental scenarios. Sluice and the yardstick (PostgreSQL's logical
// replication) each have their own source database and destination
// database with the same table, so the two never read each other's
// changes; they run one at a time, A B A B.
const (
	incrSluiceDB = "incr_sluice"
	incrNativeDB = "incr_native"
	incrTask     = "bench-incr"
)

// incrCase is one incremental scenario.
type incrCase struct {
	Name string // catchup/insert, live/update, largetx, ...
	Mode string // catchup | live
	W    workload
	// Filter is a row filter of the table (the filter/ scenarios), ""
	// for none: the destination holds only the rows that satisfy it.
	Filter string
	// Bytes: measure the payload the workload wrote, for MB/s (the
	// scale/ scenarios).
	Bytes bool
	// Nodes runs Sluice as a cluster of this many `sluice node`
	// processes (the cluster/ scenarios); 0 for one `sluice up`.
	Nodes int
}

// tables are the tables the case writes: the bench table, or
// bench_0001... (workload.Tables).
func (c incrCase) tables() []string { return c.W.tables(benchTable) }

func incrCases(scale float64) []incrCase {
	var list []incrCase
	for _, mode := range []string{"catchup", "live"} {
		for _, w := range workloads(scale) {
			list = append(list, incrCase{Name: mode + "/" + w.Name, Mode: mode, W: w})
		}
	}
	return append(list, incrCase{Name: "largetx", Mode: "live", W: largeTx(scale)})
}

// incrTarget: inserts must be at least as fast as PostgreSQL's own
// replication, updates and deletes 1.5 times as fast (they are where
// set-based apply should win); the large transaction has no speed target.
func incrTarget(c incrCase) target {
	t := target{MaxRSSBytes: rssLimit}
	switch {
	case c.Name == "largetx", c.Filter != "", strings.HasPrefix(c.Name, "scale/"):
		// No speed target: the filtered yardstick replicates a different
		// WAL (REPLICA IDENTITY FULL), scenarios_filter.go; the scale/
		// cases are a table of growth (scenarios_scale.go).
	case c.W.Kind == "insert":
		t.MinRatio = 1.0
	default:
		t.MinRatio = 1.5
	}
	return t
}

// wantedCases keeps the cases --only selects.
func (b *bench) wantedCases(all []incrCase) []incrCase {
	var cases []incrCase
	for _, c := range all {
		if b.want(c.Name) {
			cases = append(cases, c)
		}
	}
	return cases
}

func (b *bench) runIncremental(ctx context.Context) error {
	cases := b.wantedCases(incrCases(b.cfg.Scale))
	if len(cases) == 0 {
		return nil
	}
	if err := b.createBenchDatabases(ctx, incrSluiceDB, incrNativeDB); err != nil {
		return err
	}
	defer b.dropDatabases(incrSluiceDB, incrNativeDB)
	env, err := b.openPairEnv(ctx, incrSluiceDB, incrNativeDB, "bench_incr", []string{benchTable})
	if err != nil {
		return err
	}
	defer env.Close()
	return b.runIncrCases(ctx, env, cases)
}

// runIncrCases runs incremental cases A B A B on env and adds their
// scenarios.
func (b *bench) runIncrCases(ctx context.Context, env *pairEnv, cases []incrCase) error {
	for _, c := range cases {
		desc := c.W.What
		if c.Mode == "catchup" {
			desc = "catch-up after a pause: " + desc + "; timed from resume to the end marker at the destination"
		} else {
			desc = "live: " + desc + "; timed from the workload's start to the end marker at the destination"
		}
		if c.Filter != "" {
			desc += filterNote(c.Filter)
		}
		s := &scenario{
			Name: c.Name, Unit: "s", Rows: c.W.Rows, Description: desc,
			Sluice: side{Name: "sluice"}, Yardstick: &side{Name: "native"},
			Target: incrTarget(c),
		}
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			r, err := b.incrSluice(ctx, env, c, rep)
			if err != nil {
				s.Error = fmt.Sprintf("sluice rep %d: %v", rep, err)
				break
			}
			s.Sluice.Runs = append(s.Sluice.Runs, r)
			logf("%s rep %d/%d sluice: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
			r, err = b.incrNative(ctx, env, c, rep)
			if err != nil {
				s.Error = fmt.Sprintf("native rep %d: %v", rep, err)
				break
			}
			s.Yardstick.Runs = append(s.Yardstick.Runs, r)
			logf("%s rep %d/%d native: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
		}
		if c.Bytes && len(s.Sluice.Runs) > 0 {
			// Sluice's source still holds its last run's rows.
			if n, err := payloadBytes(ctx, env.src, c.tables()); err != nil {
				logf("warning: %s: %v", s.Name, err)
			} else {
				addThroughput(s, n)
			}
		}
		b.add(s)
		if c.Name == "live/single-insert" && len(s.Yardstick.Runs) > 0 {
			var rates []float64
			for _, r := range s.Yardstick.Runs {
				rates = append(rates, r.RowsPerSecond)
			}
			b.nativeSingleRate = median(rates)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// incrSluice is one Sluice run: a fresh `sluice up`, the table reset and
// seeded on both sides while no slot exists, an incremental-only task
// (schema and full sync off, conflicting_tables ignore), a warm-up marker,
// then the measured part.
func (b *bench) incrSluice(ctx context.Context, env *pairEnv, c incrCase, rep int) (_ run, err error) {
	// A slot or publication left by an interrupted run would replicate
	// the reset.
	if err := capture.DropTaskObjects(ctx, env.src, incrTask); err != nil {
		return run{}, err
	}
	if err := seedCase(ctx, env.src, env.dst, c); err != nil {
		return run{}, err
	}
	var p *sluiceProc
	var done func(*error)
	if c.Nodes > 0 {
		p, done, err = b.freshCluster(ctx, fmt.Sprintf("%s-%dnodes-rep%d", c.Name, c.Nodes, rep), c.Nodes)
	} else {
		p, done, err = b.freshSluice(ctx, fmt.Sprintf("%s-rep%d", c.Name, rep))
	}
	if err != nil {
		return run{}, err
	}
	defer done(&err)
	if err := startIncrementalTask(ctx, p, incrTask, b.src.DSN(env.db), b.dst.DSN(env.db), env.src, env.dst, c.tables(), c.Filter); err != nil {
		return run{}, err
	}
	var replicas int
	if p.cluster != nil {
		// What the figure is about: every change replicated to the
		// stream's three brokers before it counts as captured.
		var layout string
		if replicas, layout, err = p.clusterLayout(ctx, incrTask); err != nil {
			return run{}, err
		}
		logf("    cluster: %s", layout)
	}
	work, err := connect(ctx, b.src.DSN(env.db))
	if err != nil {
		return run{}, err
	}
	defer work.Close(context.Background())

	check := func() error { _, err := p.checkTask(ctx, incrTask); return err }
	status := func() string {
		st, err := p.Task(ctx, incrTask)
		if err != nil {
			return err.Error()
		}
		return statusLine(st)
	}
	progress := func(done int64) { logf("    workload: %s of %s rows written", count(done), count(c.W.Rows)) }
	pids := sluicePIDs(b.src, b.dst, env.db)
	var m *runMeter
	var t0 time.Time
	switch c.Mode {
	case "catchup":
		if err := p.Pause(ctx, incrTask, isPaused, heldSlot{env.src, proto.SlotName(incrTask)}); err != nil {
			return run{}, err
		}
		if err := runWorkload(ctx, work, benchTable, c.W, progress); err != nil {
			return run{}, err
		}
		if err := checkpoint(ctx, b.src, b.dst); err != nil {
			return run{}, err
		}
		if m, err = startRunMeter(ctx, p.PIDs(), pids); err != nil {
			return run{}, err
		}
		t0 = time.Now()
		if err := p.Resume(ctx, incrTask); err != nil {
			m.Stop()
			return run{}, err
		}
	case "live":
		if m, err = startRunMeter(ctx, p.PIDs(), pids); err != nil {
			return run{}, err
		}
		t0 = time.Now()
		if err := runWorkload(ctx, work, benchTable, c.W, progress); err != nil {
			m.Stop()
			return run{}, err
		}
	}
	err = waitMarkers(ctx, env.dst, c.tables(), c.W.marker(), catchUpTimeout(c.W.Rows), check, status)
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	if err := compareCase(ctx, env.src, env.dst, c); err != nil {
		return run{}, err
	}
	perBatch := p.rowsPerBatch(ctx, incrTask)
	if err := p.DeleteTask(ctx, incrTask); err != nil {
		return run{}, err
	}
	r := newRun(rep, d, c.W.Rows, &u)
	if perBatch > 0 {
		r.extra("rows_per_batch", math.Round(perBatch))
	}
	if replicas > 0 {
		r.extra("stream_replicas", float64(replicas))
		for i, node := range p.procs {
			r.extra("cpu_seconds_"+node.Name, u.ProcessCPU[i])
		}
	}
	return r, nil
}

// startIncrementalTask creates an incremental-only task of tables (with
// filter as the first table's row filter, "" for none) and waits until it
// captures and applies: phase incremental, and a warm-up marker row
// written at the source (into every table, in one transaction) visible at
// the destination.
func startIncrementalTask(ctx context.Context, p *sluiceProc, name, srcDSN, dstDSN string, src, dst *pgx.Conn, tables []string, filter string) error {
	if err := p.CreateTask(ctx, withFilter(taskSpec(name, srcDSN, dstDSN, tables, false, false, true), tables[0], filter)); err != nil {
		return err
	}
	if _, err := p.WaitTask(ctx, name, "incremental", 2*time.Minute, 50*time.Millisecond, func(st *proto.TaskStatus) bool {
		return st.Phase == proto.PhaseIncremental && st.State == proto.StateRunning
	}); err != nil {
		return err
	}
	if err := execSQL(ctx, src, time.Minute, warmupSQL(tables...)); err != nil {
		return err
	}
	check := func() error { _, err := p.checkTask(ctx, name); return err }
	if err := waitMarkers(ctx, dst, tables, warmupMarker, 2*time.Minute, check, nil); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

// warmupSQL writes the warm-up marker into benchmark tables, in one
// transaction.
func warmupSQL(tables ...string) string {
	if len(tables) == 1 && tables[0] == latencyTable {
		return fmt.Sprintf("INSERT INTO %s (id, payload) VALUES (%d, 'warm-up')", latencyTable, warmupMarker)
	}
	return markersSQL(tables, warmupMarker)
}

// waitSlotReleased waits until no session holds the slot.
func waitSlotReleased(ctx context.Context, src *pgx.Conn, slot string) error {
	return poll(ctx, time.Minute, 20*time.Millisecond, "slot "+slot+" released", func() (bool, error) {
		var active bool
		err := src.QueryRow(ctx, "SELECT COALESCE((SELECT active FROM pg_replication_slots WHERE slot_name = $1), false)", slot).Scan(&active)
		return !active, err
	})
}

// incrNative is one yardstick run: the subscription dropped, the table
// reset and seeded on both sides, the subscription created with
// copy_data = false, a warm-up marker, then the measured part.
func (b *bench) incrNative(ctx context.Context, env *pairEnv, c incrCase, rep int) (run, error) {
	n := env.nat
	if err := n.Drop(ctx); err != nil {
		return run{}, err
	}
	if err := seedCase(ctx, n.src1, n.dst1, c); err != nil {
		return run{}, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return run{}, err
	}
	if err := startNative(ctx, n, c.tables()...); err != nil {
		return run{}, err
	}
	work, err := connect(ctx, b.src.DSN(n.srcDB))
	if err != nil {
		return run{}, err
	}
	defer work.Close(context.Background())
	status := func() string { return n.Status(ctx) }
	progress := func(done int64) { logf("    workload: %s of %s rows written", count(done), count(c.W.Rows)) }
	var m *runMeter
	var t0 time.Time
	switch c.Mode {
	case "catchup":
		if err := n.Disable(ctx); err != nil {
			return run{}, err
		}
		if err := runWorkload(ctx, work, benchTable, c.W, progress); err != nil {
			return run{}, err
		}
		if err := checkpoint(ctx, b.src, b.dst); err != nil {
			return run{}, err
		}
		if err := n.PrepareEnable(ctx); err != nil {
			return run{}, err
		}
		if m, err = startRunMeter(ctx, nil, nativePIDs(n)); err != nil {
			return run{}, err
		}
		t0 = time.Now()
		if err := n.Enable(ctx); err != nil {
			m.Stop()
			return run{}, err
		}
	case "live":
		if m, err = startRunMeter(ctx, nil, nativePIDs(n)); err != nil {
			return run{}, err
		}
		t0 = time.Now()
		if err := runWorkload(ctx, work, benchTable, c.W, progress); err != nil {
			m.Stop()
			return run{}, err
		}
	}
	err = waitMarkers(ctx, n.dst1, c.tables(), c.W.marker(), catchUpTimeout(c.W.Rows), nil, status)
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return run{}, err
	}
	if err := compareCase(ctx, n.src1, n.dst1, c); err != nil {
		return run{}, err
	}
	if err := n.Drop(ctx); err != nil {
		return run{}, err
	}
	return newRun(rep, d, c.W.Rows, &u), nil
}

// startNative creates the subscription (enabled) and waits until a
// warm-up marker has arrived in each of tables.
func startNative(ctx context.Context, n *native, tables ...string) error {
	if err := n.Create(ctx, true); err != nil {
		return err
	}
	if err := execSQL(ctx, n.src1, time.Minute, warmupSQL(tables...)); err != nil {
		return err
	}
	if err := waitMarkers(ctx, n.dst1, tables, warmupMarker, 2*time.Minute, nil, nil); err != nil {
		return fmt.Errorf("native warm-up: %w", err)
	}
	return nil
}
