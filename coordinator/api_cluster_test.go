package coordinator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
)

// Operator commands through the API: drain, refusing to remove a live
// node that was not drained, removing it once drained, and the status
// that shows all of it.
func TestClusterOperatorCommands(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{e.coord.NodeID(), "n2"} {
		n := coordinator.Node{ID: id, API: "127.0.0.1:1", Roles: []string{coordinator.RoleWorker}}
		if err := e.coord.Apply(ctx, coordinator.RegisterNode{Node: n, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	err := e.client.RemoveNode(ctx, "n2", false)
	if ae := apiError(t, err, http.StatusConflict); !strings.Contains(ae.Message, "drain it first") {
		t.Fatalf("remove of a live node: %v", ae)
	}
	if err := e.client.DrainNode(ctx, "n2", false); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != e.coord.NodeID() || !st.HealthKnown || len(st.Nodes) != 2 || st.Nodes[0].ID != "n2" || !st.Nodes[0].Draining {
		t.Fatalf("status after drain: %+v", st)
	}
	apiError(t, e.client.DrainNode(ctx, "n9", false), http.StatusNotFound)
	// Undrain (POST .../undrain, as the console and `cluster undrain`
	// send it) lets it take units again; drain it once more to remove it.
	if err := e.client.DrainNode(ctx, "n2", true); err != nil {
		t.Fatal(err)
	}
	if st, _ = e.client.ClusterStatus(ctx); st.Nodes[0].ID != "n2" || st.Nodes[0].Draining {
		t.Fatalf("status after undrain: %+v", st.Nodes)
	}
	apiError(t, e.client.DrainNode(ctx, "n9", true), http.StatusNotFound)
	if err := e.client.DrainNode(ctx, "n2", false); err != nil {
		t.Fatal(err)
	}
	if err := e.client.RemoveNode(ctx, "n2", false); err != nil {
		t.Fatalf("remove of a drained node: %v", err)
	}
	if st, _ = e.client.ClusterStatus(ctx); len(st.Nodes) != 1 {
		t.Fatalf("status after remove: %+v", st.Nodes)
	}
	err = e.client.RemoveNode(ctx, e.coord.NodeID(), true)
	if ae := apiError(t, err, http.StatusConflict); !strings.Contains(ae.Message, "leader") {
		t.Fatalf("remove of the leader: %v", ae)
	}
}
