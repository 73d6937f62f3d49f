package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

var tableA = proto.TableID{Schema: "public", Name: "a"}

var colsA = []proto.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}

func text(vals ...string) proto.Tuple {
	t := proto.Tuple{}
	for _, v := range vals {
		t.Kinds = append(t.Kinds, proto.KindText)
		t.Values = append(t.Values, []byte(v))
	}
	return t
}

func pos(lsn uint64, idx uint32) proto.Position { return proto.Position{LSN: proto.LSN(lsn), Idx: idx} }

// changes builds one Apply call for table a.
func changes(epoch uint64, rows ...proto.Row) *apply.Changes {
	last := rows[len(rows)-1].Pos
	return &apply.Changes{Task: "t", Epoch: epoch,
		Segments:  []*apply.Segment{{Table: tableA, Columns: colsA, Identity: proto.IdentityDefault, Rows: rows}},
		Positions: map[string]proto.Position{tableA.Key(): last}, Tables: map[string]proto.TableID{tableA.Key(): tableA}}
}

func insert(p proto.Position, id, v string) proto.Row {
	return proto.Row{Op: proto.OpInsert, Pos: p, New: text(id, v)}
}

func openSink(t *testing.T, k *testenv.Kafka, unit string, mod func(*Options)) *Sink {
	t.Helper()
	opts := Options{Task: "t", Config: Config{Brokers: k.Brokers, Topic: "cdc"}, Database: "db", TransactionalID: unit}
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// afters decodes the Debezium values' after images' v column, in order.
func afters(t *testing.T, recs []testenv.Record) []string {
	t.Helper()
	var out []string
	for _, r := range recs {
		var m struct {
			Op     string         `json:"op"`
			After  map[string]any `json:"after"`
			Before map[string]any `json:"before"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("%s: %v", r.Value, err)
		}
		img := m.After
		if img == nil {
			img = m.Before
		}
		out = append(out, fmt.Sprintf("%s:%v:%v", m.Op, img["id"], img["v"]))
	}
	return out
}

func TestSinkWritesEachChangeOnce(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	s := openSink(t, k, "t.apply.0", nil)
	if got, err := s.Offsets(ctx, "t"); err != nil || len(got) != 0 {
		t.Fatalf("offsets of a new task: %v %v", got, err)
	}
	upd := proto.Row{Op: proto.OpUpdate, Pos: pos(20, 0), New: text("1", "one+"), Old: text("1", "one")}
	del := proto.Row{Op: proto.OpDelete, Pos: pos(20, 1), Old: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindNull}, Values: [][]byte{[]byte("2"), nil}}}
	if err := s.Apply(ctx, changes(1, insert(pos(10, 0), "1", "one"), insert(pos(10, 1), "2", "two"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, changes(1, upd, del)); err != nil {
		t.Fatal(err)
	}
	got := afters(t, k.ReadTopic(t, "cdc"))
	want := []string{"c:1:one", "c:2:two", "u:1:one+", "d:2:<nil>"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("messages %v, want %v", got, want)
	}
	// A new owner of the unit reads the position back.
	s2 := openSink(t, k, "t.apply.0", nil)
	offs, err := s2.Offsets(ctx, "t")
	if err != nil || offs[tableA.Key()] != pos(20, 1) {
		t.Fatalf("offsets: %v %v", offs, err)
	}
}

// Snapshot rows: COPY's text escapes decode to the values pgoutput
// would send, each row is an op r message, and the table's load begins
// with a truncate. (Chunks and plans once: the conformance suite.)
func TestSinkSnapshotMessages(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	s := openSink(t, k, "t.task", nil)
	if err := s.BeginTable(ctx, "t", tableA, 7, false); err != nil {
		t.Fatal(err)
	}
	load := apply.ChunkLoad{Task: "t", Plan: 7, Table: tableA, Chunk: 0, Columns: []string{"id", "v"}, Types: []uint32{23, 25}, Key: []string{"id"}, Format: proto.CopyText}
	data := "1\tfirst\\ttab\n2\t\\N\n3\tback\\\\slash \\x41\\101\n"
	read := func(w io.Writer) (int64, error) {
		n, err := io.WriteString(w, data)
		return int64(n), err
	}
	if rows, err := s.CopyChunk(ctx, load, read); err != nil || rows != 3 {
		t.Fatalf("%d rows, %v", rows, err)
	}
	got := afters(t, k.ReadTopic(t, "cdc"))
	if want := `t:<nil>:<nil> r:1:first	tab r:2:<nil> r:3:back\slash AA`; strings.Join(got, " ") != want {
		t.Fatalf("snapshot messages %q, want %q", strings.Join(got, " "), want)
	}
}

func TestSinkPartitioning(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	for _, policy := range []string{"primary-key", "table", "single"} {
		t.Run(policy, func(t *testing.T) {
			topic := "p-" + policy
			s := openSink(t, k, "t.apply."+policy, func(o *Options) {
				o.Config.Partitioning = policy
				o.Routes = map[string]Route{tableA.Key(): {Topic: topic, Partitions: 4}}
			})
			var rows []proto.Row
			for i := range 40 {
				rows = append(rows, insert(pos(uint64(10+i), 0), fmt.Sprint(i%10), fmt.Sprint(i)))
			}
			if err := s.Apply(ctx, changes(1, rows...)); err != nil {
				t.Fatal(err)
			}
			recs := k.ReadTopic(t, topic)
			if len(recs) != 40 {
				t.Fatalf("%d messages", len(recs))
			}
			partOf := map[string]int32{}
			parts := map[int32]bool{}
			for _, r := range recs {
				if p, ok := partOf[string(r.Key)]; ok && p != r.Partition {
					t.Fatalf("key %s in partitions %d and %d", r.Key, p, r.Partition)
				}
				partOf[string(r.Key)] = r.Partition
				parts[r.Partition] = true
			}
			switch {
			case policy == "primary-key" && len(parts) < 2:
				t.Fatalf("10 keys all in one partition: %v", parts)
			case policy == "table" && len(parts) != 1:
				t.Fatalf("one table in partitions %v", parts)
			case policy == "single" && (len(parts) != 1 || !parts[0]):
				t.Fatalf("single: partitions %v", parts)
			}
		})
	}
}

func TestSinkCompression(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	for _, codec := range Compressions {
		t.Run(codec, func(t *testing.T) {
			topic := "z-" + codec
			s := openSink(t, k, "t.apply."+codec, func(o *Options) {
				o.Config.Compression = codec
				o.DefaultTopic = topic
			})
			big := strings.Repeat("compressible ", 500)
			if err := s.Apply(ctx, changes(1, insert(pos(10, 0), "1", big), insert(pos(10, 1), "2", "small"))); err != nil {
				t.Fatal(err)
			}
			got := afters(t, k.ReadTopic(t, topic))
			if len(got) != 2 || got[0] != "c:1:"+big || got[1] != "c:2:small" {
				t.Fatalf("read back %d messages", len(got))
			}
		})
	}
}

// The inline hash is FNV-1a itself: a key's partition stays where
// earlier versions put it.
func TestFNVIsStandard(t *testing.T) {
	for _, in := range []string{"", "public.orders", "\x00id\x001"} {
		h := fnv.New32a()
		h.Write([]byte(in))
		if got := fnvAdd(fnvOffset, []byte(in)); got != h.Sum32() {
			t.Fatalf("%q: %d, hash/fnv %d", in, got, h.Sum32())
		}
	}
}

// Schema changes: a message in the DDL topic (or the table's topic
// without one), written once; a change of operations ddl_operations
// leaves out writes no message but still stores its position.
func TestSinkDDLMessages(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	shape := func(cols ...string) *proto.TableDef {
		sh := &proto.TableDef{ID: proto.TableID{Schema: "public", Name: "a"}, ReplicaIdentity: 'd'}
		for i, c := range cols {
			sh.Columns = append(sh.Columns, proto.ColumnDef{Num: i + 1, Name: c, Type: "text"})
		}
		return sh
	}
	addColumn := &proto.DDLEvent{Pos: pos(30, 0), Tag: "ALTER TABLE", Query: "ALTER TABLE a ADD COLUMN w text", Old: shape("id", "v"), New: shape("id", "v", "w")}
	withIndex := shape("id", "v", "w")
	withIndex.Indexes = []proto.IndexDef{{Name: "a_w_idx", Def: "btree (w)"}}
	createIndex := &proto.DDLEvent{Pos: pos(40, 0), Tag: "CREATE INDEX", Query: "CREATE INDEX ON a (w)", Old: shape("id", "v", "w"), New: withIndex}
	ddls := func(topic string) []string {
		var out []string
		for _, r := range k.ReadTopic(t, topic) {
			var m struct {
				DDL string `json:"ddl"`
			}
			if err := json.Unmarshal(r.Value, &m); err != nil || m.DDL == "" {
				t.Fatalf("not a schema change in %s: %s (%v)", topic, r.Value, err)
			}
			out = append(out, m.DDL)
		}
		return out
	}

	s := openSink(t, k, "t.apply.0", func(o *Options) { o.Config.DDLTopic = "cdc-ddl" })
	ops, err := proto.NewDDLOpSet([]string{proto.DDLAddColumn, proto.DDLDropColumn})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time is a replay: skipped
		if err := s.ApplyDDL(ctx, "t", 1, addColumn, nil, ops); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ApplyDDL(ctx, "t", 1, createIndex, nil, ops); err != nil {
		t.Fatal(err)
	}
	if got := ddls("cdc-ddl"); len(got) != 1 || got[0] != addColumn.Query {
		t.Fatalf("schema changes %q, want only %q", got, addColumn.Query)
	}
	if offs, err := openSink(t, k, "t.apply.0", nil).Offsets(ctx, "t"); err != nil || offs[tableA.Key()] != createIndex.Pos {
		t.Fatalf("after a change left out, the table's position is %v (%v), want %v", offs[tableA.Key()], err, createIndex.Pos)
	}

	// No DDL topic: the table's own. All operations by default.
	s = openSink(t, k, "u.apply.0", func(o *Options) { o.Task, o.Config.Topic = "u", "u-cdc" })
	for _, ev := range []*proto.DDLEvent{addColumn, createIndex} {
		if err := s.ApplyDDL(ctx, "u", 1, ev, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := ddls("u-cdc"); strings.Join(got, "; ") != addColumn.Query+"; "+createIndex.Query {
		t.Fatalf("schema changes in the table's topic %q", got)
	}
}
