package proto

import (
	"fmt"
	"slices"
	"strings"
)

// Two-way sync: one task, two directions. The forward direction is the
// task as written (source A to destination B: schema, full, incremental,
// DDL); the reverse direction (B to A, incremental only, no DDL) runs as a
// companion task the coordinator derives from it, named ReverseTaskName,
// so that it has its own slot, stream, positions, epoch and retry window.

// TwoWaySpec is a task's two_way block.
type TwoWaySpec struct {
	// Conflicts is the policy for a change that meets a different row at
	// the destination (ConflictPolicies; default task_failed).
	Conflicts string `yaml:"conflicts,omitempty" json:"conflicts,omitempty"`

	// Reverse and Peer are set on the reverse direction's derived spec
	// only (never written by users): Peer is the forward task's name.
	Reverse bool   `yaml:"-" json:"reverse,omitempty"`
	Peer    string `yaml:"-" json:"peer,omitempty"`
}

// Conflict resolution policies.
const (
	ConflictTaskFailed     = "task_failed"
	ConflictIgnore         = "ignore"
	ConflictOverwrite      = "overwrite"
	ConflictLastWriterWins = "last_writer_wins"
)

// ConflictPolicies are the values two_way.conflicts takes.
var ConflictPolicies = []string{ConflictTaskFailed, ConflictIgnore, ConflictOverwrite, ConflictLastWriterWins}

// Policy is Conflicts with its default.
func (t *TwoWaySpec) Policy() string {
	if t == nil || t.Conflicts == "" {
		return ConflictTaskFailed
	}
	return t.Conflicts
}

// reverseSuffix ends the reverse direction's task name. User task names
// may not end with it.
const reverseSuffix = "__r"

// ReverseTaskName is the name of a two-way task's reverse direction.
func ReverseTaskName(task string) string { return task + reverseSuffix }

// IsTwoWay reports a two-way task (either direction).
func (s *TaskSpec) IsTwoWay() bool { return s.TwoWay != nil }

// IsReverse reports the reverse direction of a two-way task.
func (s *TaskSpec) IsReverse() bool { return s.TwoWay != nil && s.TwoWay.Reverse }

// ForwardName is the two-way task's name as the user knows it: the task's
// own, or its peer's for the reverse direction.
func (s *TaskSpec) ForwardName() string {
	if s.IsReverse() {
		return s.TwoWay.Peer
	}
	return s.Name
}

// Direction is "forward" or "reverse" ("" for a one-way task).
func (s *TaskSpec) Direction() string {
	switch {
	case s.TwoWay == nil:
		return ""
	case s.TwoWay.Reverse:
		return "reverse"
	}
	return "forward"
}

// originName is the replication origin the apply of a two-way task's
// direction sets for its sessions at its destination. ':' is in no task
// name, so an origin name tells its task and direction apart from every
// other task's.
func originName(forward, dir string) string { return "sluice:" + forward + ":" + dir }

// ApplyOrigin is the replication origin this direction's apply writes
// under ("" for a one-way task). Concurrent sessions of the apply, which
// PostgreSQL 15 cannot share one origin between, use ApplyOrigin,
// ApplyOrigin+":1", ":2", and so on (OriginOf matches them all).
func (s *TaskSpec) ApplyOrigin() string {
	if s.TwoWay == nil {
		return ""
	}
	if s.TwoWay.Reverse {
		return originName(s.TwoWay.Peer, "rev")
	}
	return originName(s.Name, "fwd")
}

// PeerOrigin is the origin whose transactions this direction's capture
// drops: the other direction's apply writes them into this direction's
// source, and sending them back would loop ("" for a one-way task).
func (s *TaskSpec) PeerOrigin() string {
	if s.TwoWay == nil {
		return ""
	}
	if s.TwoWay.Reverse {
		return originName(s.TwoWay.Peer, "fwd")
	}
	return originName(s.Name, "rev")
}

// OriginOf reports whether a replication origin's name is base or one of
// its numbered session origins (base:1, base:2, ...).
func OriginOf(name, base string) bool {
	if base == "" {
		return false
	}
	return name == base || strings.HasPrefix(name, base+":")
}

// TwoWayEndpoint is implemented by the config of a destination that can
// be read from as well (a PostgreSQL database): the reverse direction of
// a two-way task runs from there.
type TwoWayEndpoint interface {
	// AsSource is the destination as a source.
	AsSource() SourceSpec
	// WithDatabase is a copy of the config writing to src's database.
	WithDatabase(src SourceSpec) DestinationConfig
}

// ReverseSpec derives the reverse direction of a two-way task: from the
// forward destination to the forward source, incremental only, without
// DDL, over the same tables (two-way refuses renames, filters and column
// lists, so the tables have the same names on both sides).
func (s *TaskSpec) ReverseSpec() (TaskSpec, error) {
	if s.TwoWay == nil || s.TwoWay.Reverse {
		return TaskSpec{}, fmt.Errorf("task %s is not the forward direction of a two-way task", s.Name)
	}
	ep, ok := s.Destination.Config.(TwoWayEndpoint)
	if !ok {
		return TaskSpec{}, fmt.Errorf("two_way: destination type %s cannot be read from", s.Destination.Type)
	}
	f, t, off := false, true, false
	r := TaskSpec{
		Name:              ReverseTaskName(s.Name),
		Source:            ep.AsSource(),
		Destination:       DestinationSpec{Type: s.Destination.Type, Config: ep.WithDatabase(s.Source)},
		Sync:              SyncSpec{Schema: &f, Full: &off, Incremental: &t, DDL: &off},
		ConflictingTables: "ignore", // the forward direction made the tables at A's peer
		NameCase:          s.NameCase,
		Retry:             s.Retry,
		Throttle:          s.Throttle.Clone(),
		Cluster:           s.Cluster,
		Alerts:            s.Alerts,
		TwoWay:            &TwoWaySpec{Conflicts: s.TwoWay.Conflicts, Reverse: true, Peer: s.Name},
	}
	for _, o := range s.Objects {
		r.Objects = append(r.Objects, ObjectSpec{Schema: o.Schema, Tables: append([]string(nil), o.Tables...)})
	}
	return r, nil
}

// validateTwoWay checks a two-way spec: a destination that can be read
// back, incremental sync, and nothing that would make the two sides
// differ (the reverse direction writes back under the same names).
func (s *TaskSpec) validateTwoWay(add AddProblem) {
	if strings.HasSuffix(s.Name, reverseSuffix) && !s.IsReverse() {
		add("name", "must not end with %q: it names the reverse direction of two-way tasks", reverseSuffix)
	}
	tw := s.TwoWay
	if tw == nil || tw.Reverse {
		return
	}
	if tw.Conflicts != "" && !slices.Contains(ConflictPolicies, tw.Conflicts) {
		add("two_way.conflicts", "must be one of %s; not %q", strings.Join(ConflictPolicies, ", "), tw.Conflicts)
	}
	if _, ok := s.Destination.Config.(TwoWayEndpoint); !ok && s.Destination.Type != "" {
		add("two_way", "needs a PostgreSQL destination (destination.type: postgres); %s cannot be synced back", s.Destination.Type)
	}
	if !s.Sync.IncrementalEnabled() {
		add("two_way", "needs incremental sync: both directions stream changes")
	}
	switch s.NameCase {
	case "", "default", "source":
	default:
		add("name_case", "two-way sync writes back under the same names: leave name_case at default")
	}
	why := "the reverse direction writes back under the same names and every row and column, so two-way sync refuses it"
	for i, o := range s.Objects {
		field := fmt.Sprintf("objects[%d]", i)
		if len(o.Rename) > 0 || o.RenameSchema != "" {
			add(field+".rename", "renames the destination's objects: %s", why)
		}
		if len(o.Filter) > 0 {
			add(field+".filter", "keeps some rows from the destination: %s", why)
		}
		if len(o.Columns) > 0 {
			add(field+".columns", "keeps some columns from the destination: %s", why)
		}
		if len(o.Operations) > 0 {
			add(field+".operations", "keeps some changes from the destination: %s", why)
		}
	}
}
