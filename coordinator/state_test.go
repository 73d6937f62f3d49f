package coordinator

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

func boolp(b bool) *bool { return &b }

func testSpec(name string) proto.TaskSpec {
	return proto.TaskSpec{
		Name:        name,
		Source:      proto.SourceSpec{DSN: "postgres://repl:s3cret@127.0.0.1:5432/shop"},
		Destination: prototest.Destination("postgres://app:hunter2@127.0.0.1:5433/wh"),
		Objects:     []proto.ObjectSpec{{Schema: "public", Tables: []string{"orders", "customers"}}},
	}
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func mustApply(t *testing.T, s *Store, index uint64, cmd Command) {
	t.Helper()
	if err := s.Apply(index, cmd); err != nil {
		t.Fatalf("apply %T at %d: %v", cmd, index, err)
	}
}

func TestCreateTaskStartPhase(t *testing.T) {
	for _, tc := range []struct {
		sync proto.SyncSpec
		want proto.Phase
	}{
		// Whatever the spec enables, a new task is in precheck until a
		// node moves it on.
		{proto.SyncSpec{}, proto.PhasePrecheck},
		{proto.SyncSpec{Schema: boolp(false)}, proto.PhasePrecheck},
		{proto.SyncSpec{Schema: boolp(false), Full: boolp(false)}, proto.PhasePrecheck},
		{proto.SyncSpec{Full: boolp(false), Incremental: boolp(false)}, proto.PhasePrecheck},
	} {
		s := NewStore()
		spec := testSpec("a")
		spec.Sync = tc.sync
		mustApply(t, s, 7, NewCreateTask(spec, t0))
		got, ok := s.Task("a")
		if !ok {
			t.Fatal("task not stored")
		}
		if got.Phase != tc.want || got.State != proto.StatePending || got.Epoch != 7 ||
			got.CreateIndex != 7 || got.ModifyIndex != 7 || !got.CreatedAt.Equal(t0) {
			t.Errorf("sync %+v: got phase=%s state=%s epoch=%d create=%d modify=%d at=%v",
				tc.sync, got.Phase, got.State, got.Epoch, got.CreateIndex, got.ModifyIndex, got.CreatedAt)
		}
	}
}

func TestCommands(t *testing.T) {
	s := NewStore()
	idx := uint64(0)
	apply := func(cmd Command) error { idx++; return s.Apply(idx, cmd) }
	get := func() Task {
		t.Helper()
		task, ok := s.Task("orders")
		if !ok {
			t.Fatal("task orders missing")
		}
		if task.ModifyIndex != idx {
			t.Fatalf("ModifyIndex = %d, want %d (the last write)", task.ModifyIndex, idx)
		}
		return task
	}

	if err := apply(NewCreateTask(testSpec("orders"), t0)); err != nil {
		t.Fatal(err)
	}
	if err := apply(NewCreateTask(testSpec("orders"), t0)); !errors.Is(err, ErrTaskExists) {
		t.Fatalf("duplicate create: %v, want ErrTaskExists", err)
	}
	if got, _ := s.Task("orders"); got.ModifyIndex != 1 {
		t.Fatal("a refused command must not write")
	}

	connErr := &proto.TaskError{Kind: proto.ErrorConnection, Message: "refused", At: t0, RetryUntil: t0.Add(time.Hour)}
	if err := apply(SetTaskStatus{Name: "orders", State: proto.StateRetrying, Error: connErr}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.Phase != proto.PhasePrecheck || got.State != proto.StateRetrying || got.LastError == nil || *got.LastError != *connErr {
		t.Fatalf("after SetTaskStatus: %+v", got)
	}
	if err := apply(SetTaskStatus{Name: "orders", Phase: proto.PhaseFull, State: proto.StatePaused, KeepError: true}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.Phase != proto.PhaseFull || got.State != proto.StatePaused || got.LastError == nil {
		t.Fatalf("KeepError: %+v", got)
	}
	if err := apply(SetTaskStatus{Name: "orders", State: proto.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.Phase != proto.PhaseFull || got.State != proto.StateRunning || got.LastError != nil {
		t.Fatalf("nil Error clears: %+v", got)
	}

	if err := apply(MarkSlotCreated{Name: "orders", ConsistentLSN: 0x16B374D848}); err != nil {
		t.Fatal(err)
	}
	if got := get(); !got.SlotCreated || got.ConsistentLSN != 0x16B374D848 {
		t.Fatalf("MarkSlotCreated: %+v", got)
	}

	k1 := proto.TableID{Schema: "public", Name: "orders"}.Key()
	k2 := proto.TableID{Schema: "public", Name: "customers"}.Key()
	if err := apply(MarkTablesCopied{Name: "orders", Tables: map[string]proto.LSN{k1: 10}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(MarkTablesCopied{Name: "orders", Tables: map[string]proto.LSN{k2: 20}}); err != nil {
		t.Fatal(err)
	}
	if got := get(); !reflect.DeepEqual(got.TablesCopied, map[string]proto.LSN{k1: 10, k2: 20}) {
		t.Fatalf("MarkTablesCopied merges: %v", got.TablesCopied)
	}
	if err := apply(ResetTablesCopied{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if got := get(); len(got.TablesCopied) != 0 {
		t.Fatalf("ResetTablesCopied: %v", got.TablesCopied)
	}
	if err := apply(MarkPostDataDone{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if got := get(); !got.PostDataDone {
		t.Fatal("MarkPostDataDone")
	}
	// The epoch is the Raft index of the latest bump: it only grows.
	for range 2 {
		before := get().Epoch
		if err := apply(BumpEpoch{Name: "orders"}); err != nil {
			t.Fatal(err)
		}
		if got := get(); got.Epoch <= before || got.Epoch != got.ModifyIndex {
			t.Fatalf("Epoch = %d after %d (modify index %d)", got.Epoch, before, got.ModifyIndex)
		}
	}
	for range 2 { // idempotent, so a failed delete can be retried
		if err := apply(MarkDeleting{Name: "orders"}); err != nil {
			t.Fatal(err)
		}
		if got := get(); !got.Deleting {
			t.Fatal("MarkDeleting")
		}
	}
	if err := apply(NewCreateTask(testSpec("orders"), t0)); !errors.Is(err, ErrTaskExists) {
		t.Fatalf("create while deleting: %v, want ErrTaskExists", err)
	}
	if err := apply(RemoveTask{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Task("orders"); ok {
		t.Fatal("task still there after RemoveTask")
	}
	if s.Index() != idx {
		t.Fatalf("Index = %d, want %d", s.Index(), idx)
	}

	for _, cmd := range []Command{
		SetTaskStatus{Name: "orders", State: proto.StateRunning},
		MarkSlotCreated{Name: "orders"},
		MarkTablesCopied{Name: "orders"},
		ResetTablesCopied{Name: "orders"},
		MarkPostDataDone{Name: "orders"},
		BumpEpoch{Name: "orders"},
		MarkDeleting{Name: "orders"},
		RemoveTask{Name: "orders"},
	} {
		if err := apply(cmd); !errors.Is(err, ErrTaskNotFound) {
			t.Errorf("%T on a missing task: %v, want ErrTaskNotFound", cmd, err)
		}
	}
}

func TestTasksSortedCopies(t *testing.T) {
	s := NewStore()
	for i, name := range []string{"c", "a", "b"} {
		mustApply(t, s, uint64(i+1), NewCreateTask(testSpec(name), t0))
	}
	mustApply(t, s, 4, MarkTablesCopied{Name: "a", Tables: map[string]proto.LSN{"x": 1}})
	tasks := s.Tasks()
	var names []string
	for _, task := range tasks {
		names = append(names, task.Spec.Name)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Fatalf("Tasks order: %v", names)
	}
	// Changing what the state returned must not change the state.
	tasks[0].TablesCopied["x"] = 99
	tasks[0].Spec.Objects[0].Tables[0] = "changed"
	tasks[0].Spec.Source.DSN = "changed"
	again, _ := s.Task("a")
	if again.TablesCopied["x"] != 1 || again.Spec.Objects[0].Tables[0] != "orders" || again.Spec.Source.DSN == "changed" {
		t.Fatalf("state changed through a returned copy: %+v", again)
	}
}

func TestChangedFires(t *testing.T) {
	s := NewStore()
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any change")
	default:
	}
	mustApply(t, s, 1, NewCreateTask(testSpec("a"), t0))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after a change")
	}
	ch = s.Changed()
	if err := s.Apply(2, NewCreateTask(testSpec("a"), t0)); !errors.Is(err, ErrTaskExists) {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Changed closed by a refused command")
	default:
	}
}

// bogus is a command no handler knows.
type bogus struct{}

func (bogus) Type() CommandType { return 200 }

// impostor claims the type byte of CreateTask.
type impostor struct{ X int }

func (impostor) Type() CommandType { return CmdCreateTask }

func TestUnknownCommand(t *testing.T) {
	if _, err := Encode(bogus{}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("Encode(bogus): %v, want ErrUnknownCommand", err)
	}
	if _, err := Encode(impostor{}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("Encode(impostor): %v, want ErrUnknownCommand", err)
	}
	if _, err := Encode((*CreateTask)(nil)); err == nil {
		t.Error("Encode(nil pointer) succeeded")
	}
	for _, entry := range [][]byte{{200, '{', '}'}, {0}, nil} {
		if _, err := Decode(entry); !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("Decode(%v): %v, want ErrUnknownCommand", entry, err)
		}
	}
	if err := NewStore().Apply(1, bogus{}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("Store.Apply(bogus): %v", err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	cmds := []Command{
		NewCreateTask(testSpec("a"), t0),
		&SetTaskStatus{Name: "a", Phase: proto.PhaseFull, State: proto.StateFailed,
			Error: &proto.TaskError{Kind: proto.ErrorOther, Message: "boom", At: t0}, KeepError: true},
		MarkSlotCreated{Name: "a", ConsistentLSN: 42},
		MarkTablesCopied{Name: "a", Tables: map[string]proto.LSN{"public\x00t": 7}},
		ResetTablesCopied{Name: "a"},
		MarkPostDataDone{Name: "a"},
		BumpEpoch{Name: "a"},
		MarkDeleting{Name: "a"},
		RemoveTask{Name: "a"},
		PauseTask{Name: "a"},
		ResumeTask{Name: "a"},
		&SetTaskStatus{Name: "a", Epoch: 3, State: proto.StateRunning, IfRunnable: true},
		RegisterNode{Node: Node{ID: "n1", API: "127.0.0.1:1", Raft: "127.0.0.1:2", Roles: []string{RoleWorker}, Pool: "p1", Capacity: 3}, At: t0},
		SetNodesLive{Live: map[string]bool{"n1": false}, At: t0},
		DrainNode{ID: "n1", Undo: true},
		RemoveNode{ID: "n1"},
		ApplyPlan{Moves: []PlanMove{{Unit: "a/apply/1", From: "n1", To: "n2", Reason: "node n1 is down"}}, Waiting: map[string]string{"b": "no live worker in pool p1"}, At: t0},
		SetFullSyncPlan{Name: "a", Epoch: 4, Plan: FullSyncPlan{Snapshot: "00000003-00000004-1", LSN: 9, Units: 2, TablesTotal: 1, RowsEstimated: 10,
			Tables: []PlannedCopy{{Table: proto.TableID{Schema: "public", Name: "t"}, Columns: []string{"id"}, Format: proto.CopyBinary,
				Chunks: []PlannedChunk{{FromPage: 0, ToPage: 8, Unit: 1}, {FromPage: 8, ToPage: -1}}}}}},
		MarkFullSyncReady{Name: "a", Plan: 5},
		MarkChunkProgress{Name: "a", Plan: 5, Table: 0, Chunk: 0, Rows: 12},
		MarkChunkCopied{Name: "a", Plan: 5, Table: 0, Chunk: 1, Rows: 77},
		ReportRowsApplied{Name: "a", Unit: "apply/1", Epoch: 4, Start: 99, Rows: 5},
		ResolveError{Name: "a", At: t0, HealthySince: t0},
		SetThrottle{Name: "a", Throttle: &ThrottleV1{Full: &RateV1{RPS: 5, MBPS: 1, QPS: 2}}},
		MarkKeptTables{Name: "a", Tables: []string{"public\x00t"}},
		SetTaskTables{Name: "a", Tables: []string{"public\x00t"}},
		ChangeTables{Name: "a", Objects: []ObjectV1{{Schema: "public", Tables: []string{"t", "u"}}}, Add: []string{"public\x00u"}, Remove: []string{"public\x00v"}},
		FinishAdding{Name: "a", Tables: []string{"public\x00u"}},
		RecordVerify{Name: "a", Results: []VerifyRecordV1{{Table: "public.t", Dest: "public.t", At: t0, Rows: 7, Differences: 1}}},
		UpdateSettings{Name: "a", SettingsV1: SettingsV1{Retry: RetryV1{Other: DurationV1(time.Minute)}, Alerts: &AlertsV1{Webhook: "http://x/y"}}},
		CreateToken{Token: Token{ID: "0123456789ab", Name: "ci", Scope: ScopeRead, Hash: strings.Repeat("a", 64), CreatedAt: t0, Bootstrap: true}},
		RevokeToken{ID: "0123456789ab"},
		SetSecretKey{ID: "0123456789abcdef", Rotate: true},
		ResealTask{Name: "a", SourceDSN: "postgres://u:${sealed:v1:0123456789abcdef:AAAA}@h/d", Webhook: "${sealed:v1:0123456789abcdef:BBBB}"},
	}
	seen := map[CommandType]bool{}
	for _, cmd := range cmds {
		entry, err := Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if entry[0] != byte(cmd.Type()) {
			t.Fatalf("%T: first byte %d, want %d", cmd, entry[0], cmd.Type())
		}
		got, err := Decode(entry)
		if err != nil {
			t.Fatal(err)
		}
		want := reflect.Indirect(reflect.ValueOf(cmd)).Interface()
		if !reflect.DeepEqual(reflect.ValueOf(got).Elem().Interface(), want) {
			t.Errorf("round trip %T:\n got %+v\nwant %+v", cmd, got, want)
		}
		seen[cmd.Type()] = true
	}
	for typ, h := range handlers {
		if h != nil && !seen[CommandType(typ)] {
			t.Errorf("command %s (%d) has no round-trip case", h.name, typ)
		}
	}
}

// fill sets every settable field of v to a distinct non-zero value,
// recursively: pointers get a value, slices and maps two elements.
func fill(v reflect.Value, n *int) {
	*n++
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Unix(int64(*n), 0).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Interface:
		// A destination's config and object options: the test type's.
		var concrete reflect.Value
		switch v.Type() {
		case reflect.TypeFor[proto.DestinationConfig]():
			concrete = reflect.ValueOf(&prototest.Config{})
		case reflect.TypeFor[proto.ObjectOptions]():
			concrete = reflect.ValueOf(&prototest.ObjectOptions{})
		default:
			panic("fill: unhandled interface " + v.Type().String())
		}
		fill(concrete.Elem(), n)
		v.Set(concrete)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			fill(k, n)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// checkNoAlias fails if a and b share any pointer, slice array or map.
func checkNoAlias(t *testing.T, path string, a, b reflect.Value) {
	t.Helper()
	if a.Type() == reflect.TypeOf(time.Time{}) {
		return
	}
	switch a.Kind() {
	case reflect.Interface:
		if !a.IsNil() {
			checkNoAlias(t, path, a.Elem(), b.Elem())
		}
	case reflect.Pointer:
		if !a.IsNil() {
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: pointer shared", path)
				return
			}
			checkNoAlias(t, path, a.Elem(), b.Elem())
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				checkNoAlias(t, path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: slice shared", path)
			return
		}
		for i := range a.Len() {
			checkNoAlias(t, fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
		}
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			t.Errorf("%s: map shared", path)
			return
		}
		for _, k := range a.MapKeys() {
			checkNoAlias(t, fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), b.MapIndex(k))
		}
	}
}

// TestCloneTaskDeep fills every field of a Task, spec included, by
// reflection: a field added to proto.TaskSpec that cloneSpec forgets to
// copy (or copies shallowly) fails here.
func TestCloneTaskDeep(t *testing.T) {
	var orig Task
	n := 0
	fill(reflect.ValueOf(&orig).Elem(), &n)
	orig.Spec.Destination.Type = prototest.Type // its config clones by its type
	c := cloneTask(&orig)
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("clone differs:\n got %+v\nwant %+v", c, orig)
	}
	checkNoAlias(t, "Task", reflect.ValueOf(c), reflect.ValueOf(orig))
}

func TestSnapshotRestoreStore(t *testing.T) {
	s := NewStore()
	mustApply(t, s, 1, NewCreateTask(testSpec("a"), t0))
	mustApply(t, s, 2, MarkTablesCopied{Name: "a", Tables: map[string]proto.LSN{"public\x00t": 7}})
	snap := s.snapshot()
	mustApply(t, s, 3, RemoveTask{Name: "a"}) // the snapshot is a copy

	r := NewStore()
	ch := r.Changed()
	r.restore(snap)
	select {
	case <-ch:
	default:
		t.Fatal("restore did not fire Changed")
	}
	got, ok := r.Task("a")
	if !ok || got.TablesCopied["public\x00t"] != 7 || r.Index() != 2 {
		t.Fatalf("restored %+v (index %d)", got, r.Index())
	}
}

func TestPauseFencesStatusAndResume(t *testing.T) {
	s := NewStore()
	mustApply(t, s, 1, NewCreateTask(testSpec("a"), t0))
	mustApply(t, s, 2, BumpEpoch{Name: "a"}) // a runner starts at epoch 2
	mustApply(t, s, 3, SetTaskStatus{Name: "a", Epoch: 2, State: proto.StateRunning})
	mustApply(t, s, 4, PauseTask{Name: "a"})
	got, _ := s.Task("a")
	if got.State != proto.StatePaused || got.Epoch != 4 {
		t.Fatalf("after pause: state %s epoch %d", got.State, got.Epoch)
	}
	// The runner's late report must not undo the pause.
	if err := s.Apply(5, SetTaskStatus{Name: "a", Epoch: 2, State: proto.StateRunning}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale report: %v", err)
	}
	if got, _ := s.Task("a"); got.State != proto.StatePaused {
		t.Fatalf("stale report changed the state to %s", got.State)
	}
	mustApply(t, s, 6, ResumeTask{Name: "a"})
	if got, _ := s.Task("a"); got.State != proto.StatePending {
		t.Fatalf("after resume: %s", got.State)
	}
	mustApply(t, s, 7, SetTaskStatus{Name: "a", State: proto.StateReleased})
	if err := s.Apply(8, PauseTask{Name: "a"}); !errors.Is(err, ErrBadTransition) {
		t.Fatalf("pause of a finished task: %v", err)
	}
}

// A full-sync plan: only its capture's epoch records it, copy units are
// wanted once it is ready and while they have chunks left, a replaced plan
// refuses marks, and a new capture owner drops it.
func TestFullSyncPlan(t *testing.T) {
	s := NewStore()
	mustApply(t, s, 1, NewCreateTask(testSpec("a"), t0))
	mustApply(t, s, 2, SetTaskStatus{Name: "a", Phase: proto.PhaseFull, State: proto.StateRunning})
	plan := FullSyncPlan{Snapshot: "snap", Units: 3, TablesTotal: 2, RowsEstimated: 100, Tables: []PlannedCopy{
		{Table: proto.TableID{Schema: "public", Name: "x"}, Chunks: []PlannedChunk{{Unit: 0}, {Unit: 1}}},
		{Table: proto.TableID{Schema: "public", Name: "y"}, Chunks: []PlannedChunk{{Unit: 1}, {Unit: 2}}},
	}}
	if err := s.Apply(3, SetFullSyncPlan{Name: "a", Epoch: 99, Plan: plan}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("plan of a stale epoch: %v", err)
	}
	mustApply(t, s, 4, SetFullSyncPlan{Name: "a", Epoch: 1, Plan: plan})
	units := func() []string {
		task, _ := s.Task("a")
		var out []string
		for _, u := range TaskUnits(&task, 2) {
			out = append(out, u.ID.String())
		}
		return out
	}
	if got := units(); !reflect.DeepEqual(got, []string{"a/capture"}) {
		t.Fatalf("units before ready: %v", got)
	}
	mustApply(t, s, 5, MarkFullSyncReady{Name: "a", Plan: 4})
	if got := units(); !reflect.DeepEqual(got, []string{"a/capture", "a/copy/0", "a/copy/1", "a/copy/2"}) {
		t.Fatalf("units once ready: %v", got)
	}
	mustApply(t, s, 6, MarkChunkCopied{Name: "a", Plan: 4, Table: 0, Chunk: 0, Rows: 10})
	mustApply(t, s, 7, MarkChunkCopied{Name: "a", Plan: 4, Table: 1, Chunk: 1, Rows: 5})
	mustApply(t, s, 8, MarkChunkCopied{Name: "a", Plan: 4, Table: 1, Chunk: 1, Rows: 999}) // a retry: counted once
	if got := units(); !reflect.DeepEqual(got, []string{"a/capture", "a/copy/1"}) {
		t.Fatalf("units with unit 1's chunks left: %v", got)
	}
	task, _ := s.Task("a")
	if done, _ := task.FullSync.TableDone(0); done {
		t.Fatal("table x done with a chunk left")
	}
	if f := task.FullProgress(); f != (proto.FullProgress{RowsDone: 15, RowsEstimated: 100, TablesTotal: 2}) {
		t.Fatalf("progress: %+v", f)
	}
	if err := s.Apply(9, MarkChunkCopied{Name: "a", Plan: 4, Table: 2, Chunk: 0}); err == nil {
		t.Fatal("a chunk outside the plan was accepted")
	}
	mustApply(t, s, 10, SetFullSyncPlan{Name: "a", Epoch: 1, Plan: plan})
	if err := s.Apply(11, MarkChunkCopied{Name: "a", Plan: 4, Table: 0, Chunk: 1}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("mark of a replaced plan: %v", err)
	}
	mustApply(t, s, 12, BumpEpoch{Name: "a"})
	if task, _ := s.Task("a"); task.FullSync != nil {
		t.Fatal("a new capture owner kept the old owner's plan")
	}
}
