package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
)

// The pipeline's CPU: on two cores wall time is about total CPU / 2, so
// the figure to drive down is the CPU of every process a change passes
// through, not Sluice's alone. A pipeline meter adds up the CPU of the
// PostgreSQL processes of one pipeline: at the source its walsender (and
// any other session it holds there), at the destination the backends
// that write its changes. For Sluice these are the sessions whose
// application_name starts with "sluice" in its two databases; for native
// replication the walsender of its slot and the subscription's workers.
// The benchmark's own sessions (workload, polling, this meter) are not
// counted on either side.

// pidQuery finds, on one cluster, the pids of a pipeline's processes.
type pidQuery struct {
	pg  *testenv.Postgres
	sql string // one parameter, arg
	arg string
	// side names where the processes run, "source" or "destination":
	// their CPU is reported per side too.
	side string
}

// sluicePIDs are a Sluice task's sessions in database db on both
// clusters: its walsender and capture queries at the source, its apply
// sessions at the destination.
func sluicePIDs(src, dst *testenv.Postgres, db string) []pidQuery {
	const q = `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'sluice%'`
	return []pidQuery{{src, q, db, "source"}, {dst, q, db, "destination"}}
}

// slotPIDs is the walsender that holds a replication slot.
func slotPIDs(pg *testenv.Postgres, slot string) pidQuery {
	return pidQuery{pg, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot, "source"}
}

// sessionPIDs is the backend of one of the benchmark's own sessions
// (the binary COPY pipe's two ends).
func sessionPIDs(pg *testenv.Postgres, conn *pgx.Conn) pidQuery {
	return pidQuery{pg, `SELECT $1::int`, strconv.Itoa(int(conn.PgConn().PID())), ""}
}

// nativePIDs are a native subscription's walsender at the source and
// its workers (apply, table sync) at the destination.
func nativePIDs(n *native) []pidQuery {
	return []pidQuery{
		slotPIDs(n.src, n.name),
		{n.dst, `SELECT pid FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL`, n.name, "destination"},
	}
}

// nativeCopyPIDs is nativePIDs for a subscription that copies its tables
// (copy_data = true): each table sync worker has a walsender of its own
// at the source, on a temporary slot, which runs the table's COPY; they
// are found as every walsender in the source database (only native's
// during its runs). A table sync of a 20-row table may live less than
// the 100 ms between samples, so short ones are undercounted.
func nativeCopyPIDs(n *native) []pidQuery {
	return append(nativePIDs(n), pidQuery{n.src, `SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' AND datname = $1`, n.srcDB, "source"})
}

// procCPU is one process's CPU seconds when first and last seen, and the
// side it runs on (pidQuery.side).
type procCPU struct {
	base, last float64
	side       string
}

// pipelineMeter samples the pids of its queries every 100 ms (so a
// walsender or worker started during the run is found: native's catch-up
// starts both after the clock starts) and each process's utime + stime.
// A process started after the meter counts from zero; one that exits
// during the run counts up to its last sample (at most 100 ms lost).
type pipelineMeter struct {
	queries   []pidQuery
	conns     []*pgx.Conn
	startTick int64 // the meter's start in clock ticks since boot
	procs     map[int]*procCPU
	err       error
	stop      chan struct{}
	done      chan struct{}
}

// startPipelineMeter opens a session per query (in database postgres:
// the views it reads are cluster-wide) and takes the first sample.
func startPipelineMeter(ctx context.Context, queries []pidQuery) (*pipelineMeter, error) {
	m := &pipelineMeter{queries: queries, procs: map[int]*procCPU{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, q := range queries {
		c, err := connect(ctx, q.pg.DSN("postgres"))
		if err != nil {
			m.close()
			return nil, err
		}
		m.conns = append(m.conns, c)
	}
	tick, err := uptimeTicks()
	if err != nil {
		m.close()
		return nil, err
	}
	m.startTick = tick
	m.sampleOnce(ctx)
	go m.loop()
	return m, nil
}

func (m *pipelineMeter) loop() {
	defer close(m.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			m.sampleOnce(context.Background())
			return
		case <-t.C:
			m.sampleOnce(context.Background())
		}
	}
}

// sampleOnce finds the pipeline's pids and reads their CPU time; the
// first error is kept for Stop.
func (m *pipelineMeter) sampleOnce(ctx context.Context) {
	for i, q := range m.queries {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rows, err := m.conns[i].Query(qctx, q.sql, q.arg)
		var pids []int
		if err == nil {
			for rows.Next() {
				var pid int
				if err = rows.Scan(&pid); err != nil {
					break
				}
				pids = append(pids, pid)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		cancel()
		if err != nil && m.err == nil {
			m.err = fmt.Errorf("pipeline meter: %s: %w", firstLine(q.sql), err)
		}
		for _, pid := range pids {
			if _, ok := m.procs[pid]; !ok {
				m.procs[pid] = &procCPU{side: q.side}
				if started, err := procStartTick(pid); err == nil && started < m.startTick {
					m.procs[pid].base = -1 // set from the first reading below
				}
			}
		}
	}
	for pid, p := range m.procs {
		cpu, err := cpuSeconds(pid)
		if err != nil {
			continue // exited: keep its last reading
		}
		if p.base < 0 {
			p.base = cpu
		}
		p.last = cpu
	}
}

// Stop ends the measurement and returns the processes' CPU seconds, in
// all and per side, and how many processes were counted.
func (m *pipelineMeter) Stop() (float64, map[string]float64, int, error) {
	close(m.stop)
	<-m.done
	m.close()
	var sum float64
	sides := map[string]float64{}
	for _, p := range m.procs {
		if p.base >= 0 {
			sum += p.last - p.base
			if p.side != "" {
				sides[p.side] += p.last - p.base
			}
		}
	}
	return sum, sides, len(m.procs), m.err
}

func (m *pipelineMeter) close() {
	for _, c := range m.conns {
		c.Close(context.Background())
	}
}

// uptimeTicks is the time since boot in clock ticks, the unit of a
// process's start time in /proc/<pid>/stat.
func uptimeTicks() (int64, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/uptime: empty")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/uptime: %w", err)
	}
	return int64(s * userHZ), nil
}

// procStartTick is a process's start time (field 22 of
// /proc/<pid>/stat) in clock ticks since boot.
func procStartTick(pid int) (int64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseInt(f[19], 10, 64)
}

// runMeter measures one run of a pipeline: the Sluice processes (none
// for native) and the pipeline's PostgreSQL processes.
type runMeter struct {
	procs []*meter
	pipe  *pipelineMeter
}

// startRunMeter starts measuring the Sluice processes pids (none for
// native: the pipeline is PostgreSQL's processes alone).
func startRunMeter(ctx context.Context, pids []int, queries []pidQuery) (*runMeter, error) {
	r := &runMeter{}
	for _, pid := range pids {
		m, err := startMeter(pid)
		if err != nil {
			r.stopProcs()
			return nil, err
		}
		r.procs = append(r.procs, m)
	}
	var err error
	if r.pipe, err = startPipelineMeter(ctx, queries); err != nil {
		r.stopProcs()
		return nil, err
	}
	return r, nil
}

// stopProcs stops the process meters: the sum of their CPU, and the
// largest single process's peak RSS (several processes' peaks need not
// coincide, so their sum is only an upper bound of the whole's, kept
// apart in PeakRSSSumBytes).
func (r *runMeter) stopProcs() usage {
	var u usage
	for _, m := range r.procs {
		p := m.Stop()
		u.Process = true
		u.CPUSeconds += p.CPUSeconds
		u.ProcessCPU = append(u.ProcessCPU, p.CPUSeconds)
		u.PeakRSSBytes = max(u.PeakRSSBytes, p.PeakRSSBytes)
		if len(r.procs) > 1 {
			u.PeakRSSSumBytes += p.PeakRSSBytes
		}
	}
	return u
}

// Stop ends the measurement. A failure of the pipeline meter leaves the
// pipeline figure out (with a warning), it does not fail the run.
func (r *runMeter) Stop() usage {
	u := r.stopProcs()
	cpu, sides, n, err := r.pipe.Stop()
	if err != nil {
		logf("warning: %v (pipeline CPU not reported)", err)
		return u
	}
	total := u.CPUSeconds + cpu
	u.PipelineCPU = &total
	u.PipelineProcs = n
	u.SideCPU = sides
	return u
}
