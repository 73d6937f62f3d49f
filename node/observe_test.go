package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// obsSchema: two tables the workload changes, and one the full sync
// copies (obs_seed, 100 rows).
const obsSchema = `CREATE TABLE obs_a (id int PRIMARY KEY, v text);
	CREATE TABLE obs_b (id int PRIMARY KEY, v text);
	CREATE TABLE obs_seed (id int PRIMARY KEY);
	INSERT INTO obs_seed SELECT generate_series(1, 100)`

var obsTables = []string{"obs_a", "obs_b", "obs_seed"}

// obsWorkload writes, one statement per transaction (nothing coalesces),
// a known number of changes of each kind per table, and returns them.
func obsWorkload(t *testing.T, src *pgx.Conn) map[string]proto.OpCounts {
	t.Helper()
	for i := 1; i <= 6; i++ {
		testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO obs_a VALUES (%d, 'v')`, i))
	}
	for i := 1; i <= 3; i++ {
		testenv.MustExec(t, src, fmt.Sprintf(`UPDATE obs_a SET v = 'u%d' WHERE id = %d`, i, i))
	}
	testenv.MustExec(t, src, `DELETE FROM obs_a WHERE id = 6`)
	for i := 1; i <= 4; i++ {
		testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO obs_b VALUES (%d, 'v')`, i))
	}
	testenv.MustExec(t, src, `DELETE FROM obs_b WHERE id IN (1, 2)`) // one transaction, two rows
	return map[string]proto.OpCounts{
		"public.obs_a": {Insert: 6, Update: 3, Delete: 1},
		"public.obs_b": {Insert: 4, Delete: 2},
	}
}

// checkSlot wants the task's slot with the leader's measurement: the
// capture reads it.
func checkSlot(s *proto.SlotStatus, task string) error {
	if s == nil || s.Name != proto.SlotName(task) || s.ConfirmedLSN == "" || s.RetainedWALBytes == nil || s.Active == nil || !*s.Active {
		return fmt.Errorf("slot %+v", s)
	}
	return nil
}

// total is every change of want.
func total(want map[string]proto.OpCounts) int64 {
	var n int64
	for _, c := range want {
		n += c.Insert + c.Update + c.Delete + c.Truncate
	}
	return n
}

// checkTables compares a task's tables with the workload's changes and
// the seeded table's copy.
func checkTables(ts *proto.TablesStatus, want map[string]proto.OpCounts) error {
	seen := 0
	for _, tb := range ts.Tables {
		if tb.Table == "public.obs_seed" {
			if tb.Full == nil || tb.Full.RowsDone != 100 || tb.Full.RowsEstimated != 100 {
				return fmt.Errorf("obs_seed's copy: %+v", tb.Full)
			}
			continue
		}
		w, ok := want[tb.Table]
		if !ok {
			continue
		}
		seen++
		if tb.Applied == nil || *tb.Applied != w {
			return fmt.Errorf("%s applied %+v, want %+v", tb.Table, tb.Applied, w)
		}
		if tb.LastPosition == "" || tb.LagMS == nil || tb.Phase != string(proto.PhaseIncremental) {
			return fmt.Errorf("%s: position %q, lag %v, phase %s", tb.Table, tb.LastPosition, tb.LagMS, tb.Phase)
		}
	}
	if seen != len(want) {
		return fmt.Errorf("tables %+v lack some of %v", ts.Tables, want)
	}
	return nil
}

// metricsOf scrapes a node's /metrics.
func metricsOf(client *http.Client, url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("/metrics: %s", resp.Status)
	}
	return string(b), err
}

// checkMetrics looks for the task's figures in a scrape: its rows
// applied, its latency, and its tables' changes by operation.
func checkMetrics(text, task string, want map[string]proto.OpCounts) error {
	lines := []string{fmt.Sprintf(`sluice_task_rows_applied_total{task=%q} %d`, task, total(want))}
	for table, c := range want {
		for op, n := range map[string]int64{"insert": c.Insert, "update": c.Update, "delete": c.Delete} {
			lines = append(lines, fmt.Sprintf(`sluice_table_rows_applied_total{op=%q,table=%q,task=%q} %d`, op, table, task, n))
		}
	}
	lines = append(lines, fmt.Sprintf(`sluice_table_full_rows_done{table="public.obs_seed",task=%q} 100`, task))
	for _, l := range lines {
		if !strings.Contains(text, l+"\n") {
			return fmt.Errorf("/metrics lacks %s", l)
		}
	}
	for _, prefix := range []string{fmt.Sprintf(`sluice_task_latency_seconds{task=%q}`, task), fmt.Sprintf(`sluice_table_lag_seconds{table="public.obs_a",task=%q}`, task)} {
		if !strings.Contains(text, prefix) {
			return fmt.Errorf("/metrics lacks %s", prefix)
		}
	}
	return nil
}

// checkGroupMetrics checks the apply groups' series of a task that ran
// on one node without a restart: their rows add up to the task's, and
// every group that wrote rows wrote them in at least one batch and at
// most one batch a row.
func checkGroupMetrics(text, task string, rows int64) error {
	sums := map[string]map[string]int64{} // metric -> group -> value
	for _, line := range strings.Split(text, "\n") {
		for _, metric := range []string{"sluice_apply_rows_total", "sluice_apply_batches_total"} {
			var group string
			var v int64
			if _, err := fmt.Sscanf(line, metric+`{group=%q,task=`+fmt.Sprintf("%q", task)+`} %d`, &group, &v); err == nil {
				if sums[metric] == nil {
					sums[metric] = map[string]int64{}
				}
				sums[metric][group] = v
			}
		}
	}
	var all int64
	for group, n := range sums["sluice_apply_rows_total"] {
		all += n
		if b, ok := sums["sluice_apply_batches_total"][group]; !ok || (n > 0 && (b < 1 || b > n)) {
			return fmt.Errorf("apply group %s: %d rows in %d batches (present: %v)", group, n, b, ok)
		}
	}
	if len(sums["sluice_apply_rows_total"]) == 0 || all != rows {
		return fmt.Errorf("sluice_apply_rows_total of task %s: %v, sum %d, want %d", task, sums["sluice_apply_rows_total"], all, rows)
	}
	return nil
}

// One node: /tables counts each table's changes by operation and shows
// the seeded table's copy, /history has points, and /metrics the
// per-table series; per_table_metrics: false leaves those out.
func TestObserveTablesAndHistory(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, obsSchema)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	c := proc.Client()
	createTask(t, c, taskYAML("obs", p, ""))
	waitPhase(t, c, "obs", proto.PhaseIncremental, 2*time.Minute)
	want := obsWorkload(t, src)
	waitEqual(t, p, obsTables, time.Minute)

	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "obs")
		if err != nil {
			return err
		}
		if st.RowsApplied != total(want) || st.LatencyMS == nil {
			return fmt.Errorf("rows applied %d (want %d), latency %v", st.RowsApplied, total(want), st.LatencyMS)
		}
		if err := checkSlot(st.Slot, "obs"); err != nil {
			return err
		}
		ts, err := c.TaskTables(ctx, "obs")
		if err != nil {
			return err
		}
		if err := checkTables(ts, want); err != nil {
			return err
		}
		text, err := metricsOf(http.DefaultClient, proc.URL, proc.Token)
		if err != nil {
			return err
		}
		if err := checkMetrics(text, "obs", want); err != nil {
			return err
		}
		// The apply groups' own series: node-local, so only here, where
		// the units run.
		return checkGroupMetrics(text, "obs", total(want))
	})
	h, err := c.TaskHistory(ctx, "obs")
	if err != nil {
		t.Fatal(err)
	}
	if h.IntervalSeconds != 10 || len(h.Points) == 0 {
		t.Fatalf("history: %+v", h)
	}
	out := cli(t, proc, "task", "get", "obs", "--tables")
	if !strings.Contains(out, "public.obs_a") || !strings.Contains(out, "100/100") {
		t.Errorf("task get --tables:\n%s", out)
	}

	// A second task over the same tables, without per-table series.
	p2 := pair{src: p.src, dst: testenv.NewPostgres(t)}
	createTask(t, c, taskYAML("quiet", p2, "per_table_metrics: false\n"))
	waitPhase(t, c, "quiet", proto.PhaseIncremental, 2*time.Minute)
	text, err := metricsOf(http.DefaultClient, proc.URL, proc.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "sluice_table_") && strings.Contains(line, `task="quiet"`) {
			t.Errorf("per_table_metrics: false, yet a per-table series of task quiet: %s", line)
		}
	}
	if !strings.Contains(text, `sluice_task_state{phase="incremental",state="running",task="quiet"} 1`) {
		t.Errorf("task quiet's own series are missing")
	}
}

// A 3-node cluster, the task's units all on one node (its own pool):
// another node, a follower, shows the task's real figures in `task get -o json`, `task get --tables -o json`, /metrics
// and the history.
func TestClusterObserveFromAnotherNode(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, obsSchema)
	c := startCluster(t, 3, "default", "default", "work")
	keepClusterLogs(t, c, "obs")
	leader := c.WaitLeader(t)
	const work = 2
	createTask(t, clusterClient(c), taskYAML("obs", p, "cluster: work\n"))
	waitPhase(t, clusterClient(c), "obs", proto.PhaseIncremental, 2*time.Minute)
	// Neither the units' node nor the leader: a follower, which reads the
	// figures from the leader.
	other := 0
	if other == leader {
		other = 1
	}
	t.Logf("units on %s, leader %s, asking %s", c.ID(work), c.ID(leader), c.ID(other))
	want := obsWorkload(t, src)
	waitEqual(t, p, obsTables, time.Minute)

	cliJSON := func(out any, args ...string) error {
		args = append(args, "-o", "json", "--server", c.URL(other), "--token", c.Token(), "--ca-file", filepath.Join(c.TLSDir(), "ca.pem"))
		text, err := runCLIBinary(t, t.TempDir(), args...)
		if err != nil {
			return fmt.Errorf("sluice %s: %v\n%s", strings.Join(args, " "), err, text)
		}
		return json.Unmarshal([]byte(text), out)
	}
	testenv.CheckFor(t, time.Minute, 250*time.Millisecond, func() error {
		st, err := clusterClient(c).ClusterStatus(ctx)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			for _, u := range n.Units {
				if strings.HasPrefix(u.Unit, "obs/") && n.ID != c.ID(work) {
					t.Fatalf("unit %s on %s, not the work pool's node", u.Unit, n.ID)
				}
			}
		}
		var ts proto.TaskStatus
		if err := cliJSON(&ts, "task", "get", "obs"); err != nil {
			return err
		}
		if ts.RowsApplied != total(want) || ts.LatencyMS == nil || ts.ConfirmedLSN == "" {
			return fmt.Errorf("task get on %s: rows applied %d (want %d), latency %v, confirmed lsn %q", c.ID(other), ts.RowsApplied, total(want), ts.LatencyMS, ts.ConfirmedLSN)
		}
		if err := checkSlot(ts.Slot, "obs"); err != nil {
			return fmt.Errorf("on %s: %w", c.ID(other), err)
		}
		var tables proto.TablesStatus
		if err := cliJSON(&tables, "task", "get", "obs", "--tables"); err != nil {
			return err
		}
		if err := checkTables(&tables, want); err != nil {
			return fmt.Errorf("on %s: %w", c.ID(other), err)
		}
		text, err := metricsOf(c.HTTPClient(), c.URL(other), c.Token())
		if err != nil {
			return err
		}
		return checkMetrics(text, "obs", want)
	})
	h, err := clientOf(c, other).TaskHistory(ctx, "obs")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Points) == 0 || h.IntervalSeconds != int(coordinator.HistoryInterval/time.Second) {
		t.Fatalf("history from %s: %+v", c.ID(other), h)
	}
}
