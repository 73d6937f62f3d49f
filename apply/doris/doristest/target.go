package doristest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
	"github.com/sluicedb/sluice/proto"
)

// Target is a Doris emulator for the pipeline suite (pipelinetest).
type Target struct {
	E *emu.Emulator
	Server
}

// NewTarget starts an emulator; tasks write to its database "dw".
func NewTarget(t *testing.T) *Target {
	e := testenv.NewDoris(t)
	return &Target{E: e, Server: Server{URL: e.FEURL(), User: "root", DB: "dw"}}
}

// Block is the task's destination block: a one-second batch interval,
// so the suite's waits stay short.
func (g *Target) Block() string {
	return fmt.Sprintf("{type: doris, url: %q, user: root, database: dw, batch_interval: 1s}", g.URL)
}

// Read reads the table as the task wrote it (the database has no
// schemas: the table's name alone).
func (g *Target) Read(t *testing.T, _ string, table proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	return g.ReadTable(t, table.Name, cols)
}

// Unavailable: Doris tables are written whole, so the suite syncs its
// tables under REPLICA IDENTITY FULL (as the guide requires).
func (g *Target) Unavailable() string { return "<needs REPLICA IDENTITY FULL>" }

// outage is how long Stop keeps the FE away.
const outage = 20 * time.Second

// Stop takes the FE away for a while (connections are refused); the BE
// and the data stay.
func (g *Target) Stop(t *testing.T) {
	if err := g.E.RestartFE(outage); err != nil {
		t.Fatal(err)
	}
}

// Start waits until the FE answers again.
func (g *Target) Start(t *testing.T) bool {
	deadline := time.Now().Add(outage + 30*time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := doris.Query(context.Background(), g.URL, g.User, g.Password, "information_schema", "SELECT 1"); err == nil {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the Doris FE did not come back")
	return false
}
