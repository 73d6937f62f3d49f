package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckForwarded(t *testing.T) {
	c, err := Open(Config{DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	apply := func(cmd Command) {
		t.Helper()
		if err := c.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	apply(NewCreateTask(testSpec("a"), t0))
	apply(ApplyPlan{Moves: []PlanMove{{Unit: "a/capture", To: "n2"}, {Unit: "a/copy/0", To: "n3"}, {Unit: "a/apply/0", To: "n4"}}, At: t0})
	task, _ := c.Task("a")

	ok := []struct {
		from string
		cmd  Command
	}{
		{"n2", &BumpEpoch{Name: "a"}},
		{"n2", &MarkSlotCreated{Name: "a", ConsistentLSN: 5, Epoch: task.Epoch}},
		{"n2", &SetTaskStatus{Name: "a", Epoch: task.Epoch, State: "running"}},
		{"n3", &MarkChunkCopied{Name: "a", Plan: 1}},
		{"n3", &MarkChunkProgress{Name: "a", Plan: 1, Rows: 5}},
		{"n4", &ReportRowsApplied{Name: "a", Unit: "apply/0", Epoch: task.Epoch, Start: 1, Rows: 5}},
		{"n2", &ResolveError{Name: "a", At: t0, HealthySince: t0}},
		{"n3", &SetTaskStatus{Name: "a", State: "retrying", IfRunnable: true}},
		{"n2", &RecordVerify{Name: "a", Epoch: task.Epoch, Results: []VerifyRecordV1{{Table: "public.t"}, {Table: "public.u"}}}},
	}
	for _, o := range ok {
		if err := c.checkForwarded(o.from, o.cmd); err != nil {
			t.Errorf("%s from %s refused: %v", commandName(o.cmd.Type()), o.from, err)
		}
	}
	refused := []struct {
		from string
		cmd  Command
		want string
	}{
		// Users' commands never come from a node.
		{"n2", &RemoveTask{Name: "a"}, "not accepted"},
		{"n2", &ChangeTables{Name: "a"}, "not accepted"},
		{"n2", &CreateToken{}, "not accepted"},
		{"n2", &PauseTask{Name: "a"}, "not accepted"},
		// Only the unit's owner, with the current epoch.
		{"n3", &MarkSlotCreated{Name: "a", Epoch: task.Epoch}, "runs no capture unit"},
		{"n9", &SetTaskStatus{Name: "a", State: "failed"}, "runs no"},
		{"n3", &ReportRowsApplied{Name: "a", Unit: "apply/0", Rows: 5}, "runs no apply unit"},
		{"n2", &MarkSlotCreated{Name: "a", Epoch: task.Epoch - 1}, "epoch"},
		{"n2", &MarkSlotCreated{Name: "a"}, "carries no epoch"},
		{"n2", &MarkChunkCopied{Name: "a", Plan: 1}, "runs no copy unit"},
		{"n2", &SetTaskStatus{Name: "a", State: "paused"}, "not a unit's"},
		{"n2", &SetTaskTables{Name: "a", Epoch: task.Epoch, Tables: []string{"sluice\x00heartbeat"}}, "not a table"},
		{"n2", &SetTaskStatus{Name: "b"}, "not found"},
		// Continuous verification's records: the capture unit's, each
		// table once.
		{"n3", &RecordVerify{Name: "a", Epoch: task.Epoch}, "runs no capture unit"},
		{"n2", &RecordVerify{Name: "a"}, "carries no epoch"},
		{"n2", &RecordVerify{Name: "a", Epoch: task.Epoch, Results: []VerifyRecordV1{{Table: "public.t"}, {Table: "public.t"}}}, "recorded twice"},
	}
	for _, r := range refused {
		err := c.checkForwarded(r.from, r.cmd)
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s from %s: %v, want %q", commandName(r.cmd.Type()), r.from, err, r.want)
		}
	}
	if err := c.checkForwarded("n3", &MarkSlotCreated{Name: "a", Epoch: task.Epoch}); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("a deposed owner's error is not ErrStaleEpoch: %v", err)
	}

	entry, _ := Encode(MarkSlotCreated{Name: "a", Epoch: 1})
	if _, err := Decode(entry); err != nil {
		t.Fatal(err)
	}
	forged := append([]byte{byte(CmdMarkSlotCreated)}, []byte(`{"name":"a","epoch":1,"extra":true}`)...)
	if _, err := Decode(forged); err == nil {
		t.Error("an unknown field decoded")
	}
	if _, err := Decode(append([]byte{byte(CmdMarkSlotCreated)}, []byte(`{"name":"a"} {}`)...)); err == nil {
		t.Error("trailing data decoded")
	}
}
