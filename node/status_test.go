package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Status users can trust, through the real process (`sluice up`, its API
// and its CLI): full-sync progress never passes 100% though the source's
// statistics are stale; the tables count follows DDL sync; an outage shows
// as the current error with its retry window, and after recovery the task
// runs with no current error (the old one as history only); rows applied
// never go down across pause/resume and a restart, and equal the changes
// written at the source.
func TestStatusAcrossRecoveryPauseRestart(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	// big's statistics say 1,000 rows; it holds 60,000 when the copy
	// starts (autovacuum would analyse it again).
	testenv.MustExec(t, src, `CREATE TABLE big (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
		INSERT INTO big SELECT g, 'p' FROM generate_series(1, 1000) g;
		ANALYZE big;
		INSERT INTO big SELECT g, 'p' FROM generate_series(1001, 60000) g;
		CREATE TABLE ev (id int PRIMARY KEY, v text)`)
	const bigRows = 60000
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "8", "--snapshot-readers", "1")
	c := proc.Client()
	createTask(t, c, append(taskYAML("status", p, ""), "sync: { ddl: true }\n"...))
	tables := []string{"public.big", "public.ev"}

	// 1. Full sync: never more than 100%, the estimate corrected.
	var samples, corrected int
	testenv.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "status")
		if err != nil {
			return err
		}
		f := st.Full
		if f.RowsDone > f.RowsEstimated && f.RowsEstimated > 0 {
			t.Fatalf("full-sync progress past 100%%: %d/%d rows", f.RowsDone, f.RowsEstimated)
		}
		if st.Phase == proto.PhaseFull && f.RowsDone > 0 {
			samples++
			if f.RowsEstimated > 1000+1 {
				corrected++
			}
		}
		if st.Phase != proto.PhaseIncremental {
			return fmt.Errorf("phase %s, %d/%d rows", st.Phase, f.RowsDone, f.RowsEstimated)
		}
		return nil
	})
	t.Logf("%d samples of the full sync, %d with the estimate corrected past the stale statistics", samples, corrected)
	if samples > 0 && corrected == 0 {
		t.Fatalf("the estimate stayed at the stale statistics through %d samples", samples)
	}
	waitEqual(t, p, tables, time.Minute)
	st := getStatus(t, c, "status")
	if st.Full.RowsDone != bigRows || st.Full.RowsEstimated != bigRows || st.Full.TablesDone != 2 || st.Full.TablesTotal != 2 {
		t.Fatalf("after the full sync: %+v, want %d/%d rows, 2/2 tables", st.Full, bigRows, bigRows)
	}

	// 2. DDL sync adds a table: it counts.
	testenv.MustExec(t, src, `CREATE TABLE added (id int PRIMARY KEY)`)
	tables = append(tables, "public.added")
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		st := getStatus(t, c, "status")
		if st.Full.TablesDone != 3 || st.Full.TablesTotal != 3 {
			return fmt.Errorf("tables %d/%d, want 3/3", st.Full.TablesDone, st.Full.TablesTotal)
		}
		return nil
	})

	// 3. Rows applied count the changes written at the source, one
	// transaction per row (nothing coalesces).
	written := 0
	insert := func(n int) {
		t.Helper()
		for range n {
			written++
			testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO ev VALUES (%d, 'v')`, written))
		}
	}
	insert(100)
	testenv.MustExec(t, src, `INSERT INTO added VALUES (1)`)
	written++
	waitEqual(t, p, tables, time.Minute)
	applied := waitRowsApplied(t, c, written, 0)

	// 4. The destination goes away: the current error shows, with its
	// window, in task get and task list.
	if err := p.dst.Stop(); err != nil {
		t.Fatal(err)
	}
	insert(50)
	st = waitRetrying(t, c, "status")
	get := cli(t, proc, "task", "get", "status")
	if !strings.Contains(get, "retry until:") || !regexp.MustCompile(`last error:\s+connection: `).MatchString(get) {
		t.Fatalf("task get during the outage shows no current error:\n%s", get)
	}
	if list := cli(t, proc, "task", "list"); !strings.Contains(list, "connection:") {
		t.Fatalf("task list during the outage shows no error:\n%s", list)
	}
	if err := p.dst.Start(); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, tables, 2*time.Minute)
	// Recovered: running, no current error nor window; the outage's error
	// as history.
	testenv.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		st = getStatus(t, c, "status")
		if st.State != proto.StateRunning || st.LastError != nil || st.ResolvedError == nil || st.ResolvedAt == nil {
			return fmt.Errorf("state %s, current error %+v, resolved %+v", st.State, st.LastError, st.ResolvedError)
		}
		return nil
	})
	if !st.ResolvedError.RetryUntil.IsZero() || st.ResolvedError.Kind != proto.ErrorConnection {
		t.Fatalf("resolved error %+v: want the connection error without its window", st.ResolvedError)
	}
	get = cli(t, proc, "task", "get", "status")
	for _, want := range []string{`state:\s+running\n`, `last error:\s+-\n`, `resolved error:\s+connection: `} {
		if !regexp.MustCompile(want).MatchString(get) {
			t.Fatalf("task get after recovery lacks %q:\n%s", want, get)
		}
	}
	if strings.Contains(get, "retry until") {
		t.Fatalf("task get after recovery shows a retry window:\n%s", get)
	}
	if list := cli(t, proc, "task", "list"); !listErrorEmpty(list, "status") {
		t.Fatalf("task list shows an error for the recovered task:\n%s", list)
	}
	applied = waitRowsApplied(t, c, written, applied)

	// 5. Pause and resume: the total stays, and goes on.
	if _, err := c.PauseTask(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "status", proto.StatePaused, time.Minute)
	if st := getStatus(t, c, "status"); st.RowsApplied < applied {
		t.Fatalf("rows applied went down on pause: %d, were %d", st.RowsApplied, applied)
	}
	insert(20)
	if _, err := c.ResumeTask(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, tables, 2*time.Minute)
	applied = waitRowsApplied(t, c, written, applied)

	// 6. A restart of the process on its data directory.
	proc.Terminate(t)
	insert(30)
	proc.Start(t)
	c = proc.Client()
	if st := getStatus(t, c, "status"); st.RowsApplied < applied {
		t.Fatalf("rows applied went down on restart: %d, were %d", st.RowsApplied, applied)
	}
	waitEqual(t, p, tables, 2*time.Minute)
	waitRowsApplied(t, c, written, applied)
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// A column added at the source without DDL sync stops the apply with an
// error that says what to do; once the column is added at the
// destination the task goes on by itself and the copy ends equal.
func TestMissingColumnHintAndRecovery(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 50) g`)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	c := proc.Client()
	createTask(t, c, append(taskYAML("cols", p, ""), "sync: { ddl: false }\n"...))
	waitPhase(t, c, "cols", proto.PhaseIncremental, 2*time.Minute)
	waitEqual(t, p, []string{"public.items"}, time.Minute)

	testenv.MustExec(t, src, `ALTER TABLE items ADD COLUMN note varchar(20); INSERT INTO items VALUES (51, 'new', 'with a note')`)
	var st *proto.TaskStatus
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		st = getStatus(t, c, "cols")
		if st.LastError == nil || !strings.Contains(st.LastError.Message, "column note of table public.items does not exist at the destination") {
			return fmt.Errorf("state %s, last error %+v", st.State, st.LastError)
		}
		return nil
	})
	if st.State != proto.StateRetrying || st.LastError.RetryUntil.IsZero() {
		t.Fatalf("the missing column is not retried in a window: state %s, error %+v", st.State, st.LastError)
	}
	get := cli(t, proc, "task", "get", "cols")
	for _, want := range []string{`ALTER TABLE "public"."items" ADD COLUMN "note" varchar(20)`, "enable sync.ddl"} {
		if !strings.Contains(get, want) {
			t.Fatalf("task get lacks %q:\n%s", want, get)
		}
	}
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, dst, `ALTER TABLE items ADD COLUMN note varchar(20)`)
	waitEqual(t, p, []string{"public.items"}, 2*time.Minute)
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		st = getStatus(t, c, "cols")
		if st.State != proto.StateRunning || st.LastError != nil {
			return fmt.Errorf("state %s, current error %+v", st.State, st.LastError)
		}
		return nil
	})
	var note string
	if err := dst.QueryRow(ctx, `SELECT note FROM items WHERE id = 51`).Scan(&note); err != nil || note != "with a note" {
		t.Fatalf("row 51 at the destination: %q, %v", note, err)
	}
}

func getStatus(t *testing.T, c *coordinator.Client, name string) *proto.TaskStatus {
	t.Helper()
	st, err := c.GetTask(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitRowsApplied waits until the task's rows applied reach want, failing
// if they ever go below floor or past want; it returns them.
func waitRowsApplied(t *testing.T, c *coordinator.Client, want int, floor int64) int64 {
	t.Helper()
	var got int64
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		got = getStatus(t, c, "status").RowsApplied
		if got < floor {
			t.Fatalf("rows applied went down: %d, were %d", got, floor)
		}
		if got > int64(want) {
			t.Fatalf("rows applied %d, more than the %d changes written", got, want)
		}
		if got != int64(want) {
			return fmt.Errorf("rows applied %d, want %d", got, want)
		}
		return nil
	})
	return got
}

// cli runs the sluice CLI against the process, as its user would.
func cli(t *testing.T, proc *sluicetest.Process, args ...string) string {
	t.Helper()
	out, err := runCLIBinary(t, proc.ConfigHome, append(args, "--server", proc.URL)...)
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// listErrorEmpty reports whether task list shows "-" in the ERROR column
// of the named task.
func listErrorEmpty(list, name string) bool {
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return f[len(f)-1] == "-"
		}
	}
	return false
}
