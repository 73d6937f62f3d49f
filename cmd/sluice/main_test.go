package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/coordinator/coordtest"
	"github.com/sluicedb/sluice/internal/clientconfig"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

const spec = `name: orders
source: { dsn: "postgres://repl:s3cret@127.0.0.1:5432/shop" }
destination: { type: postgres, dsn: "postgres://app:pw@127.0.0.1:5433/wh" }
objects: [{ schema: public }]
`

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string {
			if v, ok := env[k]; ok || k != "XDG_CONFIG_HOME" {
				return v
			}
			return testConfigHome(t)
		},
		up: func(context.Context, node.Config) error {
			t.Fatal("node.Up must not run here")
			return nil
		},
	}
	code := a.run(context.Background(), args)
	return result{code, out.String(), errOut.String()}
}

// server runs the real API on a real one-voter coordinator, with a fake
// node behind it.
func server(t *testing.T) (string, *coordtest.Backend) {
	url, b, _ := serverWithCoordinator(t)
	return url, b
}

func serverWithCoordinator(t *testing.T) (string, *coordtest.Backend, *coordinator.Coordinator) {
	t.Helper()
	b := &coordtest.Backend{}
	c := coordtest.New(t)
	srv := httptest.NewServer(coordinator.NewAPI(c, b, coordinator.APIOptions{}))
	t.Cleanup(srv.Close)
	token := coordtest.Token(t, c, coordinator.ScopeAdmin)
	if err := clientconfig.Upsert(filepath.Join(testConfigHome(t), "sluice", "config.yaml"), clientconfig.Entry{URLs: []string{srv.URL}, Token: token}); err != nil {
		t.Fatal(err)
	}
	return srv.URL, b, c
}

var (
	configHomeOnce sync.Once
	configHome     string
)

// testConfigHome is the XDG_CONFIG_HOME the CLI runs with in these tests
// (unless a test's environment sets one): the client config there has an
// entry with a token for every test server.
func testConfigHome(t *testing.T) string {
	configHomeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-cli-config-")
		if err != nil {
			t.Fatal(err)
		}
		configHome = dir
	})
	return configHome
}

func TestTaskCommands(t *testing.T) {
	url, backend, coord := serverWithCoordinator(t)
	file := filepath.Join(t.TempDir(), "task.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, nil, "", "task", "create", "-f", file, "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "task orders created (phase precheck, state pending)") {
		t.Fatalf("create: %+v", r)
	}
	// Same name from stdin, server from the environment: 409, exit 1.
	r = runCLI(t, map[string]string{"SLUICE_SERVER": url}, spec, "task", "create", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, `task "orders" already exists`) {
		t.Fatalf("duplicate: %+v", r)
	}

	lat := int64(120)
	backend.SetLive("orders", coordinator.Live{LatencyMS: &lat, RowsApplied: 9, ThroughputRPS: 3.25})
	// A full sync 250 rows of 1000 in, over 4 tables.
	task, _ := coord.Task("orders")
	plan := coordinator.FullSyncPlan{Units: 1, TablesTotal: 4, RowsEstimated: 1000, Tables: []coordinator.PlannedCopy{
		{Table: proto.TableID{Schema: "public", Name: "orders"}, Chunks: []coordinator.PlannedChunk{{}, {}}},
	}}
	ctx := context.Background()
	if err := coord.Apply(ctx, coordinator.SetFullSyncPlan{Name: "orders", Epoch: task.Epoch, Plan: plan}); err != nil {
		t.Fatal(err)
	}
	task, _ = coord.Task("orders")
	if err := coord.Apply(ctx, coordinator.MarkChunkCopied{Name: "orders", Plan: task.FullSync.ID, Rows: 250}); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "", "task", "get", "orders", "--server", url)
	if r.code != 0 {
		t.Fatalf("get: %+v", r)
	}
	for _, want := range []string{"name:", "orders", "phase:", "precheck", "250/1000 rows (25.0%)", "0/4", "120 ms", "3.2 rows/s", "last error:", "repl:xxxxx@"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "s3cret") {
		t.Errorf("get shows the password:\n%s", r.stdout)
	}

	r = runCLI(t, nil, "", "task", "get", "orders", "-o", "json", "--server", url)
	var st proto.TaskStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Name != "orders" || st.Full.RowsDone != 250 {
		t.Fatalf("get -o json: %v %+v", err, r)
	}

	r = runCLI(t, nil, "", "task", "list", "--server", url)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("list: %+v", r)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME PHASE STATE FULL LATENCY ERROR" {
		t.Fatalf("list header: %q", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "orders precheck pending 25% 120ms -" {
		t.Fatalf("list row: %q", lines[1])
	}
	if strings.Index(lines[0], "PHASE") != strings.Index(lines[1], "precheck") {
		t.Fatalf("list columns not aligned:\n%s", r.stdout)
	}

	r = runCLI(t, nil, "", "task", "list", "-o", "json", "--server", url)
	var list []proto.TaskStatus
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("list -o json: %v %+v", err, r)
	}

	r = runCLI(t, nil, "", "task", "delete", "orders", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "task orders deleted") {
		t.Fatalf("delete: %+v", r)
	}
	r = runCLI(t, nil, "", "task", "get", "orders", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("get after delete: %+v", r)
	}
}

func TestTaskCreatePrecheckProblems(t *testing.T) {
	url, backend := server(t)
	backend.SetPrecheckErr(&proto.PrecheckError{Problems: []proto.Problem{
		{Check: "source.wal_level", Message: "wal_level is replica", Fix: "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"},
	}})
	r := runCLI(t, nil, spec, "task", "create", "-f", "-", "--server", url)
	if r.code != 1 {
		t.Fatalf("exit code %d: %+v", r.code, r)
	}
	want := "Error: precheck failed: nothing was created\n  - source.wal_level: wal_level is replica\n    fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL\n"
	if r.stderr != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
}

func TestPrecheckCommand(t *testing.T) {
	url, backend := server(t)
	backend.SetPrecheckErr(&proto.PrecheckError{Problems: []proto.Problem{
		{Check: "destination.conflicting_tables", Result: proto.ResultWarning, Message: "public.orders exists", Fix: "drop it"},
	}})
	r := runCLI(t, nil, spec, "precheck", "-f", "-", "--server", url)
	if r.code != 1 || !strings.Contains(r.stdout, "PASS     source.connect") ||
		!strings.Contains(r.stdout, "WARNING  destination.conflicting_tables: public.orders exists\n         fix: drop it") ||
		!strings.Contains(r.stderr, "--ignore CHECK") {
		t.Fatalf("precheck with a warning: %+v", r)
	}
	r = runCLI(t, nil, spec, "precheck", "-f", "-", "--ignore", "destination.conflicting_tables", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "IGNORED  destination.conflicting_tables") || !strings.Contains(r.stdout, "precheck passed") {
		t.Fatalf("precheck with the warning acknowledged: %+v", r)
	}
	r = runCLI(t, nil, spec, "precheck", "-f", "-", "-o", "json", "--server", url)
	var report proto.PrecheckReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || report.Passed || len(report.Checks) != 2 {
		t.Fatalf("precheck -o json: %v %+v", err, r)
	}
	r = runCLI(t, nil, spec, "task", "create", "-f", "-", "--ignore", "destination.conflicting_tables", "--server", url)
	if r.code != 0 {
		t.Fatalf("create with the warning acknowledged: %+v", r)
	}
}

func TestTaskUpdateFromFile(t *testing.T) {
	url, _ := server(t)
	if r := runCLI(t, nil, spec, "task", "create", "-f", "-", "--server", url); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	r := runCLI(t, nil, spec+"retry: { connection: 60m, other: 5m }\n", "task", "update", "orders", "-f", "-", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "task orders updated: retry connection 1h0m0s, other 5m0s") {
		t.Fatalf("update -f: %+v", r)
	}
	r = runCLI(t, nil, strings.Replace(spec, "schema: public", "schema: sales", 1), "task", "update", "orders", "-f", "-", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "tables can be added and removed once the task is incremental") {
		t.Fatalf("update -f with other objects: %+v", r)
	}
	if r = runCLI(t, nil, "", "task", "update", "orders", "--server", url); r.code != 1 || !strings.Contains(r.stderr, "give either -f") {
		t.Fatalf("update without a change: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"task", "create"},                 // -f is required
		{"task", "get"},                    // NAME is required
		{"task", "list", "-o", "yaml"},     // unknown format
		{"up", "--log-level", "loud"},      // bad level
		{"up", "--log-format", "xml"},      // bad format
		{"nosuch"},                         // unknown command
		{"task", "list", "--server", "::"}, // not a URL
	} {
		r := runCLI(t, nil, "", args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: ") {
			t.Errorf("%v: %+v", args, r)
		}
	}
}

func TestUp(t *testing.T) {
	var got node.Config
	var errOut bytes.Buffer
	a := &app{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" },
		up: func(ctx context.Context, cfg node.Config) error {
			got = cfg
			cfg.Logger.Debug("visible at debug")
			return nil
		}}
	if code := a.run(context.Background(), []string{"up"}); code != 0 {
		t.Fatalf("up: exit %d: %s", code, errOut.String())
	}
	if got.DataDir != "./sluice-data" || got.Listen != "127.0.0.1:7420" || got.RaftListen != "" || got.Logger == nil {
		t.Fatalf("defaults: %+v", got)
	}
	if errOut.Len() != 0 {
		t.Fatalf("debug logged at the default level: %s", errOut.String())
	}

	code := a.run(context.Background(), []string{"up", "--data-dir", "/tmp/d", "--listen", "127.0.0.1:9000",
		"--raft-listen", "127.0.0.1:9100", "--log-level", "debug", "--log-format", "json"})
	if code != 0 || got.DataDir != "/tmp/d" || got.Listen != "127.0.0.1:9000" || got.RaftListen != "127.0.0.1:9100" {
		t.Fatalf("flags: exit %d, %+v", code, got)
	}
	var rec map[string]any
	if err := json.Unmarshal(errOut.Bytes(), &rec); err != nil || rec["msg"] != "visible at debug" {
		t.Fatalf("json debug log: %v %q", err, errOut.String())
	}

	// Stopped by a signal, Up's context error is the graceful path.
	ctx, cancel := context.WithCancel(context.Background())
	a.up = func(ctx context.Context, _ node.Config) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	if code := a.run(ctx, []string{"up"}); code != 0 {
		t.Fatalf("signal stop: exit %d", code)
	}
	a.up = func(context.Context, node.Config) error {
		return errors.New("listen on 127.0.0.1:7420: address in use")
	}
	errOut.Reset()
	if code := a.run(context.Background(), []string{"up"}); code != 1 || !strings.Contains(errOut.String(), "address in use") {
		t.Fatalf("failure: exit %d, %q", code, errOut.String())
	}
}

func TestPrintStatusError(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	st := &proto.TaskStatus{Name: "x", Phase: proto.PhaseIncremental, State: proto.StateRetrying, Adding: []string{"public.b"},
		LastError: &proto.TaskError{Kind: proto.ErrorConnection, Message: "dial tcp:\nrefused", At: now, RetryUntil: now.Add(90 * time.Minute)}}
	var b bytes.Buffer
	if err := printStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"last error:", "connection: dial tcp: refused", "retry until:", "(in 1h30m0s)", "latency:", "-", "adding:", "public.b (copying"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

// A two-way task shows both directions and its conflicts.
func TestPrintStatusTwoWay(t *testing.T) {
	ms := int64(12)
	st := &proto.TaskStatus{Name: "ab", Phase: proto.PhaseIncremental, State: proto.StateFailed, TwoWay: &proto.TwoWayStatus{
		Policy:    proto.ConflictTaskFailed,
		Forward:   proto.DirectionStatus{Task: "ab", Phase: proto.PhaseIncremental, State: proto.StateRunning, LatencyMS: &ms, RowsApplied: 7},
		Reverse:   proto.DirectionStatus{Task: "ab__r", Phase: proto.PhaseIncremental, State: proto.StateFailed, LastError: &proto.TaskError{Message: "insert_exists on key {\"id\":\"600\"}"}},
		Conflicts: []proto.ConflictCount{{Direction: "reverse", Kind: "insert_exists", Resolution: "failed", Count: 1}},
	}}
	var b bytes.Buffer
	if err := printStatus(&b, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"two-way:", "conflicts: task_failed", "forward:", "incremental running, latency 12 ms, 7 rows applied",
		"reverse:", "incremental failed", `insert_exists on key {"id":"600"}`, "reverse insert_exists -> failed: 1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, nil, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "sluice ") {
		t.Fatalf("%+v", r)
	}
}

// The CLI's token: the flag, the file, the environment, then the client
// config's entry for the server; a server without one gets a 401 that says
// how to give one.
func TestTokenResolution(t *testing.T) {
	url, _, coord := serverWithCoordinator(t)
	token := coordtest.Token(t, coord, coordinator.ScopeRead)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir() // a client config home without this server
	for name, c := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"flag":              {map[string]string{"XDG_CONFIG_HOME": empty}, []string{"--token", token}},
		"file":              {map[string]string{"XDG_CONFIG_HOME": empty}, []string{"--token-file", file}},
		"SLUICE_TOKEN":      {map[string]string{"XDG_CONFIG_HOME": empty, "SLUICE_TOKEN": token}, nil},
		"SLUICE_TOKEN_FILE": {map[string]string{"XDG_CONFIG_HOME": empty, "SLUICE_TOKEN_FILE": file}, nil},
		"client config":     {nil, nil},
	} {
		r := runCLI(t, c.env, "", append([]string{"task", "list", "--server", url}, c.args...)...)
		if r.code != 0 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	r := runCLI(t, map[string]string{"XDG_CONFIG_HOME": empty}, "", "task", "list", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "needs an API token") {
		t.Errorf("no token: %+v", r)
	}
	r = runCLI(t, map[string]string{"XDG_CONFIG_HOME": empty}, "", "task", "delete", "x", "--server", url, "--token", token)
	if r.code != 1 || !strings.Contains(r.stderr, "needs admin") {
		t.Errorf("read token deleting: %+v", r)
	}
}

func TestTokenCommands(t *testing.T) {
	url, _, _ := serverWithCoordinator(t)
	r := runCLI(t, nil, "", "token", "create", "--scope", "read", "--name", "grafana", "--server", url)
	tok := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(tok, "sluice_") || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("create: %+v", r)
	}
	empty := map[string]string{"XDG_CONFIG_HOME": t.TempDir()}
	if r := runCLI(t, empty, "", "task", "list", "--server", url, "--token", tok); r.code != 0 {
		t.Fatalf("the new token: %+v", r)
	}
	r = runCLI(t, nil, "", "token", "list", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "grafana") || strings.Contains(r.stdout, tok) {
		t.Fatalf("list: %+v", r)
	}
	id := strings.Split(tok, "_")[1]
	if r := runCLI(t, nil, "", "token", "revoke", id, "--server", url); r.code != 0 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("revoke: %+v", r)
	}
	if r := runCLI(t, empty, "", "task", "list", "--server", url, "--token", tok); r.code != 1 || !strings.Contains(r.stderr, "not valid") {
		t.Fatalf("revoked token: %+v", r)
	}
	if r := runCLI(t, nil, "", "token", "create", "--scope", "root", "--server", url); r.code != 1 || !strings.Contains(r.stderr, "read or admin") {
		t.Fatalf("bad scope: %+v", r)
	}
}
