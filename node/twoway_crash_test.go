package node_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// TestTwoWayCrashConsistencyUnderSIGKILL runs a two-way task per policy
// while both sides write at once and Sluice is killed with SIGKILL again
// and again, and each database is restarted once: each side writes its
// own keys (inserts, updates, deletes); under last_writer_wins both sides
// also update the same rows and one side deletes rows the other updates.
// Then, with Sluice down, the crossing of TestTwoWaySyncPolicies is made
// on both sides, and Sluice is killed once more while it applies it.
// After: own keys are equal on both sides under every policy; the
// crossing's rows are as the policy says, row by row, and its conflicts
// are logged exactly once (a replay after a kill must neither log them
// twice nor see its own writes as conflicts); under last_writer_wins the
// two sides are equal by content and no row is rewritten once writes stop.
func TestTwoWayCrashConsistencyUnderSIGKILL(t *testing.T) {
	p := twoWayPair(t)
	ctx := context.Background()
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	c := proc.Client()

	// The writers go on until the kills are done (at most txs each).
	kills, txs := 4, 20000
	if os.Getenv("SLUICE_SOAK") != "" {
		kills, txs = 20, 200000
	}
	type run struct {
		policy, name, db string
		a, b             *pgx.Conn
	}
	var runs []run
	for _, policy := range []string{proto.ConflictIgnore, proto.ConflictOverwrite, proto.ConflictLastWriterWins, proto.ConflictTaskFailed} {
		name := "twc-" + strings.ReplaceAll(policy, "_", "-")
		db := strings.ReplaceAll(name, "-", "_")
		a, b := twoWayDB(t, p, db)
		testenv.MustExec(t, a, `CREATE TABLE t (id int PRIMARY KEY, v text, u int UNIQUE);
			INSERT INTO t SELECT i, 'r' || i, i FROM generate_series(1, 150) i; `+crossingSeed)
		createTask(t, c, twoWayYAML(name, p, db, policy))
		runs = append(runs, run{policy: policy, name: name, db: db, a: a, b: b})
	}
	for _, r := range runs {
		waitTwoWay(t, c, r.name)
	}

	// Both sides write at once, each from its own connections, through
	// kills of Sluice and restarts of the databases.
	var committed atomic.Int64
	writeCtx, stopWriters := context.WithTimeout(ctx, 20*time.Minute)
	defer stopWriters()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(runs))
	for i, r := range runs {
		shared := r.policy == proto.ConflictLastWriterWins
		for side, pg := range []*testenv.Postgres{p.src, p.dst} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- twoWayWriter(writeCtx, pg.DSN(r.db), side, shared, txs, int64(i*10+side), &committed)
			}()
		}
	}
	rng := rand.New(rand.NewSource(17))
	for i := range kills {
		time.Sleep(time.Duration(500+rng.Intn(2500)) * time.Millisecond)
		proc.Kill()
		switch i {
		case 1:
			if err := p.src.Restart(); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := p.dst.Restart(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
		proc.Start(t)
		t.Logf("kill %d done, %d transactions committed", i+1, committed.Load())
	}
	time.Sleep(time.Second) // the writers write on after the last restart too
	stopWriters()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	}

	// Every side's own writes are across before the crossing (under
	// task_failed, the crossing's batch is written by no one).
	own := `(SELECT * FROM t WHERE id >= 1000)`
	for _, r := range runs {
		a, b := testenv.Conn(t, p.src.DSN(r.db)), testenv.Conn(t, p.dst.DSN(r.db))
		testenv.CheckFor(t, 3*time.Minute, 250*time.Millisecond, func() error {
			return testenv.CompareTable(ctx, a, b, own, own)
		})
	}

	// The crossing, with Sluice down; then a kill while it applies.
	proc.Kill()
	for _, r := range runs {
		testenv.MustExec(t, testenv.Conn(t, p.src.DSN(r.db)), crossingA)
	}
	time.Sleep(20 * time.Millisecond)
	for _, r := range runs {
		testenv.MustExec(t, testenv.Conn(t, p.dst.DSN(r.db)), crossingB)
	}
	proc.Start(t)
	time.Sleep(time.Duration(rng.Intn(1500)) * time.Millisecond)
	proc.Kill()
	proc.Start(t)
	c = proc.Client()

	for _, r := range runs {
		t.Run(r.policy, func(t *testing.T) {
			a, b := testenv.Conn(t, p.src.DSN(r.db)), testenv.Conn(t, p.dst.DSN(r.db))
			if r.policy == proto.ConflictTaskFailed {
				checkTaskFailed(t, c, r.name, a, b)
				return
			}
			all := own
			if r.policy == proto.ConflictLastWriterWins {
				all = "public.t"
			}
			if err := waitTables(ctx, a, b, all, 3*time.Minute); err != nil {
				t.Fatalf("%v\n%s", err, rowDiff(ctx, a, b))
			}
			out := crossingOutcomes[r.policy]
			waitCrossing(t, a, out.wantA)
			waitCrossing(t, b, out.wantB)
			if r.policy == proto.ConflictLastWriterWins {
				// The concurrent writes to the same rows make conflicts of
				// their own: compare the crossing's, and check the others
				// are of the kinds those writes make.
				checkCrossingLog(t, a, r.name, out.logA, "reverse update_stale kept_local", "reverse update_missing skipped", "reverse delete_stale deleted")
				checkCrossingLog(t, b, r.name, out.logB, "forward update_stale kept_local", "forward update_missing skipped", "forward delete_stale deleted")
				assertNotRewritten(t, r.name, a, b)
			} else {
				waitConflicts(t, a, r.name, out.logA)
				waitConflicts(t, b, r.name, out.logB)
			}
			// A unit killed while it retried shows the task retrying until
			// it has run well a while (pipeline.HealthyAfter): then running,
			// with no current error.
			if st := waitState(t, c, r.name, proto.StateRunning, time.Minute); st.LastError != nil {
				t.Fatalf("task %s runs with a current error: %+v", r.name, *st.LastError)
			}
		})
	}
}

// twoWayWriter writes one side of a two-way task: inserts, updates and
// deletes of its own keys (side 0 from 1000, side 1 from 100000); with
// shared, also updates of rows 1-100 on both sides and, on side 0,
// deletes of rows 101-150 that side 1 updates. It rides out database
// restarts, and stops after txs transactions or when ctx ends.
func twoWayWriter(ctx context.Context, dsn string, side int, shared bool, txs int, seed int64, committed *atomic.Int64) error {
	rng := rand.New(rand.NewSource(seed))
	base := 1000 + side*99000
	var own []int
	next := base
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	failures := 0
	for n := 0; n < txs && ctx.Err() == nil; {
		if conn == nil {
			var err error
			if conn, err = pgx.Connect(context.Background(), dsn); err != nil {
				if failures++; failures > 200 {
					return err
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		var sql string
		var args []any
		var add, drop int = -1, -1
		switch k := rng.Intn(10); {
		case k < 3 || len(own) == 0:
			sql, args, add = `INSERT INTO t VALUES ($1, $2, NULL)`, []any{next, fmt.Sprintf("s%d-%d", side, n)}, next
		case k < 5:
			sql, args = `UPDATE t SET v = $2 WHERE id = $1`, []any{own[rng.Intn(len(own))], fmt.Sprintf("s%d-%d", side, n)}
		case k < 6:
			i := rng.Intn(len(own))
			sql, args, drop = `DELETE FROM t WHERE id = $1`, []any{own[i]}, i
		case shared && k < 8:
			sql, args = `UPDATE t SET v = $2 WHERE id = $1`, []any{1 + rng.Intn(100), fmt.Sprintf("s%d-%d", side, n)}
		case shared && side == 0:
			sql, args = `DELETE FROM t WHERE id = $1`, []any{101 + rng.Intn(50)}
		case shared:
			sql, args = `UPDATE t SET v = $2 WHERE id = $1`, []any{101 + rng.Intn(50), fmt.Sprintf("s%d-%d", side, n)}
		default:
			sql, args = `UPDATE t SET v = $2 WHERE id = $1`, []any{own[rng.Intn(len(own))], fmt.Sprintf("s%d-%d", side, n)}
		}
		if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
			// A restart: the statement may or may not have committed, so
			// the key lists are read again.
			conn.Close(context.Background())
			conn = nil
			if failures++; failures > 200 {
				return err
			}
			time.Sleep(100 * time.Millisecond)
			if c, err := pgx.Connect(context.Background(), dsn); err == nil {
				rows, err := c.Query(context.Background(), `SELECT id FROM t WHERE id >= $1 AND id < $2`, base, base+99000)
				if err == nil {
					own, err = pgx.CollectRows(rows, pgx.RowTo[int])
				}
				if err != nil {
					c.Close(context.Background())
					continue
				}
				next = slices.Max(append(slices.Clone(own), next-1)) + 1
				conn = c
			}
			continue
		}
		if add >= 0 {
			own = append(own, add)
			next++
		}
		if drop >= 0 {
			own = slices.Delete(own, drop, drop+1)
		}
		n++
		committed.Add(1)
		time.Sleep(time.Duration(rng.Intn(20)) * time.Millisecond)
	}
	return nil
}

// waitCrossing waits until a side holds exactly want of the crossing's
// rows.
func waitCrossing(t *testing.T, conn *pgx.Conn, want map[int]string) {
	t.Helper()
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		rows, err := rowsOf(context.Background(), conn)
		if err != nil {
			return err
		}
		got := map[int]string{}
		for _, id := range crossingIDs {
			if v, ok := rows[id]; ok {
				got[id] = v
			}
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("crossing rows:\n got  %v\n want %v", sortedRows(got), sortedRows(want))
		}
		return nil
	})
}

// checkCrossingLog waits until a side's log holds exactly want for the
// crossing's rows, and only conflicts of the kinds allowed for the others.
func checkCrossingLog(t *testing.T, conn *pgx.Conn, task string, want []string, allowed ...string) {
	t.Helper()
	slices.Sort(want)
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		all, err := conflictRows(context.Background(), conn, task)
		if err != nil {
			return err
		}
		var got []string
		for _, line := range all {
			i := strings.LastIndexByte(line, ' ')
			var id int
			fmt.Sscan(line[i+1:], &id)
			if slices.Contains(crossingIDs, id) {
				got = append(got, line)
			} else if !slices.Contains(allowed, line[:i]) || id > 150 {
				t.Fatalf("unexpected conflict %q", line)
			}
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("crossing conflicts:\n got  %q\n want %q", got, want)
		}
		return nil
	})
}

// waitTables polls until table (or a parenthesised query) has the same
// contents on both sides, or timeout passes.
func waitTables(ctx context.Context, a, b *pgx.Conn, table string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := testenv.CompareTable(ctx, a, b, table, table)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rowDiff lists the rows of t that differ between the sides, with each
// side's commit time and origin of the row, for the failure's message.
func rowDiff(ctx context.Context, a, b *pgx.Conn) string {
	read := func(conn *pgx.Conn) map[int]string {
		rows, err := conn.Query(ctx, `SELECT id, coalesce(v, 'NULL') || '|' || coalesce(u::text, 'NULL') || ' @' ||
			coalesce((pg_xact_commit_timestamp_origin(xmin)).timestamp::text, '?') || ' o' || coalesce((pg_xact_commit_timestamp_origin(xmin)).roident::text, '?') FROM t`)
		if err != nil {
			return map[int]string{0: err.Error()}
		}
		defer rows.Close()
		out := map[int]string{}
		for rows.Next() {
			var id int
			var v string
			if rows.Scan(&id, &v) == nil {
				out[id] = v
			}
		}
		return out
	}
	ra, rb := read(a), read(b)
	value := func(s string) string { v, _, _ := strings.Cut(s, " @"); return v }
	var lines []string
	for _, id := range slices.Sorted(maps.Keys(ra)) {
		if value(ra[id]) != value(rb[id]) {
			lines = append(lines, fmt.Sprintf("%d: A %s | B %s", id, ra[id], rb[id]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rb)) {
		if _, ok := ra[id]; !ok {
			lines = append(lines, fmt.Sprintf("%d: A - | B %s", id, rb[id]))
		}
	}
	if len(lines) > 40 {
		lines = append(lines[:40], fmt.Sprintf("... %d more", len(lines)-40))
	}
	return strings.Join(lines, "\n")
}
