package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Panics injected in the apply of a batch (twice) and in the capture's
// handling of a WAL message (once) fail their units, which are retried
// under the other-failures window: the process lives on (same PID, and
// /metrics counts the panics, which only this process could have seen),
// the task shows the panic while it retries, and the destination ends
// equal to the source.
func TestPanicInUnitsRecovered(t *testing.T) {
	p := newPair(t)
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 2000) g;
		CREATE TABLE notes (v text); ALTER TABLE notes REPLICA IDENTITY FULL;
		INSERT INTO notes SELECT 'n' || g FROM generate_series(1, 100) g`)
	proc := sluicetest.StartProcessEnv(t, filepath.Join(t.TempDir(), "data"),
		[]string{"SLUICE_FAILPOINTS=apply-batch=2,capture-message=1"})
	pid := proc.PID()
	c := proc.Client()
	seen := watchPanicStatus(t, c, "panicky")
	createTask(t, c, taskYAML("panicky", p, "retry: { connection: 60m, other: 30m }\n"))

	waitPhase(t, c, "panicky", proto.PhaseIncremental, 2*time.Minute)
	tables := []string{"public.items", "public.notes"}
	// Changes flowing while the panics happen: the batches they failed
	// come again after the retries, applied once.
	for i := range 20 {
		testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO items VALUES (%d, 'new');
			UPDATE items SET v = v || '+' WHERE id %% 20 = %d;
			DELETE FROM items WHERE id = %d;
			INSERT INTO notes VALUES ('late %d')`, 10000+i, i, 1+i*7, i))
		time.Sleep(50 * time.Millisecond)
	}
	waitEqual(t, p, tables, 2*time.Minute)

	// Every injected panic was reached and counted by this very process.
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		m := panicCounts(t, proc)
		if m["apply/write"] < 2 || m["capture"] < 1 {
			return fmt.Errorf("panics counted %v, want apply/write ≥ 2 and capture ≥ 1", m)
		}
		t.Logf("panics counted: %v", m)
		return nil
	})
	assertAlive(t, proc, pid)
	// Logged with the stack (node.Run installs the hook).
	if log := proc.Log(); !strings.Contains(log, `msg="panic recovered"`) || !strings.Contains(log, "internal/safe.Failpoint") {
		t.Errorf("no panic logged with its stack (does node.Run call installPanicLog?)")
	}

	// The task recovers by itself, and shows (or showed) the panic.
	testenv.MustExec(t, src, `UPDATE items SET v = 'last' WHERE id < 100`)
	waitEqual(t, p, tables, time.Minute)
	waitState(t, c, "panicky", proto.StateRunning, time.Minute)
	if msg := seen(); msg == "" {
		t.Fatal("the task never showed a panic")
	} else {
		t.Logf("the task showed: %s", msg)
	}
	assertAlive(t, proc, pid)
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// A panic outside any attempt's supervision (at a unit's start) ends the
// unit as if it failed; the worker starts it again after its restart
// delay, and the task goes on.
func TestPanicOutsideAttemptRestartsUnit(t *testing.T) {
	p := newPair(t)
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 500) g`)
	proc := sluicetest.StartProcessEnv(t, filepath.Join(t.TempDir(), "data"), []string{"SLUICE_FAILPOINTS=unit-start=2"})
	pid := proc.PID()
	c := proc.Client()
	createTask(t, c, taskYAML("restarted", p, ""))
	waitPhase(t, c, "restarted", proto.PhaseIncremental, 2*time.Minute)
	testenv.MustExec(t, src, `UPDATE t SET v = 'w' WHERE id % 3 = 0; DELETE FROM t WHERE id > 450`)
	waitEqual(t, p, []string{"public.t"}, time.Minute)
	m := panicCounts(t, proc)
	if n := m["unit/capture"] + m["unit/apply"] + m["unit/copy"]; n != 2 {
		t.Fatalf("unit panics counted %v, want 2 in all", m)
	}
	if !strings.Contains(proc.Log(), "unit failed; it starts again") {
		t.Fatal("no unit restart in the log")
	}
	assertAlive(t, proc, pid)
}

// watchPanicStatus polls the task until the test ends and returns what it
// saw: the first retrying status with a panic message, else the last
// error's message if it names a panic ("" if neither).
func watchPanicStatus(t *testing.T, c *coordinator.Client, name string) func() string {
	var mu sync.Mutex
	var retrying, last string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if st, err := c.GetTask(ctx, name); err == nil && st.LastError != nil && strings.Contains(st.LastError.Message, "panic in ") {
				mu.Lock()
				last = string(st.State) + ": " + st.LastError.Message
				if retrying == "" && st.State == proto.StateRetrying && st.LastError.Kind == proto.ErrorOther {
					retrying = last
				}
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		if retrying != "" {
			return retrying
		}
		return last
	}
}

// panicCounts reads sluice_panics_total by where from the process's
// /metrics.
func panicCounts(t *testing.T, proc *sluicetest.Process) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, proc.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if proc.Token != "" {
		req.Header.Set("Authorization", "Bearer "+proc.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, `sluice_panics_total{where="`)
		if !ok {
			continue
		}
		where, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			t.Fatalf("metrics line %q", line)
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[where] = n
	}
	return out
}

// assertAlive checks that the process that started as pid still runs and
// answers.
func assertAlive(t *testing.T, proc *sluicetest.Process, pid int) {
	t.Helper()
	if got := proc.PID(); got != pid {
		t.Fatalf("PID %d, started as %d", got, pid)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("process %d: %v\n%s", pid, err, proc.Log())
	}
	resp, err := http.Get(proc.URL + "/healthz")
	if err != nil {
		t.Fatalf("process %d does not answer: %v\n%s", pid, err, proc.Log())
	}
	resp.Body.Close()
}
