package node_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// Continuous verification (verify: in the spec) on a running PostgreSQL
// task, its rounds every second (the node's test override of the
// interval): nothing reported while a writer updates the same keys over
// and over; damage at the destination shows in task get, in /metrics and
// in a differences alert, and clears once repaired by hand. Then, changed
// by task update to a 50% sample (tables over 100 rows in slices), the
// rounds take the two halves of a keyed table in turn, leave a big
// keyless table out, and hold the half where damage is until it is
// repaired.
func TestContinuousVerify(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `
		CREATE TABLE items (id int PRIMARY KEY, n numeric(10,2), ts timestamptz, note text);
		INSERT INTO items SELECT g, g + 0.25, '2024-05-01 10:00:00+00'::timestamptz + g * interval '1 minute', 'note ' || g FROM generate_series(1, 1000) g;
		CREATE TABLE logs (kind text, n int);
		ALTER TABLE logs REPLICA IDENTITY FULL;
		INSERT INTO logs SELECT (ARRAY['in', 'out'])[1 + g % 2], g FROM generate_series(1, 300) g;
		CREATE TABLE orders (id int PRIMARY KEY, amount int);
		INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 60) g;
		ANALYZE`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{VerifyInterval: time.Second, VerifyWholeRows: 100}})
	c := n.Client()
	spec := func(verify string) []byte {
		return taskYAML("cv", p, fmt.Sprintf("alerts: { webhook: %q }\nverify: %s\n", srv.URL+"/hook", verify))
	}
	createTask(t, c, spec("{ interval: 1m, sample: 100% }"))
	waitPhase(t, c, "cv", proto.PhaseIncremental, 3*time.Minute)

	// summary waits until a round after since has recorded every table,
	// and returns task get's summary.
	summary := func(since time.Time, check func(*proto.VerifySummary) error) *proto.VerifySummary {
		t.Helper()
		var sum *proto.VerifySummary
		testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
			st, err := c.GetTask(ctx, "cv")
			if err != nil {
				return err
			}
			if sum = st.Verify; sum == nil || sum.Tables != 3 || !sum.At.After(since) {
				return fmt.Errorf("no round since %s yet: %+v", since, sum)
			}
			return check(sum)
		})
		return sum
	}
	clean := func(s *proto.VerifySummary) error {
		if s.Differences != 0 || len(s.Failed) > 0 {
			return fmt.Errorf("not clean: %+v", s)
		}
		return nil
	}
	summary(time.Now(), clean)

	// 1. A writer updates the same keys over and over: rounds under it
	// report nothing.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		werr = hotKeys(ctx, p.src.DSN(testenv.DefaultDB), &stop)
	}()
	since := time.Now()
	time.Sleep(4 * time.Second)
	stop.Store(true)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	summary(since, clean)
	for _, r := range lastVerify(t, c) {
		if r.Differences != 0 || r.Unsettled != 0 || r.Sample == nil || r.Sample.Windows != 1 || r.Rows == 0 {
			t.Fatalf("a round under the writer: %+v", r)
		}
	}
	if got := hook.of("differences"); len(got) > 0 {
		t.Fatalf("differences alerted under the writer: %v", got)
	}

	// 2. Damage at the destination: a changed row, a missing one, and a
	// keyless row twice.
	dstConn := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, dstConn, `UPDATE items SET note = 'damaged' WHERE id = 507; DELETE FROM items WHERE id = 508;
		INSERT INTO logs SELECT * FROM logs WHERE n = 5`)
	summary(time.Now(), func(s *proto.VerifySummary) error {
		if s.Differences != 3 || strings.Join(s.Differing, ",") != "public.items,public.logs" {
			return fmt.Errorf("differences not found yet: %+v", s)
		}
		return nil
	})
	fired := hook.wait(t, "differences", "firing", time.Minute)
	if fired.Task != "cv" || fired.Value != 3 || fired.Severity != "critical" || !strings.Contains(fired.Message, "public.items, public.logs") {
		t.Fatalf("differences alert: %+v", fired)
	}
	metrics := scrape(t, n.URL, n.Token)
	for _, want := range []string{`sluice_verify_differences{table="public.items",task="cv"} 2`, `sluice_verify_differences{table="public.logs",task="cv"} 1`,
		`sluice_verify_differences{table="public.orders",task="cv"} 0`, `sluice_verify_rows_compared{table="public.orders",task="cv"} 60`,
		`sluice_task_alert_firing{alert="differences",task="cv"} 1`, `sluice_verify_timestamp_seconds{table="public.items",task="cv"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// 3. Repaired by hand: the differences clear everywhere.
	testenv.MustExec(t, dstConn, `UPDATE items SET note = 'note 507' WHERE id = 507;
		INSERT INTO items VALUES (508, 508.25, '2024-05-01 10:00:00+00'::timestamptz + 508 * interval '1 minute', 'note 508');
		DELETE FROM logs WHERE ctid = (SELECT ctid FROM logs WHERE n = 5 LIMIT 1)`)
	summary(time.Now(), clean)
	hook.wait(t, "differences", "resolved", time.Minute)
	metrics = scrape(t, n.URL, n.Token)
	for _, want := range []string{`sluice_verify_differences{table="public.items",task="cv"} 0`, `sluice_verify_differences{table="public.logs",task="cv"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `sluice_task_alert_firing{alert="differences"`) {
		t.Errorf("the differences alert still holds:\n%s", metrics)
	}

	// 4. A 50% sample, by task update: items (1,000 rows) in two halves
	// taken in turn, logs (keyless, 300 rows) left out, orders (60)
	// whole.
	if _, err := c.UpdateTask(ctx, "cv", spec("{ interval: 1m, sample: 50% }")); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	seen := map[int]*proto.VerifySample{}
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		for _, r := range lastVerify(t, c) {
			if r.Table == "public.items" && r.At.After(updated) && r.Sample != nil && r.Sample.Windows == 2 {
				seen[r.Sample.Window] = r.Sample
			}
		}
		if len(seen) < 2 {
			return fmt.Errorf("halves of items compared: %v", seen)
		}
		return nil
	})
	if low, high := seen[0], seen[1]; low.From != nil || high.To != nil || fmt.Sprint(low.To) != fmt.Sprint(high.From) {
		t.Fatalf("the halves of items: %+v and %+v", low, high)
	}
	for _, r := range lastVerify(t, c) {
		switch {
		case r.Table == "public.logs" && r.At.After(updated):
			t.Fatalf("the keyless table was compared in a 50%% sample: %+v", r)
		case r.Table == "public.orders" && (!r.At.After(updated) || r.Sample.Windows != 1 || r.Rows != 60):
			t.Fatalf("the small table was not compared whole: %+v", r)
		}
	}

	// 5. Damage in the upper half: once found, rounds compare that half
	// again until it is repaired, then go on in turn.
	testenv.MustExec(t, dstConn, `UPDATE items SET note = 'damaged' WHERE id = 990`)
	var held proto.VerifyRecord
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		held = record(t, c, "public.items")
		if held.Differences != 1 {
			return fmt.Errorf("not found yet: %+v", held)
		}
		return nil
	})
	if held.Sample.Window != 1 {
		t.Fatalf("id 990 found in %+v", held.Sample)
	}
	time.Sleep(3 * time.Second)
	if again := record(t, c, "public.items"); !again.At.After(held.At) || again.Differences != 1 || again.Sample.Window != 1 {
		t.Fatalf("the differing half was not held: %+v, then %+v", held, again)
	}
	testenv.MustExec(t, dstConn, `UPDATE items SET note = 'note 990' WHERE id = 990`)
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		if r := record(t, c, "public.items"); r.Differences != 0 || r.Sample.Window != 0 {
			return fmt.Errorf("not repaired and moved on yet: %+v", r)
		}
		return nil
	})
	// Alerted again, and resolved again.
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		got := hook.of("differences")
		if len(got) != 4 || got[2].State != "firing" || got[2].Value != 1 || got[3].State != "resolved" {
			return fmt.Errorf("differences alerts: %+v", got)
		}
		return nil
	})
}

func lastVerify(t *testing.T, c *coordinator.Client) []proto.VerifyRecord {
	t.Helper()
	records, err := c.LastVerify(context.Background(), "cv")
	if err != nil {
		t.Fatal(err)
	}
	return records
}

// record is a table's last verification.
func record(t *testing.T, c *coordinator.Client, table string) proto.VerifyRecord {
	t.Helper()
	records := lastVerify(t, c)
	i := slices.IndexFunc(records, func(r proto.VerifyRecord) bool { return r.Table == table })
	if i < 0 {
		t.Fatalf("no record of %s: %+v", table, records)
	}
	return records[i]
}

// of lists the alerts of one kind received.
func (h *webhook) of(kind string) []node.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []node.Alert
	for _, a := range h.alerts {
		if a.Alert == kind {
			out = append(out, a)
		}
	}
	return out
}
