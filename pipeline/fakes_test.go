package pipeline

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// Fakes of the pipeline's three sides, sharing one record of what was
// called in which order: a source with a schema and a slot, a sink that
// remembers what it was asked, and the real replicated state machine
// (coordinator.Store, each command through its encoding) with copy units
// played by a goroutine that marks the plan's chunks copied.

// events is the order of calls across the fakes.
type events struct {
	mu   sync.Mutex
	list []string
	// fail maps a call's name to the error it returns, as many times as
	// failTimes says (0: always).
	fail      map[string]error
	failTimes map[string]int
}

func newEvents() *events { return &events{fail: map[string]error{}, failTimes: map[string]int{}} }

// call records name and returns its injected failure, if any.
func (e *events) call(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, name)
	err, ok := e.fail[name]
	if !ok {
		return nil
	}
	if n := e.failTimes[name]; n > 0 {
		if n == 1 {
			delete(e.fail, name)
		}
		e.failTimes[name] = n - 1
	}
	return err
}

// failOnce makes name fail once with err.
func (e *events) failOnce(name string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail[name], e.failTimes[name] = err, 1
}

func (e *events) failAlways(name string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail[name], e.failTimes[name] = err, 0
}

func (e *events) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// index is the position of the first event named name (-1: none).
func (e *events) index(name string) int { return slices.Index(e.snapshot(), name) }

// count is how often name happened.
func (e *events) count(name string) int {
	n := 0
	for _, ev := range e.snapshot() {
		if ev == name {
			n++
		}
	}
	return n
}

// fakeStore is the real state machine, its log indexes counted here.
type fakeStore struct {
	mu  sync.Mutex
	s   *coordinator.Store
	idx uint64
	ev  *events
	// retries are the retrying statuses set, with the task's phase then.
	retries []statusSeen
}

// statusSeen is a status set, with the phase the task was in.
type statusSeen struct {
	coordinator.SetTaskStatus
	phase proto.Phase
}

// lastRetry is the last retrying status set (nil: none).
func (f *fakeStore) lastRetry() *statusSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.retries) == 0 {
		return nil
	}
	s := f.retries[len(f.retries)-1]
	return &s
}

func newFakeStore(ev *events) *fakeStore { return &fakeStore{s: coordinator.NewStore(), ev: ev} }

func (f *fakeStore) Task(name string) (coordinator.Task, bool) { return f.s.Task(name) }
func (f *fakeStore) Tasks() []coordinator.Task                 { return f.s.Tasks() }

func (f *fakeStore) Apply(_ context.Context, cmd coordinator.Command) error {
	name := fmt.Sprintf("%T", cmd)
	name = name[strings.LastIndex(name, ".")+1:]
	if st, ok := cmd.(coordinator.SetTaskStatus); ok {
		name = fmt.Sprintf("status %s %s", st.Phase, st.State)
		if st.State == proto.StateRetrying {
			task, _ := f.s.Task(st.Name)
			f.mu.Lock()
			f.retries = append(f.retries, statusSeen{st, task.Phase})
			f.mu.Unlock()
		}
	}
	if err := f.ev.call("state." + name); err != nil {
		return err
	}
	f.mu.Lock()
	f.idx++
	idx := f.idx
	f.mu.Unlock()
	return f.s.Apply(idx, cmd)
}

// copyUnits marks every chunk of a ready plan copied, 10 rows each, as the
// copy units would, until ctx ends.
func (f *fakeStore) copyUnits(ctx context.Context, task string) {
	for ctx.Err() == nil {
		if t, ok := f.Task(task); ok && t.FullSync != nil && t.FullSync.Ready {
			for i, pc := range t.FullSync.Tables {
				for j, c := range pc.Chunks {
					if !c.Done {
						_ = f.Apply(ctx, coordinator.MarkChunkCopied{Name: task, Plan: t.FullSync.ID, Table: i, Chunk: j, Rows: 10})
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fakeSource has tables public.a and public.b, two chunks each.
type fakeSource struct {
	ev      *events
	mu      sync.Mutex
	slot    capture.SlotInfo
	nextLSN proto.LSN
	// captured is where each capture started, and with a handover or not.
	captured []string
}

const chunksPerTable = 2

var fakeTables = []proto.TableID{{Schema: "public", Name: "a"}, {Schema: "public", Name: "b"}}

func fakeSchema() *proto.Schema {
	s := &proto.Schema{}
	for i, t := range fakeTables {
		s.Tables = append(s.Tables, proto.TableDef{ID: t, OID: uint32(16384 + i), PrimaryKey: []string{"id"}, ReplicaIdentity: 'd',
			Columns:       []proto.ColumnDef{{Name: "id", TypeOID: 23, Type: "integer", NotNull: true}, {Name: "v", TypeOID: 25, Type: "text"}},
			EstimatedRows: 20, EstimatedBytes: int64(1000 * (i + 1))})
	}
	return s
}

func (s *fakeSource) Session(context.Context) (Session, error) {
	if err := s.ev.call("source.Session"); err != nil {
		return nil, err
	}
	return &fakeSession{s}, nil
}

func (s *fakeSource) newSnapshot(temporary bool) *fakeSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextLSN += 0x1000
	if !temporary {
		s.slot = capture.SlotInfo{Exists: true, ConfirmedLSN: s.nextLSN}
	}
	return &fakeSnapshot{ev: s.ev, lsn: s.nextLSN, name: fmt.Sprintf("snap-%s", s.nextLSN)}
}

func (s *fakeSource) CreateSlot(context.Context) (Snapshot, error) {
	if err := s.ev.call("source.CreateSlot"); err != nil {
		return nil, err
	}
	return s.newSnapshot(false), nil
}

func (s *fakeSource) TemporarySnapshot(context.Context) (Snapshot, error) {
	if err := s.ev.call("source.TemporarySnapshot"); err != nil {
		return nil, err
	}
	return s.newSnapshot(true), nil
}

func (s *fakeSource) OpenSnapshot(_ context.Context, name string) (SnapshotSession, error) {
	if err := s.ev.call("source.OpenSnapshot"); err != nil {
		return nil, err
	}
	return &fakeSnapshotSession{ev: s.ev, name: name}, nil
}

func (s *fakeSource) RunCapture(ctx context.Context, start proto.LSN, handover Snapshot, _ func(context.Context, *proto.DDLEvent) error) error {
	s.mu.Lock()
	s.captured = append(s.captured, fmt.Sprintf("%s handover=%v", start, handover != nil))
	s.mu.Unlock()
	if err := s.ev.call("source.RunCapture"); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

type fakeSession struct{ s *fakeSource }

func (f *fakeSession) PrepareSource(context.Context, []proto.TableID) error {
	return f.s.ev.call("session.PrepareSource")
}
func (f *fakeSession) InstallDDLCapture(context.Context, []proto.TableID) error {
	return f.s.ev.call("session.InstallDDLCapture")
}
func (f *fakeSession) LookupSlot(context.Context) (capture.SlotInfo, error) {
	if err := f.s.ev.call("session.LookupSlot"); err != nil {
		return capture.SlotInfo{}, err
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.slot, nil
}
func (f *fakeSession) DropSlot(context.Context) error {
	f.s.mu.Lock()
	f.s.slot = capture.SlotInfo{}
	f.s.mu.Unlock()
	return f.s.ev.call("session.DropSlot")
}
func (f *fakeSession) ListTables(context.Context) ([]proto.TableID, error) {
	return slices.Clone(fakeTables), f.s.ev.call("session.ListTables")
}
func (f *fakeSession) PresentTables(_ context.Context, t []proto.TableID) ([]proto.TableID, error) {
	return t, f.s.ev.call("session.PresentTables")
}
func (f *fakeSession) LinkedTables(context.Context, []proto.TableID) (map[string]string, error) {
	return nil, nil
}

func (f *fakeSession) DDLTables(context.Context) ([]proto.TableID, error) {
	return nil, f.s.ev.call("session.DDLTables")
}
func (f *fakeSession) ReadSchema(context.Context) (*proto.Schema, error) {
	return fakeSchema(), f.s.ev.call("session.ReadSchema")
}
func (f *fakeSession) Close() { _ = f.s.ev.call("session.Close") }

type fakeSnapshot struct {
	ev   *events
	lsn  proto.LSN
	name string
	once sync.Once
}

func (s *fakeSnapshot) LSN() proto.LSN { return s.lsn }
func (s *fakeSnapshot) Name() string   { return s.name }
func (s *fakeSnapshot) Close()         { s.once.Do(func() { _ = s.ev.call("snapshot.Close") }) }

type fakeSnapshotSession struct {
	ev   *events
	name string
	once sync.Once
}

func (s *fakeSnapshotSession) ReadSchema(context.Context) (*proto.Schema, error) {
	return fakeSchema(), s.ev.call("holder.ReadSchema")
}
func (s *fakeSnapshotSession) PlanChunks(_ context.Context, t *proto.TableDef, _ int64) ([]capture.Chunk, error) {
	if err := s.ev.call("holder.PlanChunks"); err != nil {
		return nil, err
	}
	var out []capture.Chunk
	for i := range chunksPerTable {
		out = append(out, capture.Chunk{Table: t.ID, FromPage: int64(i * 10), ToPage: int64(i*10 + 10), Index: i, Of: chunksPerTable})
	}
	return out, nil
}
func (s *fakeSnapshotSession) ServerMajor(context.Context) (int, error) {
	return 15, s.ev.call("holder.ServerMajor")
}
func (s *fakeSnapshotSession) Export(context.Context) (string, error) {
	return s.name + "-again", s.ev.call("holder.Export")
}
func (s *fakeSnapshotSession) Alive(context.Context) error { return s.ev.call("holder.Alive") }
func (s *fakeSnapshotSession) Close()                      { s.once.Do(func() { _ = s.ev.call("holder.Close") }) }

// fakeSink is a destination that remembers what it was asked.
type fakeSink struct {
	ev *events
	mu sync.Mutex
	// finished maps a table's key to the position FinishTable stored.
	finished map[string]proto.Position
}

var _ apply.TaskSink = (*fakeSink)(nil)

func newFakeSink(ev *events) *fakeSink {
	return &fakeSink{ev: ev, finished: map[string]proto.Position{}}
}

func (s *fakeSink) Close(context.Context) error { return s.ev.call("sink.Close") }
func (s *fakeSink) Offsets(context.Context, string) (map[string]proto.Position, error) {
	return nil, s.ev.call("sink.Offsets")
}
func (s *fakeSink) Apply(context.Context, *apply.Changes) error { return s.ev.call("sink.Apply") }
func (s *fakeSink) BeginTable(context.Context, string, proto.TableID, uint64, bool) error {
	return s.ev.call("sink.BeginTable")
}
func (s *fakeSink) CopyChunk(context.Context, apply.ChunkLoad, func(io.Writer) (int64, error)) (int64, error) {
	return 0, s.ev.call("sink.CopyChunk")
}
func (s *fakeSink) CopyFormatFor(context.Context, *proto.TableDef, int) (proto.CopyFormat, error) {
	return proto.CopyText, s.ev.call("sink.CopyFormatFor")
}
func (s *fakeSink) FinishTable(_ context.Context, _ string, t proto.TableID, _ uint64, at proto.Position, _ uint64) error {
	if err := s.ev.call("sink.FinishTable"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished[t.Key()] = at
	return nil
}
func (s *fakeSink) ApplyPreData(context.Context, *proto.Schema) error {
	return s.ev.call("sink.ApplyPreData")
}
func (s *fakeSink) ApplyPostData(context.Context, *proto.Schema) error {
	return s.ev.call("sink.ApplyPostData")
}
func (s *fakeSink) SyncSequences(context.Context, *proto.Schema) error {
	return s.ev.call("sink.SyncSequences")
}
func (s *fakeSink) ExistingTables(context.Context, []proto.TableID) ([]proto.TableID, error) {
	return nil, s.ev.call("sink.ExistingTables")
}
func (s *fakeSink) ResetOffsets(context.Context, string) error { return s.ev.call("sink.ResetOffsets") }

// harness is a task and a runner over the fakes.
type harness struct {
	t      *testing.T
	ev     *events
	store  *fakeStore
	source *fakeSource
	sink   *fakeSink
	runner *Runner
	// streamed are the table sets the stream was made to carry.
	streamed int
	// done is closed when Run returns, with fenced.
	done   chan struct{}
	fenced bool
}

// newHarness creates task "t" from spec YAML (the objects, sync and retry
// sections; the rest is filled in) and a runner over the fakes whose
// retry-window minute lasts minute.
func newHarness(t *testing.T, sections string, minute time.Duration) *harness {
	t.Helper()
	spec, err := proto.ParseTaskSpec([]byte("name: t\nsource: {dsn: 'postgres://u@10.0.0.1:5432/shop'}\ndestination: {type: postgres, dsn: 'postgres://u@10.0.0.2:5432/wh'}\n" + sections))
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvents()
	h := &harness{t: t, ev: ev, store: newFakeStore(ev), source: &fakeSource{ev: ev, nextLSN: 0x10000}, sink: newFakeSink(ev)}
	if err := h.store.Apply(context.Background(), coordinator.NewCreateTask(*spec, time.Now())); err != nil {
		t.Fatal(err)
	}
	h.runner = &Runner{
		Name:   "t",
		Store:  h.store,
		Config: Config{PagesPerChunk: 10, Retry: RetryConfig{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, RetryMinute: minute}},
		Source: func(*proto.TaskSpec) Source { return h.source },
		OpenSink: func(_ context.Context, _ *proto.TaskSpec, use apply.Use) (apply.TaskSink, error) {
			name := "sink.Open"
			if use.Kind != apply.UseTask {
				name += " " + use.String()
			}
			if err := ev.call(name); err != nil {
				return nil, err
			}
			return h.sink, nil
		},
		EnsureStream: func(context.Context, []proto.TableID, map[string]string) error {
			h.streamed++
			return ev.call("stream.Ensure")
		},
		Logger: discardLogger(),
	}
	return h
}

// run starts the runner and the copy units; they stop at the test's end.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.done = make(chan struct{})
	go h.store.copyUnits(ctx, "t")
	go func() {
		defer close(h.done)
		h.fenced = h.runner.Run(ctx)
	}()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			h.t.Error("the runner did not stop")
		}
	})
}

// result says whether Run has returned (within a second), and what.
func (h *harness) result() (fenced, ended bool) {
	select {
	case <-h.done:
		return h.fenced, true
	case <-time.After(time.Second):
		return false, false
	}
}

// waitFor polls the task until cond holds, failing after 10 s.
func (h *harness) waitFor(what string, cond func(coordinator.Task) bool) coordinator.Task {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		task, _ := h.store.Task("t")
		if cond(task) {
			return task
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not reached; task %s %s, error %+v\nevents: %s", what, task.Phase, task.State, task.LastError, strings.Join(h.ev.snapshot(), ", "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
