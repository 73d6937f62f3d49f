package coordinator

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Raft log entries are decoded by every replica, from its own log, from a
// snapshot's peers and from the leader's AppendEntries: Decode must not
// panic on any input, and a command it returns must re-encode and decode
// to the same command (replicas that re-propose or forward it must agree).
func FuzzDecodeCommand(f *testing.F) {
	for _, entry := range commandFuzzSeeds(f) {
		f.Add(entry)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		cmd, err := Decode(entry)
		if err != nil {
			if cmd != nil {
				t.Fatalf("error %v with a command", err)
			}
			return
		}
		if cmd.Type() != CommandType(entry[0]) {
			t.Fatalf("entry of type %d decoded as %T (type %d)", entry[0], cmd, cmd.Type())
		}
		_ = commandName(cmd.Type())
		again, err := Encode(cmd)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", cmd, err)
		}
		cmd2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
		// The first trip may turn an empty map or list of an omitempty
		// field (`"rename":{}`) into nil, which means the same to every
		// handler. From then on the command and its encoding are fixed.
		again2, err := Encode(cmd2)
		if err != nil {
			t.Fatalf("%#v does not encode: %v", cmd2, err)
		}
		if !bytes.Equal(again, again2) {
			t.Fatalf("round trip changed the command:\n%#v\n%#v\nencoded %q, then %q", cmd, cmd2, again, again2)
		}
		cmd3, err := Decode(again2)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again2, err)
		}
		if !reflect.DeepEqual(cmd2, cmd3) {
			t.Fatalf("round trip changed the command:\n%#v\n%#v\nvia %q", cmd2, cmd3, again2)
		}
	})
}

// commandFuzzSeeds encodes one filled-in instance of every registered
// command type (a zero one for a type added later without a sample here),
// plus broken entries.
func commandFuzzSeeds(tb testing.TB) [][]byte {
	at := time.Date(2026, 11, 21, 20, 30, 30, 123456789, time.UTC)
	east := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+30*60))
	yes := true
	spec, err := proto.ParseTaskSpec([]byte(`name: orders-to-warehouse
source:      { dsn: "postgres://repl:secret@10.0.0.5:5432/shop" }
destination: { type: test, dsn: "postgres://app:secret@10.0.0.9:5432/wh" }
sync:        { ddl: true, ddl_operations: [add_column] }
objects:
  - schema: public
  - schema: sales
    tables: [orders, customers]
    filter: { orders: "region = 'eu'" }
    operations: { customers: [insert, update] }
    columns: { customers: [id, name, email] }
    rename_schema: sales_copy
    rename: { orders: sales_orders, "orders.amount": total }
retry: { connection: 720m, other: 10m }
throttle: { full: { rps: 50000, mbps: 40, qps: 20 }, incremental: { rps: 5000 } }
alerts: { webhook: "https://hooks.example.com/x", latency: { above: 30s, for: 5m }, retained_wal: 10GiB }
cluster: eu
`))
	if err != nil {
		tb.Fatal(err)
	}
	throttle := &proto.ThrottleSpec{Full: &proto.RateSpec{RPS: 100, MBPS: 2, QPS: 3}}
	alerts := &proto.AlertSpec{Webhook: "http://h/", OnFailure: &yes, Latency: &proto.LatencyAlert{Above: proto.Duration(30 * time.Second)}}
	retry := proto.RetrySpec{Connection: proto.Duration(time.Hour), Other: proto.Duration(time.Minute)}
	dest := proto.TableID{Schema: "wh", Name: "Orders Ü"}
	samples := []Command{
		&CreateTask{Spec: *spec, At: at},
		&SetTaskStatus{Name: "t1", Epoch: 7, Phase: proto.PhaseFull, State: proto.StateRetrying, KeepError: true, IfRunnable: true,
			Error: &proto.TaskError{Kind: proto.ErrorConnection, Message: "dial tcp: refused\n\"quoted\" \u00fc", At: at, RetryUntil: east}},
		&MarkSlotCreated{Name: "t1", ConsistentLSN: 0x16B374D848},
		&MarkTablesCopied{Name: "t1", Tables: map[string]proto.LSN{"public\x00orders": 1 << 40, "sales\x00c": 0}, Rows: -1},
		&ResetTablesCopied{Name: "t1"},
		&MarkPostDataDone{Name: "t1"},
		&BumpEpoch{Name: "t1"},
		&MarkDeleting{Name: "t1"},
		&RemoveTask{Name: "t1"},
		&PauseTask{Name: "t1"},
		&ResumeTask{Name: "t1"},
		&SetFullSyncPlan{Name: "t1", Epoch: 9, Plan: FullSyncPlan{ID: 10, Snapshot: "00000003-00000002-1", LSN: 0x1000, Units: 2, Ready: true,
			TablesTotal: 3, RowsEstimated: 1 << 40, Tables: []PlannedCopy{
				{Table: proto.TableID{Schema: "public", Name: "orders"}, Columns: []string{"id", "note"}, Format: proto.CopyBinary, Filter: "id > 1",
					Partitioned: true, Keep: true, Dest: &dest, DestColumns: []string{"id", "Note"}, DestKey: []string{"id"}, Types: []uint32{20, 25}, Key: []string{"id"},
					Chunks: []PlannedChunk{{FromPage: 0, ToPage: 4096, Unit: 0, Done: true, Rows: 12}, {FromPage: 4096, ToPage: -1, Unit: 1}}},
				{Table: proto.TableID{Schema: "public", Name: "empty"}, Columns: []string{}, Chunks: nil},
			}}},
		&MarkFullSyncReady{Name: "t1", Plan: 10},
		&MarkChunkCopied{Name: "t1", Plan: 10, Table: 0, Chunk: 1, Rows: 99},
		&SetThrottle{Name: "t1", Throttle: throttle},
		&MarkKeptTables{Name: "t1", Tables: []string{"public\x00orders"}},
		&UpdateSettings{Name: "t1", Retry: retry, Alerts: alerts, Throttle: throttle},
		&SetTaskTables{Name: "t1", Tables: []string{"public\x00a", "public\x00b"}},
		&ChangeTables{Name: "t1", Objects: spec.Objects, Add: []string{"sales\x00new"}, Remove: []string{"public\x00a"}, Retry: retry, Alerts: alerts, Throttle: throttle},
		&FinishAdding{Name: "t1", Tables: []string{"sales\x00new"}},
		&RegisterNode{Node: Node{ID: "n1", API: "10.0.0.1:7420", Raft: "10.0.0.1:7421", Roles: []string{RoleCoordinator, RoleBroker, RoleWorker},
			Pool: "eu", Capacity: 4, Live: true, Draining: true, Since: east, RegisterIndex: 3}, At: at},
		&SetNodesLive{Live: map[string]bool{"n1": true, "n2": false}, At: at},
		&DrainNode{ID: "n2", Undo: true},
		&RemoveNode{ID: "n3"},
		&ApplyPlan{Moves: []PlanMove{{Unit: "t1/capture", From: "n1", To: "n2", Reason: "drain"}, {Unit: "t1/copy/1", From: "n2"}},
			Waiting: map[string]string{"t1": "no worker in pool eu"}, At: at},
	}
	byType := map[CommandType]Command{}
	for _, c := range samples {
		byType[c.Type()] = c
	}
	var seeds [][]byte
	for typ := 0; typ < len(handlers); typ++ {
		h := handlers[typ]
		if h == nil {
			continue
		}
		cmd, ok := byType[CommandType(typ)]
		if !ok {
			cmd = reflect.New(h.goType).Interface().(Command)
		}
		for _, c := range []Command{cmd, reflect.New(h.goType).Interface().(Command)} {
			entry, err := Encode(c)
			if err != nil {
				tb.Fatalf("encode %T: %v", c, err)
			}
			seeds = append(seeds, entry)
		}
	}
	create := seeds[0]
	seeds = append(seeds,
		nil,
		[]byte{0},
		[]byte{255, '{', '}'},
		[]byte{byte(CmdCreateTask)},
		[]byte{byte(CmdCreateTask), 'n', 'u', 'l', 'l'},
		create[:len(create)/2], // truncated JSON
		append([]byte{byte(CmdSetTaskStatus)}, `{"name":"t1","epoch":-1,"error":{"at":"2026-13-01T00:00:00Z"}}`...),
		append([]byte{byte(CmdUpdateSettings)}, `{"name":"t1","retry":{"connection":"forever","other":5},"alerts":{"latency":{"above":"-1s"}}}`...),
		append([]byte{byte(CmdSetNodesLive)}, `{"live":{"n1":true,"n1":false},"at":"2026-01-01T00:00:00+23:59"}`...),
	)
	return seeds
}
