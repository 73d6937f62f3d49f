package proto

import "strings"

// Result is a check's verdict.
type Result string

const (
	ResultPass    Result = "pass"
	ResultWarning Result = "warning" // may be acknowledged by its check id
	ResultFailure Result = "failure" // stops the task from being created
)

// Problem is one check's outcome, with what to do about it.
type Problem struct {
	// Check is the check's id: "source.connect", "source.wal_level",
	// "source.replica_identity", "destination.conflicting_tables", ...
	Check   string `json:"check"`
	Result  Result `json:"result,omitempty"` // "" reads as failure
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Blocks: a failure, or a warning not acknowledged in ignore.
func (p Problem) Blocks(ignore []string) bool {
	switch p.Result {
	case ResultPass:
		return false
	case ResultWarning:
		for _, id := range ignore {
			if id == p.Check {
				return false
			}
		}
	}
	return true
}

// PrecheckReport is every check a precheck ran, passed ones included.
type PrecheckReport struct {
	Checks []Problem `json:"checks"`
	// Ignored are the warnings acknowledged; Passed: nothing blocks.
	Ignored []string `json:"ignored,omitempty"`
	Passed  bool     `json:"passed"`
}

// Judge sets Passed and Ignored for the warnings acknowledged in ignore,
// and returns what blocks.
func (r *PrecheckReport) Judge(ignore []string) []Problem {
	var blocking []Problem
	r.Ignored = nil
	for _, c := range r.Checks {
		switch {
		case c.Blocks(ignore):
			blocking = append(blocking, c)
		case c.Result == ResultWarning:
			r.Ignored = append(r.Ignored, c.Check)
		}
	}
	r.Passed = len(blocking) == 0
	return blocking
}

// PrecheckError lists every problem found before a task is created.
// Nothing has been created in the source or destination when it is
// returned.
type PrecheckError struct {
	Problems []Problem `json:"problems"`
}

func (e *PrecheckError) Error() string {
	var b strings.Builder
	b.WriteString("precheck failed:")
	WriteProblems(&b, e.Problems)
	return b.String()
}

// WriteProblems writes each problem and its fix on lines of their own.
func WriteProblems(b *strings.Builder, problems []Problem) {
	for _, p := range problems {
		b.WriteString("\n  - ")
		if p.Result == ResultWarning {
			b.WriteString("warning ")
		}
		if p.Check != "" {
			b.WriteString(p.Check)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
		if p.Fix != "" {
			b.WriteString("\n    fix: ")
			b.WriteString(p.Fix)
		}
		if p.Result == ResultWarning && p.Check != "" {
			b.WriteString("\n    or acknowledge it: --ignore ")
			b.WriteString(p.Check)
		}
	}
}
