package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/coordinator/coordtest"
)

// A write that finds no coordinator leader waits for one instead of
// failing; past the bound it is answered 503, saying no leader was
// elected and which voters are out of reach, and nothing is applied;
// /readyz says 503 meanwhile, 200 with the leader before and after.
// Two real voters: node1 leads alone, node2 joins, then node2 stops
// (node1 alone has no majority) and comes back.
func TestWritesWaitForALeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	backend := &coordtest.Backend{}
	node1 := coordtest.New(t)
	api1 := httptest.NewServer(coordinator.NewAPI(node1, backend, coordinator.APIOptions{}))
	t.Cleanup(api1.Close)
	short := httptest.NewServer(coordinator.NewAPI(node1, backend, coordinator.APIOptions{LeaderWait: time.Second}))
	t.Cleanup(short.Close)
	token := coordtest.Token(t, node1, coordinator.ScopeAdmin)

	// node2 keeps its Raft address and its API URL across its restart.
	raft2, dir2 := freeAddr(t), t.TempDir()
	var h2 atomic.Pointer[http.Handler]
	api2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h2.Load()).ServeHTTP(w, r) }))
	t.Cleanup(api2.Close)
	open2 := func() *coordinator.Coordinator {
		c, err := coordinator.Open(coordinator.Config{NodeID: "node2", DataDir: dir2, BindAddr: raft2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Shutdown() })
		h := coordinator.NewAPI(c, backend, coordinator.APIOptions{})
		h2.Store(&h)
		return c
	}
	node2 := open2()
	if err := node1.Join(ctx, "node2", raft2, true); err != nil {
		t.Fatal(err)
	}
	for id, url := range map[string]string{"node1": api1.URL, "node2": api2.URL} {
		if err := node1.Apply(ctx, coordinator.RegisterNode{Node: coordinator.Node{ID: id, API: strings.TrimPrefix(url, "http://")}}); err != nil {
			t.Fatal(err)
		}
	}
	if rd := readyz(t, api1.URL, http.StatusOK); !rd.Ready || rd.Leader != "node1" {
		t.Fatalf("readyz with a leader: %+v", rd)
	}

	if err := node2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		if l := node1.Leader(); l != "" {
			return fmt.Errorf("node1 still sees leader %q", l)
		}
		return nil
	})
	if rd := readyz(t, api1.URL, http.StatusServiceUnavailable); rd.Ready || !strings.Contains(rd.Reason, "no coordinator leader") {
		t.Fatalf("readyz without a leader: %+v", rd)
	}
	// Reads answer at once from local state.
	if _, err := (&coordinator.Client{BaseURL: api1.URL, Token: token}).ListTasks(ctx); err != nil {
		t.Fatalf("a read without a leader: %v", err)
	}

	// Past the bound: 503, not applied, with the reason.
	_, err := (&coordinator.Client{BaseURL: short.URL, Token: token}).CreateTask(ctx, taskYAML("late"))
	ae := apiError(t, err, http.StatusServiceUnavailable)
	if !ae.NotApplied() || !strings.Contains(ae.Message, "no coordinator leader was elected within 1s") ||
		!strings.Contains(ae.Message, "1 of 2 voters reachable (not reachable: node2), a leader needs 2") {
		t.Fatalf("no leader within the bound: code %q: %v", ae.Code, ae)
	}

	// Within the bound: the server waits (api1, 30 s), or a client that
	// waits for readiness sends it again (short, 1 s).
	results := make(chan error, 2)
	go func() {
		_, err := (&coordinator.Client{BaseURL: api1.URL, Token: token}).CreateTask(ctx, taskYAML("orders"))
		results <- err
	}()
	go func() {
		_, err := (&coordinator.Client{BaseURL: short.URL, Token: token, WaitReady: true}).CreateTask(ctx, taskYAML("events"))
		results <- err
	}()
	select {
	case err := <-results:
		t.Fatalf("a write was answered without a leader: %v", err)
	case <-time.After(2 * time.Second):
	}
	node2 = open2()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("a write sent without a leader: %v", err)
		}
	}
	for _, c := range []*coordinator.Coordinator{node1, node2} {
		eventually(t, time.Minute, func() error {
			for _, name := range []string{"orders", "events"} {
				if _, ok := c.Task(name); !ok {
					return fmt.Errorf("%s has no task %q", c.NodeID(), name)
				}
			}
			if _, ok := c.Task("late"); ok {
				return fmt.Errorf("%s has the task answered 503", c.NodeID())
			}
			return nil
		})
	}
	eventually(t, time.Minute, func() error {
		if rd := readyz(t, api1.URL, 0); !rd.Ready || rd.Leader == "" {
			return fmt.Errorf("readyz once node2 is back: %+v", rd)
		}
		return nil
	})
}

// Before its roles are started, a node answers a request without a known
// token 503 not_ready (the first token may not exist yet), and a client
// that waits for readiness sends it again with the token it finds then.
func TestStartingWithoutToken(t *testing.T) {
	c := coordtest.New(t)
	var started atomic.Bool
	ready := func() error {
		if !started.Load() {
			return errors.New("the node is starting")
		}
		return nil
	}
	srv := httptest.NewServer(coordinator.NewAPI(c, &coordtest.Backend{}, coordinator.APIOptions{Ready: ready}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Apply(ctx, coordinator.RegisterNode{Node: coordinator.Node{ID: c.NodeID(), API: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	_, err := (&coordinator.Client{BaseURL: srv.URL}).ListTasks(ctx)
	if ae := apiError(t, err, http.StatusServiceUnavailable); !ae.NotApplied() || !strings.Contains(ae.Message, "the node is starting") {
		t.Fatalf("no token while starting: %v", ae)
	}
	if rd := readyz(t, srv.URL, http.StatusServiceUnavailable); rd.Reason != "the node is starting" || rd.Leader != "node1" {
		t.Fatalf("readyz while starting: %+v", rd)
	}
	var token atomic.Value
	token.Store("")
	client := &coordinator.Client{BaseURL: srv.URL, WaitReady: true, TokenSource: func() string { return token.Load().(string) }}
	done := make(chan error, 1)
	go func() { _, err := client.CreateTask(ctx, taskYAML("orders")); done <- err }()
	token.Store(coordtest.Token(t, c, coordinator.ScopeAdmin))
	started.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("create once started: %v", err)
	}
	if _, ok := c.Task("orders"); !ok {
		t.Fatal("task not created")
	}
	// Ready: a request without a token is a plain 401 again.
	_, err = (&coordinator.Client{BaseURL: srv.URL}).ListTasks(ctx)
	apiError(t, err, http.StatusUnauthorized)
	readyz(t, srv.URL, http.StatusOK)
}

// readyz reads GET /readyz, checking its status unless want is 0.
func readyz(t *testing.T, url string, want int) coordinator.Readiness {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		t.Fatalf("readyz: %d, want %d: %s", resp.StatusCode, want, body)
	}
	var rd coordinator.Readiness
	if err := json.Unmarshal(body, &rd); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return rd
}

// eventually polls f every 50 ms until it returns nil, failing the test
// with its last error after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr is a free loopback TCP address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
