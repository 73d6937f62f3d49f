package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// sluice verify against the real API with a fake node: the exit codes
// (0 equal, 1 differences, 2 could not verify), the request sent, the
// report as a table and as JSON, and --last from the recorded results.
func TestVerifyCommand(t *testing.T) {
	url, backend, _ := serverWithCoordinator(t)
	file := filepath.Join(t.TempDir(), "task.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, nil, "", "verify", "nosuch", "--server", url); r.code != 2 || !strings.Contains(r.stderr, `task "nosuch" not found`) {
		t.Fatalf("unknown task: %+v", r)
	}
	if r := runCLI(t, nil, "", "task", "create", "-f", file, "--server", url); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	backend.SetVerify(&proto.VerifyReport{Task: "orders", At: at, Tables: []proto.VerifyTableResult{
		{Table: "public.orders", Dest: "public.orders", Rows: 1000},
	}}, nil)
	r := runCLI(t, nil, "", "verify", "orders", "--table", "public.orders", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "public.orders") || !strings.Contains(r.stdout, "equal") {
		t.Fatalf("equal: %+v", r)
	}
	if reqs := backend.VerifyRequests(); len(reqs) != 1 || fmt.Sprint(reqs[0].Tables) != "[public.orders]" || reqs[0].Repair {
		t.Fatalf("requests: %+v", reqs)
	}

	differs := &proto.VerifyReport{Task: "orders", At: at, Tables: []proto.VerifyTableResult{
		{Table: "public.orders", Dest: "sales.orders", Rows: 1000, Differences: []proto.VerifyDifference{
			{Kind: proto.DiffChanged, Key: map[string]string{"id": "7"}, Columns: []string{"amount"}},
			{Kind: proto.DiffMissing, Key: map[string]string{"id": "9"}},
		}, More: 3},
	}}
	backend.SetVerify(differs, nil)
	r = runCLI(t, nil, "", "verify", "orders", "--server", url)
	if r.code != 1 || !strings.Contains(r.stdout, "changed id=7 (amount)") || !strings.Contains(r.stdout, "missing id=9") ||
		!strings.Contains(r.stdout, "and 3 more") || !strings.Contains(r.stdout, "public.orders -> sales.orders") {
		t.Fatalf("differences: %+v", r)
	}
	r = runCLI(t, nil, "", "verify", "orders", "-o", "json", "--repair", "--server", url)
	var got proto.VerifyReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Tables[0].Differences) != 2 {
		t.Fatalf("json: %+v %v", r, err)
	}
	if reqs := backend.VerifyRequests(); !reqs[len(reqs)-1].Repair {
		t.Fatalf("--repair not sent: %+v", reqs)
	}
	// A repaired table with nothing left is 0; one still differing is 1.
	differs.Repair = true
	differs.Tables[0].Repaired = 5
	backend.SetVerify(differs, nil)
	if r := runCLI(t, nil, "", "verify", "orders", "--repair", "--server", url); r.code != 0 || !strings.Contains(r.stdout, "repaired 5") {
		t.Fatalf("repaired: %+v", r)
	}
	differs.Tables[0].Remaining = 1
	if r := runCLI(t, nil, "", "verify", "orders", "--repair", "--server", url); r.code != 1 || !strings.Contains(r.stdout, "1 still differ") {
		t.Fatalf("repaired, one left: %+v", r)
	}

	// Could not verify: a table's error, rows that kept changing, or the
	// whole verification refused.
	backend.SetVerify(&proto.VerifyReport{Task: "orders", Tables: []proto.VerifyTableResult{{Table: "public.orders", Error: "the task is behind"}}}, nil)
	if r := runCLI(t, nil, "", "verify", "orders", "--server", url); r.code != 2 || !strings.Contains(r.stdout, "could not verify: the task is behind") {
		t.Fatalf("table error: %+v", r)
	}
	backend.SetVerify(&proto.VerifyReport{Task: "orders", Tables: []proto.VerifyTableResult{{Table: "public.orders", Unsettled: 4}}}, nil)
	if r := runCLI(t, nil, "", "verify", "orders", "--server", url); r.code != 2 || !strings.Contains(r.stdout, "4 rows kept changing") {
		t.Fatalf("unsettled: %+v", r)
	}
	backend.SetVerify(nil, fmt.Errorf("%w: task \"orders\" is in phase full", coordinator.ErrVerifyRefused))
	if r := runCLI(t, nil, "", "verify", "orders", "--server", url); r.code != 2 || !strings.Contains(r.stderr, "is in phase full") {
		t.Fatalf("refused: %+v", r)
	}

	// --last: what the runs above recorded, per table.
	r = runCLI(t, nil, "", "verify", "orders", "--last", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "public.orders") || !strings.Contains(r.stdout, "4 unsettled") {
		t.Fatalf("--last: %+v", r)
	}
	if r := runCLI(t, nil, "", "verify", "orders", "-o", "yaml", "--server", url); r.code != 1 || !strings.Contains(r.stderr, "-o \"yaml\"") {
		t.Fatalf("bad output flag: %+v", r)
	}
}

// task get shows the verify block and the last verifications summed up;
// --last shows what each record compared.
func TestPrintVerifyStatus(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	st := &proto.TaskStatus{Name: "x", Phase: proto.PhaseIncremental, State: proto.StateRunning,
		Spec: proto.TaskSpec{Verify: &proto.VerifySpec{}},
		Verify: proto.SummarizeVerify([]proto.VerifyRecord{
			{Table: "public.a", At: now.Add(-90 * time.Second), Differences: 2},
			{Table: "public.b", At: now.Add(-time.Hour), Error: "boom"},
		})}
	var b strings.Builder
	if err := printStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verify:", "every 1h, 1% of each table per round", "verified:", "(1m30s ago), 2 tables, 2 differences in public.a; could not verify public.b"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	st.Spec.Verify, st.Verify = &proto.VerifySpec{Interval: proto.Duration(90 * time.Minute), Sample: "100%"}, proto.SummarizeVerify([]proto.VerifyRecord{{Table: "public.a", At: now}})
	b.Reset()
	if err := printStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "every 1h30m, 100% of each table per round") || !strings.Contains(b.String(), "1 tables, no differences") {
		t.Errorf("output:\n%s", b.String())
	}
	b.Reset()
	if err := printVerifyRecords(&b, []proto.VerifyRecord{{Table: "public.a", At: now, Rows: 10, Sample: &proto.VerifySample{Window: 4, Windows: 100}},
		{Table: "public.b", At: now, Sample: &proto.VerifySample{Windows: 1}}, {Table: "public.c", At: now}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SCOPE", "slice 5/100 (continuous)", "table (continuous)", "public.c  2026-12-06T10:00:00Z  table "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("--last lacks %q:\n%s", want, b.String())
		}
	}
}
