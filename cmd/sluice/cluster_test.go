package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
)

// The text status puts what is unhealthy first and names it.
func TestPrintCluster(t *testing.T) {
	now := time.Now()
	running, stopped := true, false
	st := &coordinator.ClusterStatus{
		Leader: "n1", ServedBy: "n2", Index: 42, HealthKnown: true,
		Nodes: []coordinator.NodeStatus{
			{Node: coordinator.Node{ID: "n1", Roles: []string{"coordinator", "worker"}, Pool: "default", Live: true}, Leader: true, Voter: true,
				Units: []coordinator.UnitStatus{{Unit: "t/capture", Running: &running}, {Unit: "t/apply/0", Running: &stopped, Error: "boom"}}},
			{Node: coordinator.Node{ID: "n2", Pool: "p1", Since: now.Add(-30 * time.Second)}, Units: []coordinator.UnitStatus{}},
		},
		Unhealthy: []string{"node n2 is down since ...", "unit t/apply/0 on n1 is not running: boom"},
		Waiting:   []coordinator.TaskWaiting{{Task: "u", Reason: "no live worker in pool p1"}},
	}
	var out bytes.Buffer
	if err := printCluster(&out, st, now); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"leader: n1", "health: UNHEALTHY", "unit t/apply/0 on n1 is not running: boom", "DOWN 30s", "t/apply/0(!)", "task u waits: no live worker in pool p1"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	if strings.Index(text, "UNHEALTHY") > strings.Index(text, "NODE") {
		t.Errorf("health is not first:\n%s", text)
	}
}
