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
	"github.com/sluicedb/sluice/proto"
)

// The destination restarts, the source cuts Sluice's sessions, Sluice is
// stopped with SIGTERM and started again on its data directory: the task
// retries through each, resumes, and the copy ends equal.
func TestOutagesAndRestartResume(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN("postgres"))
	testenv.MustExec(t, srcConn, workload.Schema)
	if err := workload.Seed(ctx, srcConn, 60000); err != nil {
		t.Fatal(err)
	}
	// Small chunks and one reader: a full sync long enough to break.
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "8", "--snapshot-readers", "1")
	c := &coordinator.Client{BaseURL: proc.URL}
	createTask(t, c, taskYAML("outages", p, "retry: { connection: 10m, other: 10m }\n"))

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
		if _, err := workload.Run(ctx, p.src.DSN("postgres"), workload.Options{Transactions: 300, Seed: seed, Truncate: true}); err != nil {
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
	st, err := c.GetTask(ctx, "outages")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != proto.PhaseIncremental || st.State != proto.StateRunning {
		t.Fatalf("after restart: phase %s state %s", st.Phase, st.State)
	}
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// waitRetrying waits until the task retries a connection failure, with
// the end of its retry window shown.
func waitRetrying(t *testing.T, c *coordinator.Client, name string) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		st, err := c.GetTask(context.Background(), name)
		if err != nil {
			return err
		}
		if st.State != proto.StateRetrying || st.LastError == nil || st.LastError.Kind != proto.ErrorConnection || st.LastError.RetryUntil.IsZero() {
			return fmt.Errorf("state %s, last error %+v", st.State, st.LastError)
		}
		return nil
	})
}
