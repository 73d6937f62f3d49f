package node

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// Prometheus metrics at /metrics on every node. Every node exports the
// tasks' replicated state (phase, state, retry window, full-sync
// progress, each table's last verification): any node answers the same,
// aggregate with max by (task).
// The volatile figures of the units (latency, throughput, per-table
// counters and lag) are cluster-wide too: each node sends its units' in
// its heartbeat to the leader, which merges them, and the other nodes
// read them from the leader (coordinator/live.go); every node exports
// every task's. Only the alerts holding are the leader's alone.

var (
	descState         = prometheus.NewDesc("sluice_task_state", "1 for the task's current state and phase.", []string{"task", "state", "phase"}, nil)
	descRetryUntil    = prometheus.NewDesc("sluice_task_retry_until_timestamp_seconds", "End of the retry window of a retrying task (0 when not retrying).", []string{"task"}, nil)
	descFullRows      = prometheus.NewDesc("sluice_task_full_rows_done", "Rows copied by the full sync.", []string{"task"}, nil)
	descFullEstimated = prometheus.NewDesc("sluice_task_full_rows_estimated", "Rows the full sync expects to copy.", []string{"task"}, nil)
	descFullTables    = prometheus.NewDesc("sluice_task_full_tables_done", "Tables whose full sync finished.", []string{"task"}, nil)
	descLatency       = prometheus.NewDesc("sluice_task_latency_seconds", "From a change's commit at the source to its apply, by the heartbeat (the task's slowest apply group, on any node).", []string{"task"}, nil)
	descApplied       = prometheus.NewDesc("sluice_task_rows_applied_total", "Rows applied at the destination by the task (replicated total, the same on every node).", []string{"task"}, nil)
	descThroughput    = prometheus.NewDesc("sluice_task_apply_rows_per_second", "Rows applied per second over the last ten seconds (all nodes).", []string{"task"}, nil)
	descThroughputB   = prometheus.NewDesc("sluice_task_apply_bytes_per_second", "Bytes of changes applied per second over the last ten seconds (all nodes).", []string{"task"}, nil)
	descFullRate      = prometheus.NewDesc("sluice_task_full_rows_per_second", "Rows copied per second by the full sync's copy units (all nodes).", []string{"task"}, nil)
	descFullRateB     = prometheus.NewDesc("sluice_task_full_bytes_per_second", "Bytes copied per second by the full sync's copy units (all nodes).", []string{"task"}, nil)
	descRetainedWAL   = prometheus.NewDesc("sluice_task_slot_retained_wal_bytes", "WAL the task's replication slot keeps at the source (measured by the leader).", []string{"task"}, nil)
	descAlert         = prometheus.NewDesc("sluice_task_alert_firing", "1 while an alert of the task holds (on the leader).", []string{"task", "alert"}, nil)
	descUnits         = prometheus.NewDesc("sluice_node_units", "Units running on this node.", nil, nil)
	descLeader        = prometheus.NewDesc("sluice_node_is_leader", "1 on the Raft leader.", nil, nil)
	descPeerDropped   = prometheus.NewDesc("sluice_task_peer_transactions_dropped_total", "Transactions the task's capture left out because the other direction of its two-way task wrote them (no loop).", []string{"task"}, nil)
	descConflicts     = prometheus.NewDesc("sluice_twoway_conflicts_total", "Two-way conflicts detected by the apply groups on this node since it started, by direction, kind and resolution (task is the two-way task's name).", []string{"task", "direction", "kind", "resolution"}, nil)
	descVerifyDiffs   = prometheus.NewDesc("sluice_verify_differences", "Rows that differ between source and destination by the table's last verification (sluice verify or continuous; after a repair, those left).", []string{"task", "table"}, nil)
	descVerifyRows    = prometheus.NewDesc("sluice_verify_rows_compared", "Rows compared by the table's last verification (a continuous round compares a slice).", []string{"task", "table"}, nil)
	descVerifyAt      = prometheus.NewDesc("sluice_verify_timestamp_seconds", "When the table was last verified.", []string{"task", "table"}, nil)
	// Per table, unless the task's per_table_metrics is false: a task of
	// thousands of tables would make thousands of series each.
	descTableApplied       = prometheus.NewDesc("sluice_table_rows_applied_total", "Changes applied to the table by operation, by its apply group since it started on its node (all nodes summed).", []string{"task", "table", "op"}, nil)
	descTableFullRows      = prometheus.NewDesc("sluice_table_full_rows_done", "Rows of the table copied by the current full sync.", []string{"task", "table"}, nil)
	descTableFullEstimated = prometheus.NewDesc("sluice_table_full_rows_estimated", "Rows of the table the current full sync expects to copy.", []string{"task", "table"}, nil)
	descTableLag           = prometheus.NewDesc("sluice_table_lag_seconds", "How far the table's applied changes are behind the source: its apply group's heartbeat latency.", []string{"task", "table"}, nil)
	// Per apply group running on this node: the ratio of the two is the
	// group's rows per batch, what the destination's cost per row
	// depends on most (each batch is a transaction, or one per shard).
	descGroupRows    = prometheus.NewDesc("sluice_apply_rows_total", "Rows the task's apply group wrote since it started on this node.", []string{"task", "group"}, nil)
	descGroupBatches = prometheus.NewDesc("sluice_apply_batches_total", "Batches the task's apply group wrote since it started on this node (each a destination transaction, or one per shard of a table's batch).", []string{"task", "group"}, nil)
	descPanics       = prometheus.NewDesc("sluice_panics_total", "Panics recovered in this process since it started, by the goroutine they happened in (each failed a unit, retried, instead of killing the node).", []string{"where"}, nil)
)

type collector struct {
	coord  *coordinator.Coordinator
	worker *Worker
	alerts *alerter
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descRetryUntil, descFullRows, descFullEstimated, descFullTables,
		descLatency, descApplied, descThroughput, descThroughputB, descFullRate, descFullRateB, descRetainedWAL, descAlert, descUnits, descLeader, descPeerDropped, descConflicts, descVerifyDiffs, descVerifyRows, descVerifyAt, descPanics,
		descGroupRows, descGroupBatches,
		descTableApplied, descTableFullRows, descTableFullEstimated, descTableLag} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cluster, known := c.coord.ClusterLive(ctx)
	for _, t := range c.coord.Tasks() {
		name := t.Spec.Name
		gauge(descState, 1, name, string(t.State), string(t.Phase))
		until := 0.0
		if t.State == proto.StateRetrying && t.LastError != nil && !t.LastError.RetryUntil.IsZero() {
			until = float64(t.LastError.RetryUntil.Unix())
		}
		gauge(descRetryUntil, until, name)
		f := t.FullProgress()
		gauge(descFullRows, float64(f.RowsDone), name)
		gauge(descFullEstimated, float64(f.RowsEstimated), name)
		gauge(descFullTables, float64(f.TablesDone), name)
		// Each table's last verification, replicated like the above.
		for _, r := range t.VerifyRecords() {
			gauge(descVerifyDiffs, float64(r.Outstanding()), name, r.Table)
			gauge(descVerifyRows, float64(r.Rows), name, r.Table)
			gauge(descVerifyAt, float64(r.At.Unix()), name, r.Table)
		}
		if t.Spec.PerTableMetricsOn() {
			// Each table's copy, replicated too.
			for table, f := range t.TablesFull() {
				gauge(descTableFullRows, float64(f.RowsDone), name, table)
				gauge(descTableFullEstimated, float64(f.RowsEstimated), name, table)
			}
		}
		l, ok := cluster[name]
		if !known {
			l, ok = c.localLive(name)
		}
		if ok {
			c.collectLive(ch, &t, l)
		}
		if c.worker != nil {
			for g, n := range c.worker.ApplyGroups(name) {
				group := strconv.Itoa(g)
				ch <- prometheus.MustNewConstMetric(descGroupRows, prometheus.CounterValue, float64(n.rows), name, group)
				ch <- prometheus.MustNewConstMetric(descGroupBatches, prometheus.CounterValue, float64(n.batches), name, group)
			}
		}
	}
	leader := c.coord.IsLeader()
	if leader {
		gauge(descLeader, 1)
		for name, list := range c.alerts.firing() {
			for _, al := range list {
				gauge(descAlert, 1, name, al)
			}
		}
	} else {
		gauge(descLeader, 0)
	}
	if c.worker != nil {
		gauge(descUnits, float64(len(c.worker.Health())))
	}
	for _, cc := range postgres.ConflictCounts() {
		ch <- prometheus.MustNewConstMetric(descConflicts, prometheus.CounterValue, float64(cc.N), cc.Task, cc.Direction, cc.Kind, cc.Resolution)
	}
	for where, n := range safe.Counts() {
		ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(n), where)
	}
}

// localLive is this node's own figures of a task, when the leader's
// cannot be had (ok: a unit of the task runs here).
func (c *collector) localLive(name string) (coordinator.TaskLive, bool) {
	if c.worker == nil || !c.worker.Running(name) {
		return coordinator.TaskLive{}, false
	}
	l := taskLive(name, c.worker.Live(name))
	l.Running = true
	return l, true
}

// collectLive exports a task's live figures (cluster-wide, see
// coordinator/live.go), per table too unless per_table_metrics is false.
func (c *collector) collectLive(ch chan<- prometheus.Metric, t *coordinator.Task, l coordinator.TaskLive) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	name := t.Spec.Name
	if l.Slot != nil {
		gauge(descRetainedWAL, float64(l.Slot.RetainedWALBytes), name)
	}
	if l.LatencyMS != nil {
		gauge(descLatency, float64(*l.LatencyMS)/1000, name)
	}
	if l.Running {
		// The task's total from the replicated state: it survives unit
		// moves and restarts, and every node shows the same.
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.CounterValue, float64(t.RowsApplied()), name)
		gauge(descThroughput, l.RowsPerSecond, name)
		gauge(descThroughputB, l.BytesPerSecond, name)
		gauge(descFullRate, l.FullRowsPerSecond, name)
		gauge(descFullRateB, l.FullBytesPerSecond, name)
		if t.Spec.IsTwoWay() {
			ch <- prometheus.MustNewConstMetric(descPeerDropped, prometheus.CounterValue, float64(l.PeerTxDropped), name)
		}
	}
	if !t.Spec.PerTableMetricsOn() {
		return
	}
	for _, tl := range l.Tables {
		for _, op := range []struct {
			op string
			n  int64
		}{{"insert", tl.Insert}, {"update", tl.Update}, {"delete", tl.Delete}, {"truncate", tl.Truncate}} {
			ch <- prometheus.MustNewConstMetric(descTableApplied, prometheus.CounterValue, float64(op.n), name, tl.Table, op.op)
		}
		if tl.LagMS != nil {
			gauge(descTableLag, float64(*tl.LagMS)/1000, name, tl.Table)
		}
	}
}

// metricsHandler serves /metrics.
func metricsHandler(coord *coordinator.Coordinator, worker *Worker, alerts *alerter) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{coord: coord, worker: worker, alerts: alerts})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}
