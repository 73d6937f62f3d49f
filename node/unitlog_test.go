package node_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// lockedBuffer collects a JSON log written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// unitSources are the files whose records a unit emits: the unit code of
// node/ and the packages a unit runs. Anything they log about the task
// carries the unit's fields.
var unitSources = []string{"/node/applyunit.go", "/node/copyunit.go", "/node/units.go", "/node/rowsreport.go", "/pipeline/runner.go", "/pipeline/supervise.go", "/pipeline/fullsync.go", "/capture/", "/apply/"}

// A task's full sync and incremental sync log through the units'
// loggers: every record they emit, in the JSON log, carries task, unit,
// node and epoch once each; the capture's and an apply group's records
// are among them.
func TestUnitLogsCarryFields(t *testing.T) {
	p := newPair(t)
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE lg (id int PRIMARY KEY, v text); INSERT INTO lg SELECT g, 'v' FROM generate_series(1, 2000) g`)
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{AddSource: true, Level: slog.LevelInfo}))
	n := sluicetest.StartNode(t, node.Config{Logger: logger})
	c := n.Client()
	createTask(t, c, taskYAML("logs", p, ""))
	waitPhase(t, c, "logs", proto.PhaseIncremental, 2*time.Minute)
	for i := 0; i < 20; i++ {
		testenv.MustExec(t, srcConn, `INSERT INTO lg VALUES ($1, 'w')`, 10000+i)
	}
	waitEqual(t, p, []string{"public.lg"}, time.Minute)
	n.Stop(t) // the units' stop records too

	units := map[string]int{}
	checked := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		src, _ := rec["source"].(map[string]any)
		file, _ := src["file"].(string)
		fromUnit := rec["msg"] == "starting unit" || rec["msg"] == "unit stopped"
		for _, s := range unitSources {
			fromUnit = fromUnit || strings.Contains(file, s)
		}
		if !fromUnit || rec["task"] != "logs" {
			continue
		}
		checked++
		for _, key := range []string{"task", "unit", "node", "epoch"} {
			if rec[key] == nil {
				t.Errorf("%s:%v: record without %s: %s", file, src["line"], key, line)
			}
			if c := strings.Count(line, fmt.Sprintf("%q:", key)); c > 1 {
				t.Errorf("%s:%v: %s %d times: %s", file, src["line"], key, c, line)
			}
		}
		if u, ok := rec["unit"].(string); ok {
			units[strings.SplitN(u, "/", 2)[0]]++
		}
	}
	if checked == 0 || units["capture"] == 0 || units["apply"] == 0 {
		t.Fatalf("%d unit records checked, by kind of unit %v: want the capture's and an apply group's", checked, units)
	}
	t.Logf("%d unit records checked, by kind of unit %v", checked, units)
}
