package coordinator

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

// Golden files lock the persisted formats, so that a change to one is a
// visible diff:
//
//   - testdata/commands/<Command>.golden: goldenLog's entry of that
//     command: a line "<type byte> <name>", then the payload as indented
//     JSON (the entry holds it compact; parseEntry gives Encode's bytes
//     back);
//   - testdata/commands/v1/: the same entries as Sluice wrote them before
//     commands carried spec records (format version 1);
//   - testdata/snapshot.golden: goldenStore's snapshot, indented, and
//     testdata/snapshot.v1.golden, the same from before snapshots held
//     records.
//
// -update rewrites the current ones, after a change of format made on
// purpose (with a new version where old payloads would read differently).
// The version 1 files are history: nothing rewrites them.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var (
	goldenAt    = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	goldenSince = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+30*60))
)

func goldenSpec(name string) proto.TaskSpec {
	return proto.TaskSpec{
		Name:   name,
		Source: proto.SourceSpec{DSN: "postgres://repl:s3cret@10.0.0.5:5432/shop", PasswordFile: "/etc/sluice/source.pw"},
		Destination: proto.NewDestination(prototest.Type, &prototest.Config{DSN: "postgres://app:hunter2@10.0.0.9:5432/wh",
			Password: "${env:DEST_PASSWORD}", Limit: 7}),
		Sync: proto.SyncSpec{Schema: boolp(true), Full: boolp(true), Incremental: boolp(true), DDL: boolp(true), DDLOperations: []string{"add_column", "drop_column"}},
		Objects: []proto.ObjectSpec{
			{Schema: "public"},
			{Schema: "sales", Tables: []string{"orders", "customers"}, Rename: map[string]string{"orders": "sales_orders", "orders.amount": "total"},
				RenameSchema: "sales_copy", Filter: map[string]string{"orders": "region = 'eu' AND amount < 10 & 2 > 1"},
				Operations: map[string][]string{"customers": {"insert", "update"}}, Columns: map[string][]string{"customers": {"id", "name"}},
				Options: &prototest.ObjectOptions{Tags: map[string]string{"team": "sales", "tier": "gold"}}},
		},
		ConflictingTables: "ignore",
		NameCase:          "lower",
		Retry:             proto.RetrySpec{Connection: proto.Duration(720 * time.Minute), Other: proto.Duration(10 * time.Minute)},
		Throttle:          &proto.ThrottleSpec{Full: &proto.RateSpec{RPS: 50000, MBPS: 40, QPS: 20}, Incremental: &proto.RateSpec{RPS: 20000, MBPS: 10}},
		Cluster:           "eu",
		Alerts: &proto.AlertSpec{Webhook: "https://hooks.example.com/sluice?a=1&b=2", OnFailure: boolp(false),
			Latency: &proto.LatencyAlert{Above: proto.Duration(30 * time.Second), For: proto.Duration(5 * time.Minute)}, RetainedWAL: "10GiB",
			OnDifferences: boolp(false)},
		Verify: &proto.VerifySpec{Interval: proto.Duration(2 * time.Hour), Sample: "0.5%"},
	}
}

// Fields added to the records after version 1 (all optional: a payload
// without them reads as it did). The version 1 golden files cannot hold
// them, so the tests that replay those compare them with goldenLog's
// commands without these fields (goldenLogV1).
func withoutLaterFields(cmd Command) Command {
	alerts := func(a *AlertsV1) *AlertsV1 {
		if a == nil {
			return nil
		}
		c := *a
		c.OnDifferences = nil
		return &c
	}
	switch c := cmd.(type) {
	case CreateTask:
		c.Spec.Verify, c.Spec.Alerts = nil, alerts(c.Spec.Alerts)
		return c
	case ChangeTables:
		c.Verify, c.Alerts = nil, alerts(c.Alerts)
		return c
	case UpdateSettings:
		c.Verify, c.Alerts = nil, alerts(c.Alerts)
		return c
	case SetFullSyncPlan:
		p := c.Plan.clone()
		for i := range p.Tables {
			p.Tables[i].Estimated = 0
			for j := range p.Tables[i].Chunks {
				p.Tables[i].Chunks[j].Copying = 0
			}
		}
		c.Plan = *p
		return c
	}
	return cmd
}

// goldenLogV1 is goldenLog as version 1 could write it.
func goldenLogV1() []Command {
	log := goldenLog()
	for i, cmd := range log {
		log[i] = withoutLaterFields(cmd)
	}
	return log
}

// goldenLog is a Raft log that uses every command type, each one with
// every field set, in an order in which each applies without error: entry
// i is at Raft index i+1 (the epochs it names are those indexes).
func goldenLog() []Command {
	spec := goldenSpec("orders")
	changed := spec.Clone()
	changed.Objects = append(changed.Objects, proto.ObjectSpec{Schema: "audit", Tables: []string{"log"},
		Options: &prototest.ObjectOptions{Tags: map[string]string{"team": "audit"}}})
	retry := proto.RetrySpec{Connection: proto.Duration(90 * time.Minute), Other: proto.Duration(90 * time.Second)}
	alerts := &proto.AlertSpec{Webhook: "http://alerts.internal/hook", OnFailure: boolp(true),
		Latency: &proto.LatencyAlert{Above: proto.Duration(time.Minute)}, RetainedWAL: "500MB", OnDifferences: boolp(true)}
	throttle := &proto.ThrottleSpec{Full: &proto.RateSpec{RPS: 100, MBPS: 2, QPS: 3}, Incremental: &proto.RateSpec{RPS: 50}}
	settings := proto.TaskSpec{Retry: retry, Throttle: throttle, Verify: &proto.VerifySpec{Sample: "100%"}}
	dest := proto.TableID{Schema: "wh", Name: "Orders Ü"}
	const epoch = 6 // the CreateTask's index
	return []Command{
		CreateToken{Token: Token{ID: "0123456789ab", Name: "ops", Scope: ScopeAdmin, Hash: strings.Repeat("5e", 32), CreatedAt: goldenAt, Bootstrap: true}},
		SetSecretKey{ID: "0123456789abcdef", Rotate: true},
		RegisterNode{Node: Node{ID: "n1", API: "10.0.0.1:7420", Raft: "10.0.0.1:7421", Roles: []string{RoleCoordinator, RoleBroker, RoleWorker},
			Pool: "eu", Capacity: 4, Live: true, Draining: true, Since: goldenSince, RegisterIndex: 99}, At: goldenAt},
		SetNodesLive{Live: map[string]bool{"n1": false, "n2": true}, At: goldenAt.Add(time.Second)},
		DrainNode{ID: "n1", Undo: true},
		NewCreateTask(spec, goldenAt),
		SetTaskStatus{Name: "orders", Epoch: epoch, Phase: proto.PhaseIncremental, State: proto.StateRetrying, KeepError: true, IfRunnable: true,
			Error: &proto.TaskError{Kind: proto.ErrorConnection, Message: "dial tcp 10.0.0.9:5432: connection refused\n\"quoted\" ü <b>", At: goldenAt, RetryUntil: goldenSince}},
		MarkSlotCreated{Name: "orders", ConsistentLSN: 0x16B374D848, Epoch: epoch},
		SetTaskTables{Name: "orders", Tables: []string{"public\x00orders", "sales\x00customers", "sales\x00refunds"}, Epoch: epoch},
		MarkKeptTables{Name: "orders", Tables: []string{"sales\x00customers"}, Epoch: epoch},
		SetFullSyncPlan{Name: "orders", Epoch: epoch, Plan: FullSyncPlan{ID: 99, Snapshot: "00000003-00000002-1", LSN: 0x1000, Units: 2, Ready: true,
			TablesTotal: 3, RowsEstimated: 1 << 40, Tables: []PlannedCopy{
				{Table: proto.TableID{Schema: "public", Name: "orders"}, Columns: []string{"id", "note"}, Format: proto.CopyBinary, Filter: "id > 1",
					Partitioned: true, Keep: true, Dest: &dest, DestColumns: []string{"id", "Note"}, DestKey: []string{"id"}, Types: []uint32{20, 25}, Key: []string{"id"},
					Chunks: []PlannedChunk{{FromPage: 0, ToPage: 4096, Unit: 0, Done: true, Rows: 12}, {FromPage: 4096, ToPage: -1, Unit: 1, Copying: 3}}, Estimated: 900},
				{Table: proto.TableID{Schema: "sales", Name: "refunds"}, Columns: []string{"id"}, Chunks: []PlannedChunk{{FromPage: 0, ToPage: -1, Unit: 1}}},
			}}},
		MarkFullSyncReady{Name: "orders", Plan: 11, Epoch: epoch},
		MarkChunkCopied{Name: "orders", Plan: 11, Table: 0, Chunk: 1, Rows: 99},
		MarkTablesCopied{Name: "orders", Tables: map[string]proto.LSN{"public\x00orders": 0x1000, "sales\x00refunds": 0x1000}, Rows: 111, Epoch: epoch},
		MarkPostDataDone{Name: "orders", Epoch: epoch},
		ChangeTables{Name: "orders", Objects: ObjectRecords(changed.Objects), Add: []string{"audit\x00log"}, Remove: []string{"sales\x00refunds"},
			SettingsV1: SettingsRecord(&settings, alerts)},
		FinishAdding{Name: "orders", Tables: []string{"audit\x00log"}, Epoch: epoch},
		UpdateSettings{Name: "orders", SettingsV1: SettingsRecord(&spec, spec.Alerts)},
		SetThrottle{Name: "orders", Throttle: ThrottleRecord(throttle)},
		ResealTask{Name: "orders", SourceDSN: "postgres://repl:${sealed:v1:0123456789abcdef:AAAA}@10.0.0.5:5432/shop",
			Destination: map[string]string{"dsn": "postgres://app:${sealed:v1:0123456789abcdef:BBBB}@10.0.0.9:5432/wh", "password": "${sealed:v1:0123456789abcdef:CCCC}"},
			Webhook:     "${sealed:v1:0123456789abcdef:DDDD}", LegacyDestinationDSN: "postgres://old@h/d", LegacySASLPassword: "old", LegacySchemaRegistry: "http://old/"},
		ApplyPlan{Moves: []PlanMove{{Unit: "orders/capture", To: "n1", Reason: "new unit"}, {Unit: "orders/apply/0", From: "n7", To: "n2", Reason: "node n7 is down"}},
			Waiting: map[string]string{"orders": "no live worker in pool eu"}, At: goldenAt},
		PauseTask{Name: "orders"},
		ResumeTask{Name: "orders"},
		BumpEpoch{Name: "orders"},
		ResetTablesCopied{Name: "orders", Epoch: 24},
		RecordVerify{Name: "orders", Epoch: 24, Results: []VerifyRecordV1{{Table: "public.orders", Dest: "wh.orders", At: goldenAt, Rows: 1000,
			Differences: 3, Repaired: 3, Remaining: 1, Unsettled: 2, Error: "the task is behind",
			Sample: &VerifySampleV1{Window: 4, Windows: 200, From: []string{"1000"}, To: []string{"2000"}}},
			{Table: "sales.customers", Dest: "sales_copy.customers", At: goldenAt, Rows: 7, Sample: &VerifySampleV1{Windows: 1}}}},
		ReportRowsApplied{Name: "orders", Unit: "apply/3", Epoch: 24, Start: goldenAt.UnixNano(), Rows: 1234},
		ResolveError{Name: "orders", At: goldenAt.Add(time.Minute), HealthySince: goldenAt.Add(time.Second)},
		MarkChunkProgress{Name: "orders", Plan: 11, Table: 0, Chunk: 1, Rows: 50}, // its plan is over: nothing to record
		MarkDeleting{Name: "orders"},
		RemoveTask{Name: "orders"},
		RevokeToken{ID: "0123456789ab"},
		RemoveNode{ID: "n1"},
	}
}

// renderEntry writes a log entry as its golden file holds it: the type
// byte and the command's name, then the payload, indented.
func renderEntry(entry []byte) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d %s\n", entry[0], commandName(CommandType(entry[0])))
	if err := json.Indent(&b, entry[1:], "", "\t"); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// parseEntry is the inverse of renderEntry.
func parseEntry(golden []byte) ([]byte, error) {
	head, body, ok := bytes.Cut(golden, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("no header line")
	}
	num, _, _ := strings.Cut(string(head), " ")
	typ, err := strconv.ParseUint(num, 10, 8)
	if err != nil {
		return nil, fmt.Errorf("header %q: %v", head, err)
	}
	var payload bytes.Buffer
	if err := json.Compact(&payload, body); err != nil {
		return nil, err
	}
	return append([]byte{byte(typ)}, payload.Bytes()...), nil
}

func goldenPath(dir string, typ CommandType) string {
	return filepath.Join("testdata", "commands", dir, commandName(typ)+".golden")
}

// checkGolden compares got with the golden file at path, or rewrites the
// file under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: a persisted format must not change by accident.\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestGoldenCommands: every command of goldenLog encodes to its golden
// file byte for byte, and the golden file decodes to the command.
func TestGoldenCommands(t *testing.T) {
	for _, cmd := range goldenLog() {
		entry, err := Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		rendered, err := renderEntry(entry)
		if err != nil {
			t.Fatal(err)
		}
		path := goldenPath("", cmd.Type())
		checkGolden(t, path, rendered)
		golden, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fromFile, err := parseEntry(golden)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(fromFile, entry) {
			t.Errorf("%s does not hold Encode's bytes:\n got %q\nwant %q", path, fromFile, entry)
		}
		got, err := Decode(fromFile)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if want := reflect.Indirect(reflect.ValueOf(cmd)).Interface(); !reflect.DeepEqual(reflect.ValueOf(got).Elem().Interface(), want) {
			t.Errorf("%s decodes to\n%+v\nwant\n%+v", path, got, want)
		}
	}
}

// TestEveryCommandHasGolden: a registered command type without a sample in
// goldenLog, or without its golden file, fails; so does a golden file of
// no registered command.
func TestEveryCommandHasGolden(t *testing.T) {
	sampled := map[CommandType]bool{}
	for _, cmd := range goldenLog() {
		sampled[cmd.Type()] = true
	}
	names := map[string]bool{}
	for typ, h := range handlers {
		if h == nil {
			continue
		}
		names[h.name+".golden"] = true
		if !sampled[CommandType(typ)] {
			t.Errorf("command %s (%d) has no sample in goldenLog", h.name, typ)
		}
		if _, err := os.Stat(goldenPath("", CommandType(typ))); err != nil {
			t.Errorf("command %s (%d) has no golden file: %v", h.name, typ, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "commands", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[filepath.Base(f)] {
			t.Errorf("%s is the golden file of no registered command", f)
		}
	}
}

// TestPreviousFormat replays the golden files of format version 1 (the
// entries Sluice wrote before its commands carried records, kept in
// testdata/commands/v1 and never rewritten) beside the current ones: each
// must decode to the same command and leave the same state.
func TestPreviousFormat(t *testing.T) {
	old, cur := NewStore(), NewStore()
	for i, cmd := range goldenLogV1() {
		index := uint64(i + 1)
		entry, err := Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		v1 := entry
		path := goldenPath("v1", cmd.Type())
		if golden, err := os.ReadFile(path); err == nil {
			if v1, err = parseEntry(golden); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		} // else: a command added after version 1 (both logs take it as it is now)
		oldCmd, err := Decode(v1)
		if err != nil {
			t.Fatalf("%s does not decode: %v", path, err)
		}
		curCmd, err := Decode(entry)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(oldCmd, curCmd) {
			t.Errorf("%s decodes to\n%+v\nthe current format to\n%+v", path, oldCmd, curCmd)
		}
		if err := old.applyEntry(index, v1); err != nil {
			t.Fatalf("%s at index %d: %v", path, index, err)
		}
		if err := cur.applyEntry(index, entry); err != nil {
			t.Fatalf("%s at index %d: %v", commandName(cmd.Type()), index, err)
		}
		if !reflect.DeepEqual(old.data, cur.data) {
			t.Fatalf("after %s (index %d) the states differ:\n%s\n%s", commandName(cmd.Type()), index, persist(t, old), persist(t, cur))
		}
	}
}

// unknownField is the key TestDecodeRefusesUnknownFields adds.
const unknownField = "zz_unknown_field"

// withUnknownField returns the JSON payload with unknownField added to
// its i-th object (false when it has fewer), as a newer Sluice might
// write it.
func withUnknownField(t *testing.T, payload []byte, i int) ([]byte, bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // numbers as written
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			if n == i {
				x[unknownField] = "?"
				return true
			}
			n++
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if walk(x[k]) {
					return true
				}
			}
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	if !walk(v) {
		return nil, false
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out, true
}

// TestDecodeRefusesUnknownFields adds a field at every level of every
// golden command: Decode must refuse it, unless the field is data that the
// command keeps (a key of a map, or a destination's key of an objects
// entry, which its destination type decodes when the command applies).
// Nothing may be dropped silently.
func TestDecodeRefusesUnknownFields(t *testing.T) {
	refused := 0
	for _, cmd := range goldenLog() {
		entry, err := Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			payload, ok := withUnknownField(t, entry[1:], i)
			if !ok {
				break
			}
			got, err := Decode(append([]byte{entry[0]}, payload...))
			if err != nil {
				refused++
				continue
			}
			again, err := Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(again, []byte(unknownField)) {
				t.Errorf("%s: an unknown field was dropped: %s", commandName(cmd.Type()), payload)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no unknown field was refused")
	}

	// The error names the field, at every depth, inside the destination's
	// keys included.
	for _, tc := range []struct {
		typ     CommandType
		payload string
	}{
		{CmdMarkSlotCreated, `{"name":"a","zz_unknown_field":1}`},
		{CmdSetTaskStatus, `{"name":"a","error":{"kind":"other","zz_unknown_field":1}}`},
		{CmdSetFullSyncPlan, `{"name":"a","plan":{"tables":[{"chunks":[{"unit":1,"zz_unknown_field":1}]}]}}`},
		{CmdRegisterNode, `{"node":{"id":"n1","zz_unknown_field":1}}`},
		{CmdCreateTask, `{"spec":{"name":"a","zz_unknown_field":1}}`},
		{CmdCreateTask, `{"spec":{"name":"a","source":{"dsn":"x","zz_unknown_field":1}}}`},
		{CmdCreateTask, `{"spec":{"name":"a","destination":{"type":"test","zz_unknown_field":1}}}`},
		{CmdCreateTask, `{"spec":{"name":"a","destination":{"type":"test"},"objects":[{"schema":"s","zz_unknown_field":1}]}}`},
		{CmdCreateTask, `{"spec":{"name":"a","alerts":{"latency":{"above":"1s","zz_unknown_field":1}}}}`},
		{CmdUpdateSettings, `{"name":"a","throttle":{"full":{"rps":1,"zz_unknown_field":1}}}`},
		{CmdChangeTables, `{"name":"a","objects":[{"schema":"s","tables":["t"]}],"zz_unknown_field":1}`},
	} {
		_, err := Decode(append([]byte{byte(tc.typ)}, tc.payload...))
		if err == nil || !strings.Contains(err.Error(), `unknown field "`+unknownField+`"`) {
			t.Errorf("%s %s: %v, want an error naming the unknown field", commandName(tc.typ), tc.payload, err)
		}
	}
}

// A payload of a newer format, or with data after it, does not decode.
func TestDecodeRefusesNewerVersionAndTrailingData(t *testing.T) {
	for _, tc := range []struct {
		entry []byte
		want  string
	}{
		{append([]byte{byte(CmdCreateTask)}, `{"version":2,"spec":{"name":"a"}}`...), "version 2"},
		{append([]byte{byte(CmdSetThrottle)}, `{"version":"1","name":"a"}`...), "version"},
		{append([]byte{byte(CmdRemoveTask)}, `{"name":"a"}}`...), "after"},
		{append([]byte{byte(CmdRemoveTask)}, `{"name":"a"} {"name":"b"}`...), "after"},
	} {
		if _, err := Decode(tc.entry); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q): %v, want an error saying %q", tc.entry, err, tc.want)
		}
	}
	// Payloads from before versions were written are version 1.
	if _, err := Decode(append([]byte{byte(CmdSetThrottle)}, `{"name":"a"}`...)); err != nil {
		t.Error(err)
	}
}

// Encode refuses a command whose entry would not decode, so that it fails
// on the proposer rather than in every replica.
func TestEncodeRefusesWhatDoesNotDecode(t *testing.T) {
	for _, cmd := range []Command{
		CreateTask{Spec: SpecV1{Name: "a", Destination: json.RawMessage(`{"type":"test","zz_unknown_field":1}`)}},
		CreateTask{Spec: SpecV1{Name: "a", Destination: json.RawMessage(`{"type":"test"}`),
			Objects: []ObjectV1{{Schema: "s", Options: map[string]json.RawMessage{"zz_unknown_field": json.RawMessage(`1`)}}}}},
		ChangeTables{Name: "a", Objects: []ObjectV1{{Schema: "s", Options: map[string]json.RawMessage{"tables": json.RawMessage(`[]`)}}}},
	} {
		if entry, err := Encode(cmd); err == nil {
			t.Errorf("%+v encoded: %q", cmd, entry)
		}
	}
}

// TestSpecRecordComplete fills every field of a spec by reflection: a field
// added to proto.TaskSpec that SpecRecord does not carry fails here, and so
// does a field of the record that TaskSpec does not read back.
func TestSpecRecordComplete(t *testing.T) {
	var spec proto.TaskSpec
	n := 0
	fill(reflect.ValueOf(&spec).Elem(), &n)
	spec.Destination.Type = prototest.Type // its keys decode by its type
	rec := SpecRecord(&spec)
	got, err := rec.TaskSpec()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, spec) {
		t.Fatalf("through its record the spec became\n%+v\nwant\n%+v", got, spec)
	}
	checkNoAlias(t, "TaskSpec", reflect.ValueOf(got), reflect.ValueOf(spec))

	rec = SpecV1{}
	fill(reflect.ValueOf(&rec).Elem(), &n)
	rec.Destination = json.RawMessage(`{"type":"test","dsn":"postgres://h/d"}`)
	for i := range rec.Objects {
		rec.Objects[i].Options = map[string]json.RawMessage{"tags": json.RawMessage(`{"k":"v"}`)}
	}
	back, err := rec.TaskSpec()
	if err != nil {
		t.Fatal(err)
	}
	if again := SpecRecord(&back); !reflect.DeepEqual(again, rec) {
		t.Fatalf("through its spec the record became\n%+v\nwant\n%+v", again, rec)
	}
}

// goldenStore is a state with something in every part: tasks (one with a
// full-sync plan under way, kept tables and an error, one paused and
// being deleted), nodes, assignments, waiting reasons, tokens and a
// secret key.
func goldenStore(t *testing.T) *Store { return goldenStoreOf(t, false) }

// goldenStoreOf is goldenStore; v1: made of commands as version 1 could
// write them (withoutLaterFields).
func goldenStoreOf(t *testing.T, v1 bool) *Store {
	t.Helper()
	s := NewStore()
	log := goldenLog()
	var index uint64
	apply := func(cmd Command) {
		t.Helper()
		index++
		if v1 {
			cmd = withoutLaterFields(cmd)
		}
		if err := s.Apply(index, cmd); err != nil {
			t.Fatalf("entry %d (%s): %v", index, commandName(cmd.Type()), err)
		}
	}
	for _, cmd := range log[:21] { // up to the ApplyPlan
		apply(cmd)
	}
	events := goldenSpec("events")
	events.Objects = events.Objects[:1]
	events.Alerts, events.Throttle = nil, nil
	_, read, err := NewToken("dashboards", ScopeRead, goldenAt)
	if err != nil {
		t.Fatal(err)
	}
	read.ID, read.Hash = "ba9876543210", strings.Repeat("7f", 32) // fixed, for the golden file
	for _, cmd := range []Command{
		RegisterNode{Node: Node{ID: "n2", API: "10.0.0.2:7420", Roles: []string{RoleWorker}, Pool: "eu", Capacity: 8}, At: goldenAt},
		CreateToken{Token: read},
		NewCreateTask(events, goldenAt), // index 24
		SetTaskStatus{Name: "events", Phase: proto.PhaseFull, State: proto.StateRunning},
		MarkSlotCreated{Name: "events", ConsistentLSN: 0x2000, Epoch: 24},
		MarkKeptTables{Name: "events", Tables: []string{"public\x00clicks"}, Epoch: 24},
		SetFullSyncPlan{Name: "events", Epoch: 24, Plan: FullSyncPlan{Snapshot: "00000004-00000001-1", LSN: 0x2000, Units: 2, TablesTotal: 2, RowsEstimated: 5000,
			Tables: []PlannedCopy{
				{Table: proto.TableID{Schema: "public", Name: "clicks"}, Columns: []string{"id", "at"}, Format: proto.CopyBinary, Keep: true, Key: []string{"id"},
					Chunks: []PlannedChunk{{FromPage: 0, ToPage: 100, Unit: 0}, {FromPage: 100, ToPage: -1, Unit: 1}}},
				{Table: proto.TableID{Schema: "public", Name: "views"}, Columns: []string{"id"}, Chunks: []PlannedChunk{{FromPage: 0, ToPage: -1, Unit: 1}}},
			}}}, // index 28
		MarkFullSyncReady{Name: "events", Plan: 28, Epoch: 24},
		MarkChunkCopied{Name: "events", Plan: 28, Table: 0, Chunk: 0, Rows: 1234},
		MarkTablesCopied{Name: "events", Tables: map[string]proto.LSN{"public\x00views": 0x2000}, Rows: 10, Epoch: 24},
		SetTaskStatus{Name: "events", Error: &proto.TaskError{Kind: proto.ErrorOther, Message: "duplicate key value violates unique constraint", At: goldenAt}, KeepError: true},
		NewCreateTask(goldenSpec("archive"), goldenAt),
		PauseTask{Name: "archive"},
		MarkDeleting{Name: "archive"},
		ApplyPlan{Moves: []PlanMove{{Unit: "events/capture", To: "n2"}, {Unit: "events/copy/0", To: "n1"}, {Unit: "events/copy/1", To: "n2"}},
			Waiting: map[string]string{"events": "waiting for capacity"}, At: goldenAt.Add(time.Minute)},
	} {
		apply(cmd)
	}
	if !v1 { // verifications came after version 1
		apply(RecordVerify{Name: "events", Epoch: 24, Results: []VerifyRecordV1{{Table: "public.clicks", Dest: "public.clicks", At: goldenAt, Rows: 10, Differences: 1,
			Sample: &VerifySampleV1{Window: 3, Windows: 100, From: []string{"Ü 'x'"}, To: []string{"zz"}}}}})
		// So did the status's counters and resolved errors.
		apply(MarkChunkProgress{Name: "events", Plan: 28, Table: 0, Chunk: 1, Rows: 77})
		apply(ReportRowsApplied{Name: "events", Unit: "apply/0", Epoch: 24, Start: goldenAt.UnixNano(), Rows: 5})
		apply(ReportRowsApplied{Name: "events", Unit: "apply/0", Epoch: 24, Start: goldenAt.UnixNano() + 1, Rows: 2})
		apply(ResolveError{Name: "events", At: goldenAt.Add(2 * time.Minute), HealthySince: goldenAt.Add(time.Minute)})
	}
	if v1 {
		// Kept since, from the plan when tables are marked copied: each
		// copied table's rows.
		for _, task := range s.data.Tasks {
			task.TableRows = nil
		}
	}
	return s
}

// memSink is a snapshot sink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// persist writes a store's snapshot as the FSM does.
func persist(t *testing.T, s *Store) []byte {
	t.Helper()
	f := &fsm{store: s}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

func TestGoldenSnapshot(t *testing.T) {
	s := goldenStore(t)
	raw := persist(t, s)
	var indented bytes.Buffer
	if err := json.Indent(&indented, raw, "", "\t"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "snapshot.golden")
	checkGolden(t, path, indented.Bytes())
	// The golden file restores to the state it was written from (the same
	// but for what its JSON does not hold: an empty list for a nil one).
	if got := persist(t, restoreGolden(t, path)); !bytes.Equal(got, raw) {
		t.Fatalf("%s restores to\n%s\nwant\n%s", path, got, raw)
	}
}

// restoreGolden restores a store from a golden snapshot, as the FSM does.
func restoreGolden(t *testing.T, path string) *Store {
	t.Helper()
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore()
	if err := (&fsm{store: s}).Restore(io.NopCloser(bytes.NewReader(golden))); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// TestPreviousSnapshot restores a snapshot written before tasks' specs
// were records (testdata/snapshot.v1.golden, never rewritten): it gives the
// state it was written from (without the fields added since).
func TestPreviousSnapshot(t *testing.T) {
	want := persist(t, goldenStoreOf(t, true))
	got := persist(t, restoreGolden(t, filepath.Join("testdata", "snapshot.v1.golden")))
	if !bytes.Equal(got, want) {
		t.Fatalf("the version 1 snapshot restores to\n%s\nwant\n%s", got, want)
	}
}

// TestRestoreRefusesUnknownFields adds a field at every level of the golden
// snapshot: Restore must refuse it, naming it, unless it is data the state
// keeps (a key of a map).
func TestRestoreRefusesUnknownFields(t *testing.T) {
	raw := persist(t, goldenStore(t))
	refused := 0
	for i := 0; ; i++ {
		snap, ok := withUnknownField(t, raw, i)
		if !ok {
			break
		}
		s := NewStore()
		if err := (&fsm{store: s}).Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			if strings.Contains(err.Error(), "unknown field") && !strings.Contains(err.Error(), unknownField) {
				t.Errorf("the error does not name the field: %v", err)
			}
			refused++
			continue
		}
		if !bytes.Contains(persist(t, s), []byte(unknownField)) {
			t.Errorf("an unknown field was dropped: %s", snap)
		}
	}
	if refused < 50 {
		t.Fatalf("only %d unknown fields were refused", refused)
	}
	newer := bytes.Replace(raw, []byte(`{"version":1,`), []byte(`{"version":2,"future":true,`), 1)
	if err := (&fsm{store: NewStore()}).Restore(io.NopCloser(bytes.NewReader(newer))); err == nil || !strings.Contains(err.Error(), "version 2 is newer") {
		t.Fatalf("a newer snapshot: %v", err)
	}
}
