package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/coordinator/coordtest"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

const srcDSN = "postgres://repl:s3cret@127.0.0.1:5432/shop"

func taskYAML(name string) []byte {
	return []byte("name: " + name + `
source: { dsn: "` + srcDSN + `" }
destination: { type: test, dsn: "postgres://app:hunter2@127.0.0.1:5433/wh" }
sync: { schema: false }
objects:
  - schema: public
    tables: [orders]
`)
}

// syncBuffer is a log sink the server's goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	coord   *coordinator.Coordinator
	backend *coordtest.Backend
	client  *coordinator.Client
	url     string
	token   string
	logs    *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{coord: coordtest.New(t), backend: &coordtest.Backend{}, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(coordinator.NewAPI(e.coord, e.backend, coordinator.APIOptions{Logger: logger}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.token = coordtest.Token(t, e.coord, coordinator.ScopeAdmin)
	e.client = &coordinator.Client{BaseURL: srv.URL, Token: e.token}
	t.Cleanup(func() {
		for _, secret := range []string{"s3cret", "hunter2"} {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("a password reached the logs:\n%s", e.logs.String())
			}
		}
	})
	return e
}

func apiError(t *testing.T, err error, status int) *coordinator.APIError {
	t.Helper()
	var ae *coordinator.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an *APIError with status %d, got %v", status, err)
	}
	if ae.Status != status {
		t.Fatalf("status %d, want %d: %v", ae.Status, status, ae)
	}
	return ae
}

func TestCreateGetListDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	st, err := e.client.CreateTask(ctx, taskYAML("orders"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "orders" || st.Phase != proto.PhasePrecheck || st.State != proto.StatePending || st.CreatedAt.IsZero() {
		t.Fatalf("created: %+v", st)
	}
	if strings.Contains(st.Spec.Source.DSN, "s3cret") || !strings.Contains(st.Spec.Source.DSN, "xxxxx") ||
		strings.Contains(prototest.ConfigOf(&st.Spec).DSN, "hunter2") {
		t.Fatalf("the status shows a password: %+v", st.Spec)
	}
	if got := e.backend.Prechecked(); len(got) != 1 || got[0].Source.DSN != srcDSN {
		t.Fatalf("precheck got %+v, want the real DSN", got)
	}
	if task, _ := e.coord.Task("orders"); task.Spec.Source.DSN != srcDSN {
		t.Fatalf("stored DSN %q, want the real one", task.Spec.Source.DSN)
	}

	// Duplicate: 409, without running the precheck again.
	_, err = e.client.CreateTask(ctx, taskYAML("orders"))
	apiError(t, err, http.StatusConflict)
	if n := len(e.backend.Prechecked()); n != 1 {
		t.Fatalf("precheck ran %d times", n)
	}

	lat := int64(42)
	e.backend.SetLive("orders", coordinator.Live{LatencyMS: &lat, RowsApplied: 7, ThroughputRPS: 1.5, ConfirmedLSN: "0/16B3748"})
	// Progress comes from the replicated state: a finished table, and the
	// copied chunks of a plan's tables still loading.
	if err := e.coord.Apply(ctx, coordinator.MarkTablesCopied{Name: "orders", Tables: map[string]proto.LSN{"public\x00orders": 1}, Rows: 100}); err != nil {
		t.Fatal(err)
	}
	task, _ := e.coord.Task("orders")
	plan := coordinator.FullSyncPlan{Units: 2, TablesTotal: 3, RowsEstimated: 200, Tables: []coordinator.PlannedCopy{
		{Table: proto.TableID{Schema: "public", Name: "a"}, Chunks: []coordinator.PlannedChunk{{Unit: 0}, {Unit: 1}}},
		{Table: proto.TableID{Schema: "public", Name: "b"}, Chunks: []coordinator.PlannedChunk{{Unit: 1}}},
	}}
	if err := e.coord.Apply(ctx, coordinator.SetFullSyncPlan{Name: "orders", Epoch: task.Epoch, Plan: plan}); err != nil {
		t.Fatal(err)
	}
	task, _ = e.coord.Task("orders")
	for _, cmd := range []coordinator.Command{
		coordinator.MarkChunkCopied{Name: "orders", Plan: task.FullSync.ID, Table: 0, Chunk: 0, Rows: 30},
		coordinator.MarkChunkCopied{Name: "orders", Plan: task.FullSync.ID, Table: 0, Chunk: 1, Rows: 20},
		// Rows applied are the replicated total, not the node's live count.
		coordinator.ReportRowsApplied{Name: "orders", Unit: "apply/0", Epoch: 1, Start: 1, Rows: 7},
	} {
		if err := e.coord.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	st, err = e.client.GetTask(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := proto.FullProgress{RowsDone: 150, RowsEstimated: 200, TablesDone: 1, TablesTotal: 3}
	if st.Full != want || st.LatencyMS == nil || *st.LatencyMS != 42 || st.RowsApplied != 7 ||
		st.ThroughputRPS != 1.5 || st.ConfirmedLSN != "0/16B3748" {
		t.Fatalf("get: %+v", st)
	}
	_, err = e.client.GetTask(ctx, "nope")
	apiError(t, err, http.StatusNotFound)

	if _, err := e.client.CreateTask(ctx, taskYAML("customers")); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.ListTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "customers" || list[1].Name != "orders" {
		t.Fatalf("list: %+v", list)
	}

	if err := e.client.DeleteTask(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if got := e.backend.Cleaned(); len(got) != 1 || got[0].Name != "orders" || got[0].Source.DSN != srcDSN {
		t.Fatalf("cleanup got %+v, want the real spec", got)
	}
	if _, ok := e.coord.Task("orders"); ok {
		t.Fatal("task still stored after delete")
	}
	_, err = e.client.GetTask(ctx, "orders")
	apiError(t, err, http.StatusNotFound)
	apiError(t, e.client.DeleteTask(ctx, "orders"), http.StatusNotFound)

	// A deleted name can be used again.
	if _, err := e.client.CreateTask(ctx, taskYAML("orders")); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteBody(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client.CreateTask(context.Background(), taskYAML("orders")); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.url+"/api/v1/tasks/orders", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"deleted": "orders"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestDeleteCleanupFails(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.CreateTask(ctx, taskYAML("orders")); err != nil {
		t.Fatal(err)
	}
	e.backend.SetCleanupErr(errors.New("cannot reach postgres://repl:s3cret@127.0.0.1:5432/shop: connection refused"))
	ae := apiError(t, e.client.DeleteTask(ctx, "orders"), http.StatusBadGateway)
	if !strings.Contains(ae.Message, "connection refused") || strings.Contains(ae.Message, "s3cret") {
		t.Fatalf("message %q: want the cause, without the password", ae.Message)
	}
	task, ok := e.coord.Task("orders")
	if !ok || !task.Deleting {
		t.Fatalf("after a failed cleanup the task must stay, marked Deleting: %v %+v", ok, task)
	}
	// The user fixes the cause and deletes again.
	e.backend.SetCleanupErr(nil)
	if err := e.client.DeleteTask(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.coord.Task("orders"); ok {
		t.Fatal("task still there after the retried delete")
	}
}

func TestCreateBadSpec(t *testing.T) {
	e := newEnv(t)
	bad := bytes.Replace(taskYAML("orders"), []byte("{ dsn:"), []byte("{ dsnn:"), 1)
	_, err := e.client.CreateTask(context.Background(), bad)
	ae := apiError(t, err, http.StatusBadRequest)
	if !strings.Contains(ae.Message, "source.dsnn") {
		t.Fatalf("message %q does not name the field", ae.Message)
	}
	_, err = e.client.CreateTask(context.Background(), []byte("name: Bad Name\n"))
	ae = apiError(t, err, http.StatusBadRequest)
	if !strings.Contains(ae.Message, "name:") {
		t.Fatalf("message %q does not name the field", ae.Message)
	}
	if len(e.backend.Prechecked()) != 0 || len(e.coord.Tasks()) != 0 {
		t.Fatal("a bad spec reached the precheck or the state")
	}
}

func TestCreatePrecheckFails(t *testing.T) {
	e := newEnv(t)
	e.backend.SetPrecheckErr(&proto.PrecheckError{Problems: []proto.Problem{
		{Check: "source.wal_level", Message: "wal_level is replica", Fix: "set wal_level = logical and restart"},
		{Check: "source.replica_identity", Message: "public.nokey has no primary key", Fix: "ALTER TABLE public.nokey REPLICA IDENTITY FULL"},
	}})
	_, err := e.client.CreateTask(context.Background(), taskYAML("orders"))
	ae := apiError(t, err, http.StatusUnprocessableEntity)
	if len(ae.Problems) != 2 || ae.Problems[0].Check != "source.wal_level" {
		t.Fatalf("problems: %+v", ae.Problems)
	}
	msg := err.Error()
	for _, want := range []string{"precheck failed", "\n  - source.wal_level: wal_level is replica", "\n    fix: set wal_level = logical", "REPLICA IDENTITY FULL"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error text lacks %q:\n%s", want, msg)
		}
	}
	if len(e.coord.Tasks()) != 0 {
		t.Fatal("a task was stored despite the failed precheck")
	}

	// Checks that could not run are the server's trouble, not the spec's.
	e.backend.SetPrecheckRunErr(errors.New("dial postgres://repl:s3cret@127.0.0.1:5432/shop: timeout"))
	_, err = e.client.CreateTask(context.Background(), taskYAML("orders"))
	ae = apiError(t, err, http.StatusBadGateway)
	if strings.Contains(ae.Message, "s3cret") {
		t.Fatalf("message shows the password: %q", ae.Message)
	}
	if len(e.coord.Tasks()) != 0 {
		t.Fatal("a task was stored despite the failed precheck")
	}
}

// Warnings block a create until acknowledged by id; failures cannot be
// acknowledged. The precheck endpoint reports every check and creates
// nothing.
func TestPrecheckWarningsAndIgnore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.backend.SetPrecheckErr(&proto.PrecheckError{Problems: []proto.Problem{
		{Check: "destination.conflicting_tables", Result: proto.ResultWarning, Message: "public.orders exists"},
	}})
	report, err := e.client.Precheck(ctx, taskYAML("orders"))
	if err != nil || report.Passed || len(report.Checks) != 2 || report.Checks[0].Result != proto.ResultPass {
		t.Fatalf("precheck: %+v %v", report, err)
	}
	report, err = e.client.Precheck(ctx, taskYAML("orders"), "destination.conflicting_tables")
	if err != nil || !report.Passed || len(report.Ignored) != 1 {
		t.Fatalf("precheck with the warning acknowledged: %+v %v", report, err)
	}
	if len(e.coord.Tasks()) != 0 {
		t.Fatal("the precheck endpoint created a task")
	}
	_, err = e.client.CreateTask(ctx, taskYAML("orders"))
	ae := apiError(t, err, http.StatusUnprocessableEntity)
	if !strings.Contains(err.Error(), "--ignore destination.conflicting_tables") || len(ae.Problems) != 1 {
		t.Fatalf("unacknowledged warning: %v", err)
	}
	if _, err := e.client.CreateTask(ctx, taskYAML("orders"), "destination.conflicting_tables"); err != nil {
		t.Fatalf("create with the warning acknowledged: %v", err)
	}

	e.backend.SetPrecheckErr(&proto.PrecheckError{Problems: []proto.Problem{{Check: "source.wal_level", Message: "wal_level is replica"}}})
	_, err = e.client.CreateTask(ctx, taskYAML("other"), "source.wal_level")
	apiError(t, err, http.StatusUnprocessableEntity)
}

// A running task takes new retry windows, alerts, throttle and verify
// block from its spec; any other change is refused, naming the field.
func TestUpdateTaskSettings(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.CreateTask(ctx, taskYAML("orders")); err != nil {
		t.Fatal(err)
	}
	updated := append(taskYAML("orders"), []byte("retry: { connection: 60m, other: 5m }\nalerts: { webhook: \"http://127.0.0.1:9/hook\" }\nverify: { interval: 2h, sample: 5% }\n")...)
	st, err := e.client.UpdateTask(ctx, "orders", updated)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec.Retry.ConnectionRetry() != time.Hour || st.Spec.Alerts == nil || st.Spec.Verify == nil || st.Spec.Verify.Every() != 2*time.Hour {
		t.Fatalf("settings not applied: %+v", st.Spec)
	}
	if task, _ := e.coord.Task("orders"); task.Spec.Retry.OtherRetry() != 5*time.Minute || task.Spec.Verify.Sample != "5%" {
		t.Fatalf("stored settings: %+v %+v", task.Spec.Retry, task.Spec.Verify)
	}
	// Continuous verification is turned off as it was turned on.
	if st, err = e.client.UpdateTask(ctx, "orders", taskYAML("orders")); err != nil || st.Spec.Verify != nil {
		t.Fatalf("verify block removed: %+v %v", st, err)
	}
	changed := bytes.Replace(taskYAML("orders"), []byte("schema: public"), []byte("schema: other"), 1)
	_, err = e.client.UpdateTask(ctx, "orders", changed)
	if ae := apiError(t, err, http.StatusConflict); !strings.Contains(ae.Message, "tables can be added and removed once the task is incremental") {
		t.Fatalf("objects changed: %v", err)
	}
	_, err = e.client.UpdateTask(ctx, "orders", taskYAML("other"))
	apiError(t, err, http.StatusBadRequest)
}

func TestBodyLimitAndHealth(t *testing.T) {
	e := newEnv(t)
	big := append(taskYAML("orders"), bytes.Repeat([]byte("# padding\n"), 120_000)...)
	_, err := e.client.CreateTask(context.Background(), big)
	apiError(t, err, http.StatusRequestEntityTooLarge)

	get := func(path string) (int, string) {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	// Alive from the start; not ready before the node is registered with
	// the cluster.
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not registered") || !strings.Contains(body, `"ready": false`) {
		t.Fatalf("readyz before registration: %d %q", code, body)
	}
	err = e.coord.Apply(context.Background(), coordinator.RegisterNode{Node: coordinator.Node{ID: e.coord.NodeID(), API: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready": true`) || !strings.Contains(body, `"leader": "node1"`) {
		t.Fatalf("readyz: %d %q", code, body)
	}
	if !strings.Contains(e.logs.String(), "path=/healthz") {
		t.Fatalf("request not logged at debug:\n%s", e.logs.String())
	}
}

func TestAPIErrorText(t *testing.T) {
	e := &coordinator.APIError{Status: 422, Message: "precheck failed", Problems: []proto.Problem{
		{Check: "a", Message: "m1", Fix: "f1"}, {Check: "b", Message: "m2"},
	}}
	want := "precheck failed\n  - a: m1\n    fix: f1\n  - b: m2"
	if e.Error() != want {
		t.Fatalf("got %q, want %q", e.Error(), want)
	}
}

func TestClientNonAPIError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway from a proxy", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := (&coordinator.Client{BaseURL: srv.URL}).ListTasks(context.Background())
	ae := apiError(t, err, http.StatusBadGateway)
	if !strings.Contains(ae.Message, "bad gateway from a proxy") {
		t.Fatalf("message %q", ae.Message)
	}
	_, err = (&coordinator.Client{BaseURL: "http://127.0.0.1:1"}).ListTasks(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("unreachable server: %v", err)
	}
	// The address once: not again in the transport's own words.
	if n := strings.Count(err.Error(), "127.0.0.1:1"); n != 1 || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("unreachable server named %d times, or without its cause: %v", n, err)
	}
}

// --fix reaches the backend's precheck (?fix=true, beside the warnings
// acknowledged), and a create's answer lists what it ran; without it,
// nothing is fixed.
func TestCreateAndPrecheckWithFix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := e.client.CreateTask(ctx, taskYAML("plain"))
	if err != nil || st.Fixed != nil {
		t.Fatalf("create without --fix: %+v %v", st, err)
	}
	st, err = e.client.CreateTaskWith(ctx, taskYAML("fixed"), coordinator.CheckOptions{Fix: true, Ignore: []string{"a"}})
	if err != nil || len(st.Fixed) != 1 || st.Fixed[0] != "ALTER TABLE public.fake REPLICA IDENTITY FULL" {
		t.Fatalf("create --fix: %+v %v", st, err)
	}
	report, err := e.client.PrecheckWith(ctx, taskYAML("other"), coordinator.CheckOptions{Fix: true})
	if err != nil || len(report.Fixed) != 1 {
		t.Fatalf("precheck --fix: %+v %v", report, err)
	}
	if got := e.backend.Fixes(); len(got) != 3 || got[0] || !got[1] || !got[2] {
		t.Fatalf("the backend was asked to fix: %v", got)
	}
}
