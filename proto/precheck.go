package proto

import "strings"

// Problem is one failed precheck, with what to do about it.
type Problem struct {
	// Check names what was checked: "source.connect", "source.wal_level",
	// "source.replica_identity", "destination.conflicting_tables", ...
	Check   string `json:"check"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
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
		if p.Check != "" {
			b.WriteString(p.Check)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
		if p.Fix != "" {
			b.WriteString("\n    fix: ")
			b.WriteString(p.Fix)
		}
	}
}
