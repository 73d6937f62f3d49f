package coordinator

import (
	"maps"
	"slices"

	"github.com/sluicedb/sluice/proto"
)

// TablesFull is each table's full-sync progress (by table name): the
// rows of the tables copied, then from the current plan: a table whose
// chunks are all done has its exact count, one still loading its chunks
// so far and the larger of the planner's estimate and that.
func (t *Task) TablesFull() map[string]proto.TableFull {
	out := map[string]proto.TableFull{}
	for k, n := range t.TableRows {
		out[proto.TableIDFromKey(k).String()] = proto.TableFull{RowsDone: n, RowsEstimated: n}
	}
	p := t.FullSync
	if p == nil {
		return out
	}
	for _, pt := range p.Tables {
		var f proto.TableFull
		done := true
		for _, c := range pt.Chunks {
			if c.Done {
				f.RowsDone += c.Rows
			} else {
				f.RowsDone += c.Copying
				done = false
			}
		}
		f.RowsEstimated = f.RowsDone
		if !done {
			f.RowsEstimated = max(pt.Estimated, f.RowsDone)
		}
		out[pt.Table.String()] = f
	}
	return out
}

// keepTableRows records the rows of the tables just marked copied, from
// the plan's chunks (FSM apply: state only).
func (t *Task) keepTableRows(copied map[string]proto.LSN) {
	if t.FullSync == nil {
		return
	}
	for i, pt := range t.FullSync.Tables {
		if _, ok := copied[pt.Table.Key()]; !ok {
			continue
		}
		if done, rows := t.FullSync.TableDone(i); done {
			if t.TableRows == nil {
				t.TableRows = map[string]int64{}
			}
			t.TableRows[pt.Table.Key()] = rows
		}
	}
}

// tablePhase is a table's phase in the task's status (TableStatus.Phase).
func tablePhase(t *Task, name, key string, adding map[string]bool, copying map[string]bool) string {
	_, copied := t.TablesCopied[key]
	switch {
	case adding[name]:
		return "adding"
	case t.Phase == proto.PhaseFull && copying[name] && !copied:
		return "full"
	case t.Phase == proto.PhaseFull && copied:
		return "copied"
	}
	return string(t.Phase)
}

// TablesStatus assembles a task's tables from the replicated state (its
// tables, their copy) and the cluster's live figures (counters, position,
// lag); rates are the leader's recent copy rates (nil elsewhere).
func TablesStatus(t *Task, live TaskLive, rates map[string]float64) proto.TablesStatus {
	full := t.TablesFull()
	byName := map[string]TableLive{}
	for _, l := range live.Tables {
		byName[l.Table] = l
	}
	keys := map[string]bool{}
	for _, k := range t.Tables {
		keys[k] = true
	}
	copying := map[string]bool{}
	if t.FullSync != nil {
		for i, pt := range t.FullSync.Tables {
			keys[pt.Table.Key()] = true
			if done, _ := t.FullSync.TableDone(i); !done {
				copying[pt.Table.String()] = true
			}
		}
	}
	adding := map[string]bool{}
	for _, a := range t.AddingNotCopied() {
		adding[a] = true
	}
	// By name: the replicated tables, and those the apply groups report
	// (a task from before its tables were recorded).
	names := map[string]string{}
	for k := range keys {
		names[proto.TableIDFromKey(k).String()] = k
	}
	for name := range byName {
		if _, ok := names[name]; !ok {
			names[name] = ""
		}
	}
	out := proto.TablesStatus{Tables: []proto.TableStatus{}}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		key := names[name]
		ts := proto.TableStatus{Table: name, Phase: tablePhase(t, name, key, adding, copying)}
		if f, ok := full[name]; ok {
			f.RowsPerSecond = rates[name]
			if left := f.RowsEstimated - f.RowsDone; left > 0 && f.RowsPerSecond > 0 {
				eta := int64(float64(left)/f.RowsPerSecond + 0.5)
				f.ETASeconds = &eta
			}
			ts.Full = &f
		}
		if l, ok := byName[name]; ok {
			ts.Applied = &proto.OpCounts{Insert: l.Insert, Update: l.Update, Delete: l.Delete, Truncate: l.Truncate}
			ts.LastPosition = PositionText(l.Last)
			ts.LagMS = l.LagMS
		}
		out.Tables = append(out.Tables, ts)
	}
	return out
}
