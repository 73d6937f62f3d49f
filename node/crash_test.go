package node_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/workload"
	"github.com/sluicedb/sluice/proto"
)

// Sluice killed with SIGKILL again and again, during full sync and during
// incremental sync, while a workload writes a keyed table and a keyless
// one: after the last restart the destination equals the source, no row
// missing and none doubled (the fingerprints count duplicates).
func TestCrashConsistencyUnderSIGKILL(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, workload.Schema)
	if err := workload.Seed(ctx, srcConn, 60000); err != nil {
		t.Fatal(err)
	}
	// Tiny chunks make the full sync long enough to be killed in.
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "4", "--snapshot-readers", "2")
	c := proc.Client()
	createTask(t, c, taskYAML("crashy", p, ""))

	// `make e2e` soaks: many more kills over a longer workload.
	kills, txs, duration := 6, 2500, 3*time.Minute
	if os.Getenv("SLUICE_SOAK") != "" {
		kills, txs, duration = 40, 30000, 20*time.Minute
	}
	var committed atomic.Int64
	load := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, p.src.DSN(testenv.DefaultDB), workload.Options{
			Transactions: txs, Duration: duration, Seed: 7,
			// No truncates: they would wipe out a doubled row before the
			// comparison could see it.
			Truncate: false,
			Progress: func(n int) { committed.Store(int64(n)); time.Sleep(2 * time.Millisecond) },
		})
		load <- err
	}()

	// The first kill lands in the middle of the full sync: the copy must
	// restart from a fresh snapshot for the tables not finished, with their
	// changes skipped up to it.
	waitCopying(t, c, "crashy")
	killRepeatedly(t, proc, kills, rand.New(rand.NewSource(1)), &committed)
	if err := <-load; err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitPhase(t, c, "crashy", proto.PhaseIncremental, 2*time.Minute)
	waitEqual(t, p, workload.Tables, 3*time.Minute)
	// And once more after the equality: a kill right now loses nothing.
	testenv.MustExec(t, srcConn, `INSERT INTO events (account_id, kind) VALUES (1, 'after'), (1, 'after')`)
	proc.Kill()
	proc.Start(t)
	waitEqual(t, p, workload.Tables, time.Minute)
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// waitCopying waits until the task's full sync has copied some rows.
func waitCopying(t *testing.T, c *coordinator.Client, name string) {
	t.Helper()
	testenv.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
		st, err := c.GetTask(context.Background(), name)
		if err != nil {
			return err
		}
		if st.Phase != proto.PhaseFull || st.Full.RowsDone == 0 {
			return fmt.Errorf("phase %s, %d rows copied", st.Phase, st.Full.RowsDone)
		}
		return nil
	})
}

// killRepeatedly kills proc with SIGKILL kills times, the first at once
// and the others a random 0.3 to 2.3 s apart, starting it again after
// each; committed counts the load's transactions, for the log.
func killRepeatedly(t *testing.T, proc *sluicetest.Process, kills int, rng *rand.Rand, committed *atomic.Int64) {
	t.Helper()
	for i := range kills {
		if i > 0 {
			time.Sleep(time.Duration(300+rng.Intn(2000)) * time.Millisecond)
		}
		proc.Kill()
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
		proc.Start(t)
		t.Logf("kill %d done, %d transactions committed", i+1, committed.Load())
	}
}
