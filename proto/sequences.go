package proto

import (
	"fmt"
	"strconv"
)

// Sequences in step. Schema sync creates the task's sequences and sets
// them once after the full load; during incremental sync the capture
// unit moves each forward to the source's value (never back) every few
// seconds and when the source goes quiet, and `sluice task cutover` sets
// them exactly. A task's sequences are those its tables' column defaults
// call, those its columns own (serial, identity), and those its objects
// select: every sequence of a whole schema, or the ones an entry names.

// SequenceState is where a sequence stands, as setval takes it: the next
// nextval returns LastValue plus the increment when IsCalled, else
// LastValue itself (a sequence just created or restarted).
type SequenceState struct {
	LastValue int64 `json:"last_value"`
	IsCalled  bool  `json:"is_called"`
}

// String is the last value, marked when nextval has not handed it out yet.
func (s SequenceState) String() string {
	v := strconv.FormatInt(s.LastValue, 10)
	if !s.IsCalled {
		return v + "*"
	}
	return v
}

// SequenceUpdate is a destination sequence and the state to give it.
type SequenceUpdate struct {
	Name TableID
	SequenceState
}

// SequenceResult is what setting one destination sequence found and left.
type SequenceResult struct {
	Name TableID
	// Missing: there is no such sequence at the destination.
	Missing       bool
	Before, After SequenceState
}

// CutoverReport is what `sluice task cutover` did, once the task had
// applied everything the source had written when it was asked.
type CutoverReport struct {
	Task string `json:"task"`
	// SourceLSN is the source's WAL position when the cutover started;
	// the destination had applied every change up to it before the
	// steps ran.
	SourceLSN string `json:"source_lsn"`
	// WaitedMS is how long catching up took.
	WaitedMS int64 `json:"waited_ms"`
	// Steps are the cutover's steps that ran, in order.
	Steps []string `json:"steps"`
	// Sequences are the task's sequences, each set to the source's value
	// (none when the destination keeps no sequences: Kafka, Doris).
	Sequences []CutoverSequence `json:"sequences"`
	// Note says why there is nothing to report, when there is not.
	Note string `json:"note,omitempty"`
	// Released are the statements that gave the destination's held
	// objects (triggers and rules created disabled, foreign keys made
	// deferrable, for a destination user without replica mode) the
	// source's definitions back.
	Released []string `json:"released,omitempty"`
}

// CutoverSequence is one sequence a cutover set: its names on both
// sides, the source's value, and the destination's before and after.
// Error says why it could not be set (the others are set regardless).
type CutoverSequence struct {
	Source      string         `json:"source"`
	Destination string         `json:"destination"`
	SourceValue *SequenceState `json:"source_value"`
	Before      *SequenceState `json:"before"`
	After       *SequenceState `json:"after"`
	Error       string         `json:"error,omitempty"`
}

// Failed lists the sequences the cutover could not set.
func (r *CutoverReport) Failed() []CutoverSequence {
	var out []CutoverSequence
	for _, s := range r.Sequences {
		if s.Error != "" {
			out = append(out, s)
		}
	}
	return out
}

// validateSequences checks an objects entry's sequences (Validate's add).
func validateSequences(field string, o ObjectSpec, add func(field, format string, args ...any)) {
	if len(o.Sequences) > 0 && len(o.Tables) == 0 {
		add(field+".sequences", "the entry selects all of schema %q, every sequence of it included; list tables to select less (sequences then adds to those their columns use)", o.Schema)
		return
	}
	seen := map[string]bool{}
	for i, name := range o.Sequences {
		f := fmt.Sprintf("%s.sequences[%d]", field, i)
		switch {
		case name == "":
			add(f, "is empty")
		case seen[name]:
			add(f, "%q is listed twice", name)
		case len(name) > 63:
			add(f, "%q is longer than 63 bytes, PostgreSQL's limit for a name", name)
		}
		seen[name] = true
	}
}
