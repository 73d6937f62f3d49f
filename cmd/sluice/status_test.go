package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// A task that ran well again after an error shows no current error and
// no retry window: the error only as history, with when it was resolved;
// task list's ERROR column is empty.
func TestPrintStatusResolvedError(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	resolved := now.Add(-2 * time.Minute)
	st := &proto.TaskStatus{Name: "x", Phase: proto.PhaseIncremental, State: proto.StateRunning, RowsApplied: 42,
		ResolvedError: &proto.TaskError{Kind: proto.ErrorConnection, Message: "dial tcp: refused", At: now.Add(-5 * time.Minute)},
		ResolvedAt:    &resolved}
	var b bytes.Buffer
	if err := printStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"last error:     -", "resolved error: connection: dial tcp: refused", "(2m0s ago;", "rows applied:   42"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "retry until") {
		t.Errorf("a resolved error shows a retry window:\n%s", out)
	}
	b.Reset()
	if err := printList(&b, []proto.TaskStatus{*st}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[1], " -") {
		t.Errorf("task list shows an error for a running task without one:\n%s", b.String())
	}
}
