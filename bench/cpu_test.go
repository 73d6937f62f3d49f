package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
)

// burnSQL keeps a backend busy for a few hundred milliseconds of CPU.
const burnSQL = "SELECT count(*) FROM generate_series(1, 1000000) g WHERE md5(g::text) LIKE 'a%'"

// TestPipelineMeter runs queries in two sessions of a real cluster: one
// open before the meter starts, found by its pid, and one opened after it
// (as native's walsender and apply worker start after the clock in a
// catch-up), found by its application_name. The CPU both spend must be
// counted, and an idle session matching no query must not be.
func TestPipelineMeter(t *testing.T) {
	pg, err := testenv.StartPostgres(testenv.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Destroy()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	early, err := connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close(context.Background())
	idle, err := connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(context.Background())

	late := pidQuery{pg, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, "bench-meter-late", "destination"}
	m, err := startRunMeter(ctx, nil, []pidQuery{sessionPIDs(pg, early), late})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := execSQL(ctx, early, time.Minute, burnSQL); err != nil {
		m.Stop()
		t.Fatal(err)
	}
	lateConn, err := connect(ctx, pg.DSN("postgres")+"&application_name=bench-meter-late")
	if err != nil {
		m.Stop()
		t.Fatal(err)
	}
	defer lateConn.Close(context.Background())
	// Let the meter see the new session before it works.
	if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := execSQL(ctx, lateConn, time.Minute, burnSQL); err != nil {
		m.Stop()
		t.Fatal(err)
	}
	u := m.Stop()
	wall := time.Since(start).Seconds()

	if u.PipelineCPU == nil {
		t.Fatal("no pipeline CPU measured")
	}
	if u.PipelineProcs != 2 {
		t.Errorf("counted %d processes, want 2 (the early and the late session, not the idle one)", u.PipelineProcs)
	}
	early1, late1 := sessionCPU(t, early), sessionCPU(t, lateConn)
	t.Logf("pipeline CPU %.2f s over %d processes; early session %.2f s, late %.2f s, wall %.2f s", *u.PipelineCPU, u.PipelineProcs, early1, late1, wall)
	// Both sessions' CPU is in the figure (a tick of slack for each), and
	// nothing beyond what they spent at most.
	if got, want := *u.PipelineCPU, early1+late1; got < want-0.05 || got > want+0.02 || got > wall {
		t.Errorf("pipeline CPU %.2f s, want about %.2f s (early %.2f + late %.2f, wall %.2f)", got, want, early1, late1, wall)
	}
	if early1 < 0.05 || late1 < 0.05 {
		t.Errorf("the queries spent too little CPU to tell (early %.2f s, late %.2f s)", early1, late1)
	}
}

// sessionCPU is a session's backend's CPU seconds so far.
func sessionCPU(t *testing.T, c *pgx.Conn) float64 {
	t.Helper()
	cpu, err := cpuSeconds(int(c.PgConn().PID()))
	if err != nil {
		t.Fatal(err)
	}
	return cpu
}
