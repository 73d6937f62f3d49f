package node_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/workload"
	"github.com/sluicedb/sluice/proto"
)

// clusterFailover is short in tests, so detection and takeover of a
// killed node take a few seconds. SLUICE_FAILOVER overrides it ("" for
// the node's default), to measure recovery as users get it.
var clusterFailover = func() string {
	if v, ok := os.LookupEnv("SLUICE_FAILOVER"); ok {
		return v
	}
	return "3s"
}()

func startCluster(t *testing.T, nodes int, pools ...string) *testenv.Cluster {
	t.Helper()
	return testenv.StartCluster(t, testenv.ClusterOptions{
		Binary: sluicetest.SluiceBinary(t), Nodes: nodes, Pools: pools, FailoverTimeout: clusterFailover,
	})
}

// clusterWithTask starts a 3-node cluster and a task over a source seeded
// with the workload's tables, and waits until the task is incremental.
func clusterWithTask(t *testing.T, task string, seed int) (pair, *testenv.Cluster, *pgx.Conn) {
	t.Helper()
	p := newPair(t)
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, workload.Schema)
	if err := workload.Seed(context.Background(), srcConn, seed); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 3)
	keepClusterLogs(t, c, task)
	c.WaitLeader(t)
	createTask(t, clusterClient(c), taskYAML(task, p, ""))
	waitPhase(t, clusterClient(c), task, proto.PhaseIncremental, 2*time.Minute)
	return p, c, srcConn
}

// startLoad runs the workload (no truncates, so a doubled row stays
// visible) in the background; the channel gets its result.
func startLoad(ctx context.Context, p pair, txs int, duration time.Duration, seed int64, progress func(int)) <-chan error {
	load := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, p.src.DSN(testenv.DefaultDB), workload.Options{
			Transactions: txs, Duration: duration, Seed: seed, Truncate: false,
			Progress: func(n int) {
				if progress != nil {
					progress(n)
				}
				time.Sleep(5 * time.Millisecond)
			},
		})
		load <- err
	}()
	return load
}

// clientOf talks to node i with the cluster's admin token, over TLS.
func clientOf(c *testenv.Cluster, i int) *coordinator.Client {
	return &coordinator.Client{BaseURL: c.URL(i), Token: c.Token(), HTTP: c.HTTPClient()}
}

// clusterClient talks to the first live node of the cluster.
func clusterClient(c *testenv.Cluster) *coordinator.Client {
	for i := 0; i < c.N(); i++ {
		if c.Alive(i) {
			return clientOf(c, i)
		}
	}
	return clientOf(c, 0)
}

// status reads the cluster status from any live node, preferring the
// leader's answer (only it knows whether units run).
func status(t *testing.T, c *testenv.Cluster) *coordinator.ClusterStatus {
	t.Helper()
	var st *coordinator.ClusterStatus
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var err error
		st, err = clusterClient(c).ClusterStatus(context.Background())
		if err != nil {
			return err
		}
		if !st.HealthKnown {
			return fmt.Errorf("answered without the leader (leader %q)", st.Leader)
		}
		return nil
	})
	return st
}

// unitNode returns the node a unit is placed on ("" if none).
func unitNode(st *coordinator.ClusterStatus, unit string) string {
	for _, n := range st.Nodes {
		for _, u := range n.Units {
			if u.Unit == unit {
				return n.ID
			}
		}
	}
	return ""
}

func nodeIndex(c *testenv.Cluster, id string) int {
	for i := 0; i < c.N(); i++ {
		if c.ID(i) == id {
			return i
		}
	}
	return -1
}

// waitUnitRunning waits until unit runs on a live node other than not.
func waitUnitRunning(t *testing.T, c *testenv.Cluster, unit, not string, timeout time.Duration) string {
	t.Helper()
	var on string
	start := time.Now()
	testenv.CheckFor(t, timeout, 100*time.Millisecond, func() error {
		st, err := clusterClient(c).ClusterStatus(context.Background())
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			for _, u := range n.Units {
				if u.Unit == unit && n.ID != not && n.Live && u.Running != nil && *u.Running {
					on = n.ID
					return nil
				}
			}
		}
		return fmt.Errorf("%s not running on a node other than %q yet", unit, not)
	})
	t.Logf("%s runs on %s, %.1fs after the failure", unit, on, time.Since(start).Seconds())
	return on
}

// watchNeverFailed polls the task's state until stop and fails the test
// if it ever shows failed.
func watchNeverFailed(t *testing.T, c *testenv.Cluster, task string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := clusterClient(c).GetTask(ctx, task)
			cancel()
			if err == nil && st.State == proto.StateFailed {
				t.Errorf("task %s showed failed: %+v", task, st.LastError)
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// The 3-node cluster under a write load: SIGKILL the node running the
// capture, then the node running an apply group, then the Raft leader.
// After recovery the destination equals the source by content (a keyed
// table and a keyless one) and the task never showed failed.
func TestClusterFailover(t *testing.T) {
	p, c, _ := clusterWithTask(t, "ha", 2000)
	stopWatch := watchNeverFailed(t, c, "ha")
	txs, duration := 5000, 2*time.Minute
	if os.Getenv("SLUICE_SOAK") != "" {
		txs, duration = 20000, 15*time.Minute
	}
	var committed atomic.Int64
	load := startLoad(context.Background(), p, txs, duration, 11, func(n int) { committed.Store(int64(n)) })
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if committed.Load() < 200 {
			return fmt.Errorf("%d transactions committed", committed.Load())
		}
		return nil
	})

	kill := func(what, id string) {
		i := nodeIndex(c, id)
		if i < 0 {
			t.Fatalf("%s: no node %q", what, id)
		}
		t.Logf("killing %s (%s) after %d transactions", id, what, committed.Load())
		c.Kill(i)
		unitsOf := map[string]bool{}
		time.Sleep(200 * time.Millisecond)
		st := status(t, c)
		for _, n := range st.Nodes {
			if n.ID == id {
				for _, u := range n.Units {
					unitsOf[u.Unit] = true
				}
			}
		}
		for u := range unitsOf {
			waitUnitRunning(t, c, u, id, 20*time.Second)
		}
		c.Restart(t, i)
	}

	waitUnitRunning(t, c, "ha/capture", "", 30*time.Second)
	kill("the capture", unitNode(status(t, c), "ha/capture"))
	waitUnitRunning(t, c, "ha/apply/0", "", 30*time.Second)
	kill("apply group 0", unitNode(status(t, c), "ha/apply/0"))
	leader := c.WaitLeader(t)
	kill("the Raft leader", c.ID(leader))
	c.WaitLeader(t)

	if err := <-load; err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitEqual(t, p, workload.Tables, 3*time.Minute)
	stopWatch()
	st := status(t, c)
	if len(st.Unhealthy) > 0 {
		t.Errorf("cluster unhealthy after recovery: %s", strings.Join(st.Unhealthy, "; "))
	}
}

// Full sync spread over the cluster: a task's chunks are copied by copy
// units on several nodes. SIGKILL a node running copy units (not the
// capture, which holds the snapshot) in the middle of the load, under a
// write load: its units move, the load ends, and the destination equals
// the source by content, keyless tables included, so a chunk loaded twice
// would show. The task never shows failed.
func TestClusterFullSyncSpread(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, workload.Schema)
	if err := workload.Seed(ctx, srcConn, 20000); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, srcConn, `CREATE TABLE bulk (id bigint PRIMARY KEY, pad text);
		INSERT INTO bulk SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 300000) g;
		CREATE TABLE bulk_bag (v bigint, pad text);
		ALTER TABLE bulk_bag REPLICA IDENTITY FULL;
		INSERT INTO bulk_bag SELECT g % 1000, repeat(md5(g::text), 6) FROM generate_series(1, 150000) g;
		ANALYZE`)
	tables := append([]string{"public.bulk", "public.bulk_bag"}, workload.Tables...)

	// Small chunks, many copy units: the load takes long enough to kill
	// a node in its middle, and spreads over every node.
	c := testenv.StartCluster(t, testenv.ClusterOptions{
		Binary: sluicetest.SluiceBinary(t), Nodes: 3, FailoverTimeout: clusterFailover, CopyUnits: 6, ChunkPages: 16,
	})
	keepClusterLogs(t, c, "spread")
	c.WaitLeader(t)
	stopWatch := watchNeverFailed(t, c, "spread")
	createTask(t, clusterClient(c), taskYAML("spread", p, ""))
	load := startLoad(ctx, p, 1500, 2*time.Minute, 23, nil)

	// Wait for copy units on at least two nodes, then kill one of their
	// nodes that does not run the capture.
	copyNodes := map[string]bool{}
	var victim string
	var lost []string
	testenv.CheckFor(t, 2*time.Minute, 50*time.Millisecond, func() error {
		st, err := clusterClient(c).GetTask(ctx, "spread")
		if err != nil {
			return err
		}
		if st.Phase == proto.PhaseIncremental {
			t.Fatalf("the full sync ended before a copy unit's node could be killed: make the tables bigger")
		}
		cs, err := clusterClient(c).ClusterStatus(ctx)
		if err != nil {
			return err
		}
		capture := unitNode(cs, "spread/capture")
		for _, n := range cs.Nodes {
			var copies []string
			for _, u := range n.Units {
				if strings.HasPrefix(u.Unit, "spread/copy/") && u.Running != nil && *u.Running {
					copies = append(copies, u.Unit)
				}
			}
			if len(copies) > 0 {
				copyNodes[n.ID] = true
				if n.ID != capture && n.Live {
					victim, lost = n.ID, copies
				}
			}
		}
		if len(copyNodes) < 2 || victim == "" {
			return fmt.Errorf("copy units run on %v (capture on %s)", copyNodes, capture)
		}
		if st.Full.RowsEstimated > 0 && st.Full.RowsDone*10 > st.Full.RowsEstimated*6 {
			t.Fatalf("the full sync is %d/%d rows done before the kill: make the tables bigger", st.Full.RowsDone, st.Full.RowsEstimated)
		}
		return nil
	})
	st, _ := clusterClient(c).GetTask(ctx, "spread")
	t.Logf("copy units on %v; killing %s (running %v) at %d/%d rows", copyNodes, victim, lost, st.Full.RowsDone, st.Full.RowsEstimated)
	c.Kill(nodeIndex(c, victim))

	// Its copy units run elsewhere, or are done.
	for _, unit := range lost {
		testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
			cs, err := clusterClient(c).ClusterStatus(ctx)
			if err != nil {
				return err
			}
			if on := unitNode(cs, unit); on == victim {
				return fmt.Errorf("%s still placed on the killed node", unit)
			}
			return nil
		})
	}
	waitPhase(t, clusterClient(c), "spread", proto.PhaseIncremental, 3*time.Minute)
	if err := <-load; err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitEqual(t, p, tables, 3*time.Minute)
	stopWatch()
	final, err := clusterClient(c).GetTask(ctx, "spread")
	if err != nil {
		t.Fatal(err)
	}
	if final.Full.TablesDone != len(tables) || final.Full.RowsDone < 470000 {
		t.Errorf("full-sync progress after the load: %+v", final.Full)
	}
	c.Restart(t, nodeIndex(c, victim))
}

// Partition the Raft leader from the others: a new leader is elected, the
// old leader's units are fenced and move, and no row is written twice.
func TestClusterPartitionLeader(t *testing.T) {
	p, c, srcConn := clusterWithTask(t, "split", 1000)
	ctx := context.Background()
	old := c.WaitLeader(t)
	load := startLoad(ctx, p, 1000, 2*time.Minute, 5, nil)
	time.Sleep(2 * time.Second)
	c.Partition(old)
	t.Logf("partitioned the leader %s", c.ID(old))
	// The others elect a new leader and take over the old leader's units.
	var newLeader string
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		for i := 0; i < c.N(); i++ {
			if i == old {
				continue
			}
			st, err := clientOf(c, i).ClusterStatus(ctx)
			if err != nil {
				return err
			}
			if st.Leader == "" || st.Leader == c.ID(old) {
				return fmt.Errorf("node %s sees leader %q", c.ID(i), st.Leader)
			}
			newLeader = st.Leader
			for _, n := range st.Nodes {
				if n.ID == c.ID(old) && len(n.Units) > 0 {
					return fmt.Errorf("the partitioned node still holds %d units", len(n.Units))
				}
			}
		}
		return nil
	})
	t.Logf("new leader %s; the partitioned node's units moved", newLeader)
	if err := <-load; err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitEqual(t, p, workload.Tables, 3*time.Minute)
	c.Heal(old)
	c.WaitLeader(t)
	// Healed, the old leader rejoins as a follower; the content still
	// matches after a few more changes. The brokers' stream may still be
	// choosing its leader then, and a capture refused meanwhile retries
	// after a backoff of up to 30 s: the same bound as above.
	testenv.MustExec(t, srcConn, `INSERT INTO events (account_id, kind) VALUES (1, 'healed'), (1, 'healed')`)
	waitEqual(t, p, workload.Tables, 3*time.Minute)
}

// A task pinned to pool p1 runs only on p1's nodes; when they are all
// gone it waits, and says why, rather than running elsewhere.
func TestClusterDedicatedPool(t *testing.T) {
	p := newPair(t)
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE pinned (id int PRIMARY KEY, v text); INSERT INTO pinned SELECT g, 'v' || g FROM generate_series(1, 500) g`)
	c := startCluster(t, 3, "default", "p1", "default")
	c.WaitLeader(t)
	p1 := 1
	createTask(t, clusterClient(c), taskYAML("pinned", p, "cluster: p1\n"))
	waitPhase(t, clusterClient(c), "pinned", proto.PhaseIncremental, 2*time.Minute)
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		st := status(t, c)
		for _, n := range st.Nodes {
			for _, u := range n.Units {
				if strings.HasPrefix(u.Unit, "pinned/") && n.Pool != "p1" {
					t.Fatalf("unit %s placed on %s of pool %s", u.Unit, n.ID, n.Pool)
				}
			}
		}
		if unitNode(st, "pinned/apply/0") != c.ID(p1) {
			return fmt.Errorf("apply units not placed yet")
		}
		return nil
	})
	waitEqual(t, p, []string{"pinned"}, time.Minute)

	c.Kill(p1)
	var reason string
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		st := status(t, c)
		for _, n := range st.Nodes {
			for _, u := range n.Units {
				if strings.HasPrefix(u.Unit, "pinned/") {
					if n.Pool != "p1" {
						t.Fatalf("unit %s moved to %s of pool %s", u.Unit, n.ID, n.Pool)
					}
					return fmt.Errorf("unit %s still on %s", u.Unit, n.ID)
				}
			}
		}
		for _, w := range st.Waiting {
			if w.Task == "pinned" {
				reason = w.Reason
				return nil
			}
		}
		return fmt.Errorf("task not shown waiting")
	})
	if !strings.Contains(reason, "p1") {
		t.Errorf("waiting reason %q does not name the pool", reason)
	}
	t.Logf("pinned waits: %s", reason)
	testenv.MustExec(t, srcConn, `INSERT INTO pinned VALUES (1001, 'while p1 was down')`)
	time.Sleep(2 * time.Second)
	c.Restart(t, p1)
	waitEqual(t, p, []string{"pinned"}, time.Minute)
}

// Scale-out: a fourth worker joins and takes some apply groups, with no
// loss.
func TestClusterScaleOut(t *testing.T) {
	p, c, _ := clusterWithTask(t, "grow", 1000)
	load := startLoad(context.Background(), p, 800, 2*time.Minute, 3, nil)
	n4 := c.AddNode(t, testenv.NodeOptions{Roles: []string{"broker", "worker"}})
	testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		st := status(t, c)
		for _, n := range st.Nodes {
			if n.ID == c.ID(n4) {
				for _, u := range n.Units {
					if u.Running != nil && *u.Running {
						return nil
					}
				}
				return fmt.Errorf("%s runs no unit yet (%d placed)", n.ID, len(n.Units))
			}
		}
		return fmt.Errorf("%s not registered yet", c.ID(n4))
	})
	if err := <-load; err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitEqual(t, p, workload.Tables, 3*time.Minute)
}

// The soak (make e2e): at least 30 random kills and restarts of random
// nodes under load, each followed by the time until every unit runs again
// on a live node; then the content check.
func TestClusterSoak(t *testing.T) {
	if os.Getenv("SLUICE_SOAK") == "" {
		t.Skip("soak: run with SLUICE_SOAK=1 (make e2e)")
	}
	p, c, _ := clusterWithTask(t, "soak", 2000)
	ctx := context.Background()
	stopWatch := watchNeverFailed(t, c, "soak")
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	load := startLoad(loadCtx, p, 200000, 30*time.Minute, 17, nil)
	rng := rand.New(rand.NewSource(42))
	var worst time.Duration
	kills := 32
	if n, err := strconv.Atoi(os.Getenv("SLUICE_SOAK_KILLS")); err == nil && n > 0 {
		kills = n
	}
	for k := 1; k <= kills; k++ {
		i := rng.Intn(c.N())
		time.Sleep(time.Duration(500+rng.Intn(2500)) * time.Millisecond)
		start := time.Now()
		c.Kill(i)
		c.WaitLeader(t)
		// Recovered: every unit of the task is placed on a live node and
		// running there (the killed node is still down).
		testenv.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			st, err := clusterClient(c).ClusterStatus(ctx)
			if err != nil {
				return err
			}
			if !st.HealthKnown {
				return fmt.Errorf("no leader answer yet")
			}
			units := 0
			for _, n := range st.Nodes {
				for _, u := range n.Units {
					if n.ID == c.ID(i) || !n.Live || u.Running == nil || !*u.Running {
						return fmt.Errorf("%s on %s not running yet", u.Unit, n.ID)
					}
					units++
				}
			}
			if units < 5 { // capture and four apply groups
				return fmt.Errorf("%d units placed", units)
			}
			return nil
		})
		took := time.Since(start)
		worst = max(worst, took)
		t.Logf("kill %d: %s, recovered in %.1fs", k, c.ID(i), took.Seconds())
		c.Restart(t, i)
	}
	t.Logf("worst recovery %.1fs", worst.Seconds())
	stopLoad()
	if err := <-load; err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("workload: %v", err)
	}
	waitEqual(t, p, workload.Tables, 3*time.Minute)
	stopWatch()
}

// keepClusterLogs copies every node's whole log, the cluster status and
// the task's status to $TMPDIR/sluice-<name>-logs when the test fails,
// for the post-mortem (the test log keeps only the tails).
func keepClusterLogs(t *testing.T, c *testenv.Cluster, task string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := filepath.Join(os.TempDir(), "sluice-"+task+"-logs")
		_ = os.MkdirAll(dir, 0o755)
		for i := 0; i < c.N(); i++ {
			if b, err := os.ReadFile(c.LogPath(i)); err == nil {
				_ = os.WriteFile(filepath.Join(dir, c.ID(i)+".log"), b, 0o644)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var out strings.Builder
		if st, err := clusterClient(c).ClusterStatus(ctx); err == nil {
			fmt.Fprintf(&out, "cluster: %+v\n", *st)
		}
		if st, err := clusterClient(c).GetTask(ctx, task); err == nil {
			fmt.Fprintf(&out, "task: %+v\n", *st)
		}
		_ = os.WriteFile(filepath.Join(dir, "status.txt"), []byte(out.String()), 0o644)
		t.Logf("node logs and status kept in %s", dir)
	})
}
