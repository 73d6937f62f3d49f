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
	// Fixed are the statements --fix ran at the source before the checks
	// ran again.
	Fixed []string `json:"fixed,omitempty"`
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

// Checks collects a precheck's findings as its checks run, source and
// destination alike, and lists every check once in its report.
type Checks struct {
	problems []Problem
	// ran lists the checks that ran, in order; passed what they found
	// when they found nothing wrong.
	ran    []string
	passed map[string]string
}

// Fail records a failure of check.
func (c *Checks) Fail(check, msg, fix string) {
	c.ran = append(c.ran, check)
	c.problems = append(c.problems, Problem{Check: check, Result: ResultFailure, Message: msg, Fix: fix})
}

// Warn records a warning, which the user may acknowledge by its id.
func (c *Checks) Warn(check, msg, fix string) {
	c.ran = append(c.ran, check)
	c.problems = append(c.problems, Problem{Check: check, Result: ResultWarning, Message: msg, Fix: fix})
}

// Pass records that check ran, and what it found, unless it also found a
// problem.
func (c *Checks) Pass(check, found string) {
	c.ran = append(c.ran, check)
	if c.passed == nil {
		c.passed = map[string]string{}
	}
	if _, ok := c.passed[check]; !ok {
		c.passed[check] = found
	}
}

// Report lists every check once: its problems, or its pass.
func (c *Checks) Report() *PrecheckReport {
	bad := map[string]bool{}
	for _, pr := range c.problems {
		bad[pr.Check] = true
	}
	r := &PrecheckReport{}
	done := map[string]bool{}
	for _, id := range c.ran {
		if done[id] {
			continue
		}
		done[id] = true
		if !bad[id] {
			r.Checks = append(r.Checks, Problem{Check: id, Result: ResultPass, Message: c.passed[id]})
			continue
		}
		for _, pr := range c.problems {
			if pr.Check == id {
				r.Checks = append(r.Checks, pr)
			}
		}
	}
	return r
}

// SourceFacts are what the source's checks found that the destination's
// need: the selected tables (nil when the source could not be read), their
// size, and the extensions their column types come from.
type SourceFacts struct {
	Tables         []TableID
	Bytes          int64
	TypeExtensions []string
	// Defs are the selected tables' definitions (columns, types, keys),
	// for destinations whose checks look at them (names, types a
	// destination cannot hold); nil when the schema could not be read.
	Defs []TableDef
	// NoIdentity are the selected tables (quoted names) whose updates and
	// deletes cannot be replicated: no primary key and no REPLICA
	// IDENTITY FULL (incremental sync only). --fix sets their identity.
	NoIdentity []string
}
