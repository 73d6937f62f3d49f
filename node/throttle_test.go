package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// A throttle holds the full sync and the changes back, a task update
// changes it on the running task, and lifting it lets everything
// through. Only "not faster than the limit" is checked here (a slow
// machine cannot break it); how close the rate stays to the limit is
// measured in bench/ (throttle/*).
func TestThrottleAndUpdate(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE slow (id int PRIMARY KEY, v text); INSERT INTO slow SELECT g, 'v' FROM generate_series(1, 5000) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	start := time.Now()
	createTask(t, c, taskYAML("slow", p, "throttle: { full: { rps: 500 }, incremental: { rps: 5 } }\n"))

	// 500 rows/s: after 3 s, at most about 1500 + a burst of 5000 rows.
	time.Sleep(3 * time.Second)
	st, err := c.GetTask(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(time.Since(start).Seconds()*500) + 100
	if st.Phase != proto.PhaseFull || st.Full.RowsDone > limit {
		t.Fatalf("full sync under a 500 rows/s throttle: phase %s, %d rows after %.1fs", st.Phase, st.Full.RowsDone, time.Since(start).Seconds())
	}
	if st.Full.RowsPerSecond <= 0 || st.Full.BytesPerSecond <= 0 {
		t.Errorf("no copy rate shown while copying: %+v", st.Full)
	}
	// Lift the full-sync limit on the running task.
	if st, err = c.SetThrottle(ctx, "slow", &proto.ThrottleSpec{Incremental: &proto.RateSpec{RPS: 5}}); err != nil || st.Spec.Throttle.Full != nil {
		t.Fatalf("update: %+v %v", st, err)
	}
	waitPhase(t, c, "slow", proto.PhaseIncremental, time.Minute)
	waitEqual(t, p, []string{"public.slow"}, time.Minute)

	// 5 rows/s: 200 changed rows cannot all arrive within 3 s.
	changed := time.Now()
	testenv.MustExec(t, src, `UPDATE slow SET v = 'changed' WHERE id <= 200`)
	time.Sleep(3 * time.Second)
	var arrived int64
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM slow WHERE v = 'changed'`).Scan(&arrived); err != nil {
		t.Fatal(err)
	}
	if max := int64(time.Since(changed).Seconds()*5) + 10; arrived > max {
		t.Fatalf("%d rows arrived %.1fs after the change under a 5 rows/s throttle", arrived, time.Since(changed).Seconds())
	}
	if _, err := c.SetThrottle(ctx, "slow", nil); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, []string{"public.slow"}, time.Minute)
	if st, _ := c.GetTask(ctx, "slow"); st.Spec.Throttle != nil {
		t.Fatalf("throttle after lifting it: %+v", st.Spec.Throttle)
	}
}
