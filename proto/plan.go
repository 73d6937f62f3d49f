package proto

// TaskPlan is what a task would do at its destination, worked out from
// its spec and the source's catalog without creating anything (sluice
// task plan): each table's destination name, key, apply group and
// storage, and, for a destination with SQL, the statements schema sync
// runs, in order.
type TaskPlan struct {
	Task        string         `json:"task"`
	Destination string         `json:"destination"`
	Tables      []PlannedTable `json:"tables"`
	// Statements are schema sync's, in the order they run (empty when
	// schema sync is off, or the destination has no SQL).
	Statements []PlannedStatement `json:"statements,omitempty"`
	// Objects counts the working-copy objects by kind (views, functions,
	// triggers, ...), which the statements create.
	Objects map[ObjectKind]int `json:"objects,omitempty"`
	// Groups is the number of apply groups the tables are spread over.
	Groups int `json:"groups"`
}

// PlannedTable is one table of a plan.
type PlannedTable struct {
	Source TableID `json:"source"`
	// Destination names it at the destination (table, or topic).
	Destination string   `json:"destination"`
	Key         []string `json:"key,omitempty"`
	// Group is the apply group; Linked names the table its foreign keys
	// tie it to (the anchor whose group it shares), if any.
	Group  int    `json:"group"`
	Linked string `json:"linked,omitempty"`
	// Storage is how the destination keeps it: "table", "partitioned
	// (12 partitions)", "unique key model, 16 buckets", a topic's
	// partitions, ...
	Storage       string `json:"storage,omitempty"`
	EstimatedRows int64  `json:"estimated_rows"`
}

// PlannedStatement is one statement of schema sync.
type PlannedStatement struct {
	// Phase: "before the load" or "after the load".
	Phase string `json:"phase"`
	What  string `json:"what"`
	SQL   string `json:"sql"`
}

// Plan phases.
const (
	PhaseBeforeLoad = "before the load"
	PhaseAfterLoad  = "after the load"
)
