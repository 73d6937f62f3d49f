package coordinator

import (
	"context"
	"net/http"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// The observability reads: a task's tables and its history. Both come
// from the leader, which hears every node's figures and keeps the history
// (a follower forwards these GETs; see leaderReads).

func (a *api) observeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/tasks/{name}/tables", a.taskTables)
	mux.HandleFunc("GET /api/v1/tasks/{name}/history", a.taskHistory)
}

// leaderReads are the GETs a follower passes to the leader: the cluster's
// health, a task's tables' copy rates and its history live only there.
func leaderReads(path string) bool {
	task := strings.HasPrefix(path, "/api/v1/tasks/")
	return path == "/api/v1/cluster" || (task && (strings.HasSuffix(path, "/tables") || strings.HasSuffix(path, "/history")))
}

func (a *api) taskTables(w http.ResponseWriter, r *http.Request) {
	task, ok := a.task(w, r.PathValue("name"))
	if !ok {
		return
	}
	live := a.taskLive(r.Context(), task.Spec.Name)
	a.reply(w, http.StatusOK, TablesStatus(&task, live, a.c.copyRates(task.Spec.Name)))
}

func (a *api) taskHistory(w http.ResponseWriter, r *http.Request) {
	task, ok := a.task(w, r.PathValue("name"))
	if !ok {
		return
	}
	a.reply(w, http.StatusOK, a.c.History(task.Spec.Name))
}

// taskLive is a task's live figures across the cluster, or this node's
// when the leader cannot be asked or has heard of none yet.
func (a *api) taskLive(ctx context.Context, name string) TaskLive {
	if all, ok := a.c.ClusterLive(ctx); ok {
		if l, ok := all[name]; ok {
			return l
		}
	}
	l := a.b.Live(name)
	return TaskLive{Task: name, LatencyMS: l.LatencyMS, RowsApplied: l.RowsApplied, RowsPerSecond: l.ThroughputRPS, BytesPerSecond: l.ThroughputBPS,
		FullRowsPerSecond: l.FullRowsPerSecond, FullBytesPerSecond: l.FullBytesPerSecond, ConfirmedLSN: l.ConfirmedLSN, PeerTxDropped: l.PeerTxDropped}
}

// slotStatus is the task's slot in its status.
func slotStatus(t *Task, live TaskLive) *proto.SlotStatus {
	if !t.SlotCreated {
		return nil
	}
	s := &proto.SlotStatus{Name: proto.SlotName(t.Spec.Name), ConfirmedLSN: live.ConfirmedLSN}
	if live.Slot != nil {
		b, act := live.Slot.RetainedWALBytes, live.Slot.Active
		s.RetainedWALBytes, s.Active = &b, &act
	}
	return s
}
