package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/workload"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// The destination restarts, the source cuts Sluice's sessions, Sluice is
// stopped with SIGTERM and started again on its data directory: the task
// retries through each, resumes, and the copy ends equal.
func TestOutagesAndRestartResume(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, workload.Schema)
	if err := workload.Seed(ctx, srcConn, 60000); err != nil {
		t.Fatal(err)
	}
	// Small chunks and one reader: a full sync long enough to break.
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "8", "--snapshot-readers", "1")
	c := proc.Client()
	createTask(t, c, taskYAML("outages", p, "retry: { connection: 10m, other: 9m }\n"))

	// 0. The destination goes away in the middle of the full sync.
	testenv.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "outages")
		if err != nil {
			return err
		}
		if st.Phase != proto.PhaseFull || st.Full.RowsDone == 0 {
			return fmt.Errorf("phase %s, %d rows copied", st.Phase, st.Full.RowsDone)
		}
		return nil
	})
	if err := p.dst.Stop(); err != nil {
		t.Fatal(err)
	}
	waitRetrying(t, c, "outages")
	if err := p.dst.Start(); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "outages", proto.PhaseIncremental, 2*time.Minute)
	waitEqual(t, p, workload.Tables, time.Minute)

	load := func(seed int64) {
		t.Helper()
		if _, err := workload.Run(ctx, p.src.DSN(testenv.DefaultDB), workload.Options{Transactions: 300, Seed: seed, Truncate: true}); err != nil {
			t.Fatalf("workload: %v", err)
		}
	}

	// 1. The destination goes away and comes back.
	if err := p.dst.Stop(); err != nil {
		t.Fatal(err)
	}
	load(1)
	waitRetrying(t, c, "outages")
	if err := p.dst.Start(); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, workload.Tables, 2*time.Minute)

	// 2. The source ends every Sluice session (a failover, a DBA).
	load(2)
	testenv.MustExec(t, srcConn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'sluice%'`)
	load(3)
	waitEqual(t, p, workload.Tables, 2*time.Minute)

	// 3. A graceful stop while changes keep coming, and a start on the
	// same data directory.
	proc.Terminate(t)
	load(4)
	proc.Start(t)
	waitEqual(t, p, workload.Tables, 2*time.Minute)
	// Stopped while it still retried the source's cut: running again
	// once its units have run well a while (pipeline.HealthyAfter).
	st := waitState(t, c, "outages", proto.StateRunning, time.Minute)
	if st.Phase != proto.PhaseIncremental || st.LastError != nil {
		t.Fatalf("after restart: phase %s state %s, current error %+v", st.Phase, st.State, st.LastError)
	}
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// waitRetrying waits until the task retries a connection failure, with
// the end of its retry window shown.
func waitRetrying(t *testing.T, c *coordinator.Client, name string) *proto.TaskStatus {
	t.Helper()
	var st *proto.TaskStatus
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		var err error
		if st, err = c.GetTask(context.Background(), name); err != nil {
			return err
		}
		if st.State != proto.StateRetrying || st.LastError == nil || st.LastError.Kind != proto.ErrorConnection || st.LastError.RetryUntil.IsZero() {
			return fmt.Errorf("state %s, last error %+v", st.State, st.LastError)
		}
		return nil
	})
	return st
}

// The source goes away for less than the connection retry window: the
// task shows retrying with the window's end, then recovers by itself.
// Then for longer: the task fails with the cause, and resumes once asked.
// Windows are in minutes; the node here makes a minute last a second.
func TestRetryWindowSourceOutage(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'v' FROM generate_series(1, 100) g`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{RetryMinute: time.Second, MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}})
	c := n.Client()
	createTask(t, c, taskYAML("window", p, "retry: { connection: 10m, other: 5m }\n"))
	waitPhase(t, c, "window", proto.PhaseIncremental, time.Minute)
	waitEqual(t, p, []string{"public.w"}, time.Minute)

	// Shorter than the window (10 s here).
	if err := p.src.Stop(); err != nil {
		t.Fatal(err)
	}
	st := waitRetrying(t, c, "window")
	if left := time.Until(st.LastError.RetryUntil); left <= 0 || left > 10*time.Second {
		t.Fatalf("retrying until %v, %v from now; want within the 10 s window", st.LastError.RetryUntil, left)
	}
	time.Sleep(2 * time.Second)
	if err := p.src.Start(); err != nil {
		t.Fatal(err)
	}
	srcConn = testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `INSERT INTO w VALUES (101, 'after a short outage')`)
	waitEqual(t, p, []string{"public.w"}, time.Minute)
	waitState(t, c, "window", proto.StateRunning, 30*time.Second)
	// Running well for a while (a "minute") closes the window; the next
	// outage opens a new one.
	time.Sleep(3 * time.Second)

	// Longer than the window: failed, with the cause; resumed by hand.
	stopped := time.Now()
	if err := p.src.Stop(); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, c, "window", proto.StateFailed, time.Minute)
	// A lower bound only: the window must hold; a slow machine fails later.
	if took := time.Since(stopped); took < 9*time.Second {
		t.Fatalf("failed %.1fs after the source stopped, inside the 10 s window", took.Seconds())
	}
	if st.LastError == nil || st.LastError.Kind != proto.ErrorConnection {
		t.Fatalf("failed without a connection error: %+v", st.LastError)
	}
	t.Logf("failed with: %s", st.LastError.Message)
	if err := p.src.Start(); err != nil {
		t.Fatal(err)
	}
	srcConn = testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `UPDATE w SET v = 'after a long outage' WHERE id <= 10`)
	if _, err := c.ResumeTask(ctx, "window"); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, []string{"public.w"}, time.Minute)
}

// waitState waits until the task shows state.
func waitState(t *testing.T, c *coordinator.Client, name string, state proto.State, timeout time.Duration) *proto.TaskStatus {
	t.Helper()
	var st *proto.TaskStatus
	testenv.CheckFor(t, timeout, 100*time.Millisecond, func() error {
		var err error
		if st, err = c.GetTask(context.Background(), name); err != nil {
			return err
		}
		if st.State != state {
			return fmt.Errorf("state %s, want %s (last error %+v)", st.State, state, st.LastError)
		}
		return nil
	})
	return st
}
