package proto

import "time"

// Phase is where a task is in its life.
type Phase string

const (
	PhasePrecheck    Phase = "precheck"
	PhaseSchema      Phase = "schema"
	PhaseFull        Phase = "full"
	PhaseIncremental Phase = "incremental"
)

// State is what a task is doing in its phase.
type State string

const (
	StatePending  State = "pending"
	StateRunning  State = "running"
	StateRetrying State = "retrying"
	StatePaused   State = "paused"
	StateFailed   State = "failed"
	// StateReleased: the task finished (a full-sync-only task) or was
	// deleted, and its source objects are released.
	StateReleased State = "released"
)

// ErrorKind separates failures by retry window (invariant 7).
type ErrorKind string

const (
	ErrorConnection ErrorKind = "connection"
	ErrorOther      ErrorKind = "other"
)

// TaskError is the last error of a task.
type TaskError struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	// RetryUntil is when the retry window closes; zero once failed.
	RetryUntil time.Time `json:"retry_until,omitempty"`
}

// FullProgress counts full-sync rows.
type FullProgress struct {
	RowsDone      int64 `json:"rows_done"`
	RowsEstimated int64 `json:"rows_estimated"`
	TablesDone    int   `json:"tables_done"`
	TablesTotal   int   `json:"tables_total"`
	// RowsPerSecond and BytesPerSecond: the copy rate over the last ten
	// seconds, of the copy units on the node that answers.
	RowsPerSecond  float64 `json:"rows_per_second,omitempty"`
	BytesPerSecond float64 `json:"bytes_per_second,omitempty"`
}

// TaskStatus is what `sluice task get` shows.
type TaskStatus struct {
	Name        string       `json:"name"`
	Phase       Phase        `json:"phase"`
	State       State        `json:"state"`
	Full        FullProgress `json:"full"`
	LatencyMS   *int64       `json:"latency_ms"`
	RowsApplied int64        `json:"rows_applied"`
	// Throughput of the incremental apply, rows per second (last 10 s).
	ThroughputRPS float64 `json:"throughput_rps"`
	// ThroughputBPS: bytes of changes applied per second (last 10 s).
	ThroughputBPS float64 `json:"throughput_bps"`
	ConfirmedLSN  string  `json:"confirmed_lsn,omitempty"`
	// Slot is the task's replication slot (observe.go).
	Slot *SlotStatus `json:"slot,omitempty"`
	// Adding: tables added to the running task whose copy is not in yet;
	// their changes wait until it is.
	Adding []string `json:"adding,omitempty"`
	// LastError is the current error: nil once the task's units ran well
	// again after it. ResolvedError is then the error as history, and
	// ResolvedAt when the units were seen running well again.
	LastError     *TaskError `json:"last_error"`
	ResolvedError *TaskError `json:"resolved_error,omitempty"`
	ResolvedAt    *time.Time `json:"last_error_resolved_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	Spec          TaskSpec   `json:"spec"`
	// TwoWay shows both directions of a two-way task and its conflicts.
	TwoWay *TwoWayStatus `json:"two_way,omitempty"`
	// Verify sums up the task's last verifications (sluice verify and
	// continuous verification); nil before the first.
	Verify *VerifySummary `json:"verify,omitempty"`
	// Fixed, in the answer to a create with --fix only: the statements
	// its precheck ran at the source (PrecheckReport.Fixed).
	Fixed []string `json:"fixed,omitempty"`
}

// TwoWayStatus is a two-way task's directions and conflicts.
type TwoWayStatus struct {
	Policy  string          `json:"policy"`
	Forward DirectionStatus `json:"forward"`
	Reverse DirectionStatus `json:"reverse"`
	// Conflicts by direction, kind and resolution, as logged in
	// sluice.conflicts at either side; ConflictsError says why they could
	// not be read (a side is unreachable, say).
	Conflicts      []ConflictCount `json:"conflicts"`
	ConflictsError string          `json:"conflicts_error,omitempty"`
}

// DirectionStatus is one direction of a two-way task.
type DirectionStatus struct {
	Task          string     `json:"task"`
	Phase         Phase      `json:"phase"`
	State         State      `json:"state"`
	LatencyMS     *int64     `json:"latency_ms"`
	RowsApplied   int64      `json:"rows_applied"`
	ThroughputRPS float64    `json:"throughput_rps"`
	LastError     *TaskError `json:"last_error"`
}

// ConflictCount counts conflicts of one kind resolved one way.
type ConflictCount struct {
	Direction  string `json:"direction"`
	Kind       string `json:"kind"`
	Resolution string `json:"resolution"`
	Count      int64  `json:"count"`
}
