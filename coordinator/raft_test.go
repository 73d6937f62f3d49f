package coordinator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

// openTest opens a one-voter coordinator on dir with a free loopback port
// and waits for it to lead. Shutdown is idempotent, so a test may shut it
// down early to reopen dir.
func openTest(t *testing.T, dir string) *Coordinator {
	t.Helper()
	c, err := Open(Config{DataDir: dir, BindAddr: "127.0.0.1:0", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.IsLeader() || c.Leader() != "node1" {
		t.Fatalf("leader = %q, IsLeader = %v", c.Leader(), c.IsLeader())
	}
	return c
}

func applyAll(t *testing.T, c *Coordinator, cmds ...Command) {
	t.Helper()
	for _, cmd := range cmds {
		if err := c.Apply(context.Background(), cmd); err != nil {
			t.Fatalf("apply %T: %v", cmd, err)
		}
	}
}

func TestOpenValidates(t *testing.T) {
	for _, cfg := range []Config{
		{BindAddr: "127.0.0.1:0"},
		{DataDir: t.TempDir()},
		{DataDir: t.TempDir(), BindAddr: "no-port"},
	} {
		if c, err := Open(cfg); err == nil {
			_ = c.Shutdown()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
	// 0.0.0.0 cannot be advertised to other voters.
	if c, err := Open(Config{DataDir: t.TempDir(), BindAddr: "0.0.0.0:0"}); err == nil {
		_ = c.Shutdown()
		t.Error("Open with an unspecified bind address succeeded")
	}
}

func TestApplyAndReopen(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir)

	ch := c.Changed()
	spec := testSpec("orders")
	applyAll(t, c, NewCreateTask(spec, t0))
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire after Apply returned")
	}
	if err := c.Apply(context.Background(), NewCreateTask(spec, t0)); !errors.Is(err, ErrTaskExists) {
		t.Fatalf("duplicate: %v, want ErrTaskExists", err)
	}
	if err := c.Apply(context.Background(), MarkDeleting{Name: "nope"}); !errors.Is(err, ErrTaskNotFound) {
		t.Fatalf("missing: %v, want ErrTaskNotFound", err)
	}
	applyAll(t, c,
		NewCreateTask(testSpec("customers"), t0),
		SetTaskStatus{Name: "orders", Phase: proto.PhaseFull, State: proto.StateRunning},
		MarkSlotCreated{Name: "orders", ConsistentLSN: 0x100},
		MarkTablesCopied{Name: "orders", Tables: map[string]proto.LSN{"public\x00orders": 0x100}},
		BumpEpoch{Name: "orders"},
	)
	want := c.Tasks()
	if len(want) != 2 || want[1].Epoch != want[1].ModifyIndex || want[1].ModifyIndex == 0 {
		t.Fatalf("tasks: %+v", want)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// Reopen: the state comes back from the log.
	c = openTest(t, dir)
	if got := c.Tasks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after log replay:\n got %+v\nwant %+v", got, want)
	}
	if got, _ := c.Task("orders"); got.Spec.Source.DSN != spec.Source.DSN || prototest.ConfigOf(&got.Spec).DSN != prototest.ConfigOf(&spec).DSN {
		t.Fatalf("DSNs with passwords not kept: %q %q", got.Spec.Source.DSN, prototest.ConfigOf(&got.Spec).DSN)
	}

	// A forced snapshot, then one more entry after it: a reopen restores
	// the snapshot and replays the tail.
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	applyAll(t, c, RemoveTask{Name: "customers"}, MarkPostDataDone{Name: "orders"})
	want = c.Tasks()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}
	data, err := os.ReadFile(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(spec.Source.DSN)) {
		t.Fatal("the snapshot must hold the real DSN: nodes connect with it")
	}

	c = openTest(t, dir)
	if got := c.Tasks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after snapshot restore:\n got %+v\nwant %+v", got, want)
	}
}

// TestRestoreFromSnapshotOnly removes the log entries the snapshot covers,
// so the reopened state can only come from Restore.
func TestRestoreFromSnapshotOnly(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir)
	applyAll(t, c, NewCreateTask(testSpec("orders"), t0), BumpEpoch{Name: "orders"})
	want := c.Tasks()
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	last := c.raft.LastIndex()
	if err := c.wal.DeleteRange(1, last); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, dir)
	if got := c.Tasks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore:\n got %+v\nwant %+v", got, want)
	}
}

func TestApplyErrors(t *testing.T) {
	c := openTest(t, t.TempDir())
	if err := c.Apply(context.Background(), bogus{}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("unknown command: %v, want ErrUnknownCommand", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Apply(ctx, NewCreateTask(testSpec("a"), t0)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	_ = c.Shutdown()
	if err := c.Apply(context.Background(), NewCreateTask(testSpec("a"), t0)); err == nil {
		t.Error("Apply after Shutdown succeeded")
	}
}

func TestFSMPanicsOnUnknownEntry(t *testing.T) {
	f := &fsm{store: NewStore(), logger: slog.New(slog.DiscardHandler)}
	for _, data := range [][]byte{{200, '{', '}'}, {byte(CmdCreateTask), 'x'}} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), "entry 5") {
					t.Errorf("entry %q: recovered %v, want a panic naming the entry", data, r)
				}
			}()
			f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: data})
		}()
	}
	// Raft's own entries (configuration, barriers) are not ours to decode.
	if r := f.Apply(&raft.Log{Index: 6, Type: raft.LogBarrier}); r != nil {
		t.Errorf("barrier: %v", r)
	}
}

func TestRaftLogsGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := newHCLogger(logger).Named("transport")
	h.Info("chatty") // below the slog level
	h.Warn("failed to contact", "server-id", "node2", "error", "refused")
	out := buf.String()
	if strings.Contains(out, "chatty") {
		t.Errorf("info logged at warn level: %s", out)
	}
	for _, want := range []string{"level=WARN", `msg="failed to contact"`, "component=raft.transport", "server-id=node2", "error=refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

// A node's first election (no leader known yet, as at every start) is
// not a warning; losing a known leader is.
func TestFirstElectionIsNoWarning(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := newHCLogger(logger)
	h.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
	if buf.Len() != 0 {
		t.Errorf("first election logged as a warning: %s", buf.String())
	}
	h.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "127.0.0.1:7421", "last-leader-id", "n1")
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("a lost leader is not a warning: %q", buf.String())
	}
}

func TestOpenTwiceFailsFast(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir)
	c, err := Open(Config{DataDir: dir, BindAddr: "127.0.0.1:0", Bootstrap: true})
	if err == nil {
		_ = c.Shutdown()
		t.Fatal("a second Open on the same DataDir succeeded")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not say the directory is in use", err)
	}
}

// TestShutdownLeavesNoGoroutines: Raft, the transport and the WAL all stop.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := openTest(t, t.TempDir())
	applyAll(t, c, NewCreateTask(testSpec("a"), t0))
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before Open, %d after Shutdown:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
