package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// webhook collects the alerts POSTed to it.
type webhook struct {
	mu     sync.Mutex
	alerts []node.Alert
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a node.Alert
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.alerts = append(h.alerts, a)
	h.mu.Unlock()
}

// wait waits for an alert of kind in state, and returns it.
func (h *webhook) wait(t *testing.T, kind, state string, timeout time.Duration) node.Alert {
	t.Helper()
	var got node.Alert
	testenv.CheckFor(t, timeout, 100*time.Millisecond, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, a := range h.alerts {
			if a.Alert == kind && a.State == state {
				got = a
				return nil
			}
		}
		return fmt.Errorf("no %s %s alert among %d", kind, state, len(h.alerts))
	})
	return got
}

// Alerts reach the webhook as JSON: latency held above its threshold
// (the apply throttled to a crawl) and back under it, the slot's retained
// WAL over its limit, and the task failing (the source gone past its
// retry window) and running again. /metrics shows the task's state, its
// retained WAL and the alerts holding.
func TestAlertsAndMetrics(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE watched (id int PRIMARY KEY, v text); INSERT INTO watched VALUES (1, 'a')`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{RetryMinute: time.Second, MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}})
	c := n.Client()
	createTask(t, c, taskYAML("watched", p, fmt.Sprintf(`retry: { connection: 10m, other: 5m }
throttle: { incremental: { rps: 2 } }
alerts:
  webhook: %s/hook?token=secret
  latency: { above: 1s, for: 1s }
  retained_wal: 1B
`, srv.URL)))
	waitPhase(t, c, "watched", proto.PhaseIncremental, time.Minute)

	// 60 rows at 2 rows/s hold the heartbeats behind them.
	testenv.MustExec(t, src, `INSERT INTO watched SELECT g, 'x' FROM generate_series(2, 61) g`)
	fired := hook.wait(t, "latency", "firing", time.Minute)
	if fired.Task != "watched" || fired.Value <= 1 || fired.Threshold != 1 || fired.Node == "" {
		t.Fatalf("latency alert: %+v", fired)
	}
	hook.wait(t, "retained_wal", "firing", time.Minute)
	metrics := scrape(t, n.URL, n.Token)
	for _, want := range []string{`sluice_task_state{phase="incremental",state="running",task="watched"} 1`,
		`sluice_task_alert_firing{alert="latency",task="watched"} 1`, `sluice_task_slot_retained_wal_bytes{task="watched"}`,
		`sluice_node_is_leader 1`, `sluice_task_full_tables_done{task="watched"} 1`, `sluice_task_apply_bytes_per_second{task="watched"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, err := c.SetThrottle(ctx, "watched", nil); err != nil {
		t.Fatal(err)
	}
	hook.wait(t, "latency", "resolved", time.Minute)
	waitEqual(t, p, []string{"public.watched"}, time.Minute)

	// The source gone for longer than the (10 s here) retry window.
	if err := p.src.Stop(); err != nil {
		t.Fatal(err)
	}
	failed := hook.wait(t, "failed", "firing", time.Minute)
	if failed.Severity != "critical" || !strings.Contains(failed.Message, "the task failed") {
		t.Fatalf("failure alert: %+v", failed)
	}
	if err := p.src.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResumeTask(ctx, "watched"); err != nil {
		t.Fatal(err)
	}
	hook.wait(t, "failed", "resolved", time.Minute)
}

func scrape(t *testing.T, url, token string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	return string(b)
}
