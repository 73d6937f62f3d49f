package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// task cutover against the real API with a fake node: the refusals (with
// their HTTP status and exit code), the wait sent, the report printed as
// a table and as JSON, and a sequence that could not be set failing the
// command.
func TestTaskCutoverCommand(t *testing.T) {
	url, backend, coord := serverWithCoordinator(t)
	file := filepath.Join(t.TempDir(), "task.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client, err := (&app{getenv: func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return testConfigHome(t)
		}
		return ""
	}}).client(&taskFlags{server: url})
	if err != nil {
		t.Fatal(err)
	}
	status := func(err error) int {
		var apiErr *coordinator.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("want an API error, got %v", err)
		}
		return apiErr.Status
	}

	r := runCLI(t, nil, "", "task", "cutover", "nosuch", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, `task "nosuch" not found`) {
		t.Fatalf("unknown task: %+v", r)
	}
	if _, err := client.Cutover(ctx, "nosuch", 0); status(err) != 404 {
		t.Fatalf("unknown task: %v", err)
	}

	if r := runCLI(t, nil, "", "task", "create", "-f", file, "--server", url); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	task, _ := coord.Task("orders")
	if err := coord.Apply(ctx, coordinator.SetTaskStatus{Name: "orders", Epoch: task.Epoch, Phase: proto.PhaseFull, State: proto.StateRunning}); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "", "task", "cutover", "orders", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, `task "orders" is in phase full, not incremental yet`) {
		t.Fatalf("full sync: %+v", r)
	}
	if _, err := client.Cutover(ctx, "orders", 0); status(err) != 409 {
		t.Fatalf("full sync: %v", err)
	}
	if len(backend.CutoverWaits()) != 0 {
		t.Fatal("the node was asked to cut over a task in full sync")
	}
	if err := coord.Apply(ctx, coordinator.SetTaskStatus{Name: "orders", Epoch: task.Epoch, Phase: proto.PhaseIncremental, State: proto.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Cutover(ctx, "orders", 10*time.Minute); status(err) != 400 {
		t.Fatalf("too long a wait: %v", err)
	}
	if r := runCLI(t, nil, "", "task", "cutover", "orders", "--timeout", "10m", "--server", url); r.code != 1 || !strings.Contains(r.stderr, "between 1s and 4m0s") {
		t.Fatalf("too long a wait: %+v", r)
	}

	// What was behind, when the task does not catch up in time.
	backend.SetCutover(nil, fmt.Errorf("%w: apply_2 has applied the stream up to message 7 of 9", coordinator.ErrCutoverTimeout))
	r = runCLI(t, nil, "", "task", "cutover", "orders", "--timeout", "2s", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "apply_2 has applied the stream up to message 7 of 9") {
		t.Fatalf("timeout: %+v", r)
	}
	if _, err := client.Cutover(ctx, "orders", 2*time.Second); status(err) != 504 {
		t.Fatalf("timeout: %v", err)
	}

	st := func(v int64, called bool) *proto.SequenceState {
		return &proto.SequenceState{LastValue: v, IsCalled: called}
	}
	report := &proto.CutoverReport{Task: "orders", SourceLSN: "0/3A1B2C8", WaitedMS: 1234, Steps: []string{"sequences"}, Sequences: []proto.CutoverSequence{
		{Source: "public.rental_rental_id_seq", Destination: "public.rental_rental_id_seq", SourceValue: st(24881, true), Before: st(16049, true), After: st(24881, true)},
		{Source: "public.fresh_seq", Destination: "copy.fresh_seq", SourceValue: st(1, false), Before: st(1, false), After: st(1, false)},
	}}
	backend.SetCutover(report, nil)
	r = runCLI(t, nil, "", "task", "cutover", "orders", "--server", url)
	if r.code != 0 {
		t.Fatalf("cutover: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := [][]string{
		{"task", "orders", "caught", "up", "with", "the", "source's", "WAL", "position", "0/3A1B2C8", "in", "1.2s"},
		{"SEQUENCE", "SOURCE", "BEFORE", "AFTER"},
		{"public.rental_rental_id_seq", "24881", "16049", "24881"},
		{"public.fresh_seq", "->", "copy.fresh_seq", "1*", "1*", "1*"},
		{"*", "not", "handed", "out", "yet:", "the", "next", "nextval", "returns", "this", "value"},
	}
	if len(lines) != len(want) {
		t.Fatalf("cutover output:\n%s", r.stdout)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d: %q, want %q", i, lines[i], strings.Join(w, " "))
		}
	}
	if strings.Index(lines[1], "SOURCE") != strings.Index(lines[2], "24881") {
		t.Errorf("columns not aligned:\n%s", r.stdout)
	}
	if waits := backend.CutoverWaits(); waits[len(waits)-1] != coordinator.DefaultCutoverWait {
		t.Errorf("default wait %v", waits)
	}

	r = runCLI(t, nil, "", "task", "cutover", "orders", "-o", "json", "--timeout", "90s", "--server", url)
	var got proto.CutoverReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("-o json: %v %+v", err, r)
	}
	if fmt.Sprint(got.Sequences[0].SourceValue, got.Sequences[0].Before, got.Sequences[0].After) != "24881 16049 24881" || got.SourceLSN != "0/3A1B2C8" {
		t.Fatalf("-o json: %+v", got)
	}
	if waits := backend.CutoverWaits(); waits[len(waits)-1] != 90*time.Second {
		t.Errorf("--timeout 90s sent %v", waits)
	}

	// A sequence that could not be set fails the command, after the report.
	report.Sequences = append(report.Sequences, proto.CutoverSequence{Source: "public.gone_seq", Destination: "public.gone_seq", SourceValue: st(5, true), Error: "missing at the destination"})
	backend.SetCutover(report, nil)
	r = runCLI(t, nil, "", "task", "cutover", "orders", "--server", url)
	if r.code != 1 || !strings.Contains(r.stdout, "error: missing at the destination") || !strings.Contains(r.stderr, "1 of the task's sequences could not be set: public.gone_seq") {
		t.Fatalf("failed sequence: %+v", r)
	}

	// Paused: resume first.
	if r := runCLI(t, nil, "", "task", "pause", "orders", "--server", url); r.code != 0 {
		t.Fatalf("pause: %+v", r)
	}
	if r := runCLI(t, nil, "", "task", "cutover", "orders", "--server", url); r.code != 1 || !strings.Contains(r.stderr, "is paused: resume it") {
		t.Fatalf("paused: %+v", r)
	}
}
