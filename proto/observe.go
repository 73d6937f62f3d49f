package proto

import "time"

// What GET /api/v1/tasks/{name}/tables and .../history answer, and the
// slot in a task's status.

// SlotStatus is a task's replication slot at the source. ConfirmedLSN is
// the capture's last confirmed position; RetainedWALBytes and Active are
// the leader's last measurement (every 15 s; absent before the first).
type SlotStatus struct {
	Name             string `json:"name"`
	ConfirmedLSN     string `json:"confirmed_lsn,omitempty"`
	RetainedWALBytes *int64 `json:"retained_wal_bytes,omitempty"`
	Active           *bool  `json:"active,omitempty"`
}

// TablesStatus is a task's tables, each with its figures.
type TablesStatus struct {
	Tables []TableStatus `json:"tables"`
}

// TableStatus is one table of a task. Phase is "adding" (added to the
// running task, its copy not in yet), "full" (being copied), "copied"
// (copied, the full sync of other tables goes on), or the task's phase.
type TableStatus struct {
	Table string `json:"table"`
	Phase string `json:"phase"`
	// Full: the table's copy (absent when unknown: no full sync, or its
	// plan is over).
	Full *TableFull `json:"full,omitempty"`
	// Applied: changes applied by operation, by the table's apply group
	// since it started on its node (absent before it runs).
	Applied *OpCounts `json:"applied,omitempty"`
	// LastPosition: the last applied change's commit LSN and index in its
	// transaction ("0/16B3F28:3").
	LastPosition string `json:"last_position,omitempty"`
	// LagMS: how far the table's changes are behind the source, by its
	// apply group's heartbeats (0 when caught up; absent when unknown).
	LagMS *int64 `json:"lag_ms,omitempty"`
}

// TableFull is one table's full-sync progress.
type TableFull struct {
	RowsDone      int64   `json:"rows_done"`
	RowsEstimated int64   `json:"rows_estimated"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// ETASeconds: the rows left at the recent rate (absent when unknown).
	ETASeconds *int64 `json:"eta_seconds,omitempty"`
}

// OpCounts counts changes by operation.
type OpCounts struct {
	Insert   int64 `json:"insert"`
	Update   int64 `json:"update"`
	Delete   int64 `json:"delete"`
	Truncate int64 `json:"truncate"`
}

// TaskHistory is a task's figures over the last hour, one point per
// interval, oldest first.
type TaskHistory struct {
	IntervalSeconds int            `json:"interval_seconds"`
	Points          []HistoryPoint `json:"points"`
}

// HistoryPoint is a task's figures at one time: the latency, and the rows
// and bytes per second applied (incremental) plus copied (full sync).
type HistoryPoint struct {
	At             time.Time `json:"at"`
	LatencyMS      *int64    `json:"latency_ms"`
	RowsPerSecond  float64   `json:"rows_per_second"`
	BytesPerSecond float64   `json:"bytes_per_second"`
}
