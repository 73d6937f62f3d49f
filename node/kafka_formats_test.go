package node_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// fmtEvent is one message of a format, decoded to what folding a topic
// by key needs.
type fmtEvent struct {
	op  string // "c" insert or snapshot row, "u", "d", "t" truncate
	key string // the message key, normalised; "" for a truncate
	lsn uint64 // commit LSN
	// order is the change's place in its transaction, from 1; 0 where
	// the format does not say (then only the LSN is checked).
	order uint64
	// row is the row after an insert or update; nil for a delete.
	row map[string]any
	// before is what the message says of the row before an update or
	// delete (unknownValue for a column it does not know); nil: nothing.
	before map[string]any
	// old is Canal's "old" of an update: the changed columns' earlier
	// values; nil when the message has none.
	old      map[string]any
	snapshot bool // marked as a full-sync row (Avro's tag)
}

// unknownValue stands for a value a message says it does not know
// (Avro's EmptyObject NONE).
type unknownValue struct{}

func hasUnknown(row map[string]any) bool {
	for _, v := range row {
		if _, ok := v.(unknownValue); ok {
			return true
		}
	}
	return false
}

// foldEvents folds a topic's events, partition by partition in offset
// order, into the rows they leave, keyed by message key (row JSON with
// sorted keys, as sourceState). It checks each event against the state
// before it: no change for a key goes back in LSN (nor repeats its
// place in the transaction, where the format gives it), an insert's key is
// new, an update or delete finds its row, what a message says of the row
// before (before image, Canal's old) is the row's earlier values. A
// truncate clears the keys of its partition (it is written to every
// partition).
func foldEvents(t *testing.T, recs []testenv.Record, decode func(testenv.Record) fmtEvent) map[string]string {
	t.Helper()
	type kept struct {
		partition int32
		row       map[string]any
	}
	state := map[string]kept{}
	lastPos := map[string]fmtEvent{}
	for _, r := range recs {
		ev := decode(r)
		if ev.op == "t" {
			for k, v := range state {
				if v.partition == r.Partition {
					delete(state, k)
				}
			}
			continue
		}
		if last := lastPos[ev.key]; ev.lsn < last.lsn || ev.order > 0 && ev.lsn == last.lsn && ev.order <= last.order {
			t.Fatalf("key %s: %s at %d/%d after %d/%d (written twice, or out of order)", ev.key, ev.op, ev.lsn, ev.order, last.lsn, last.order)
		}
		lastPos[ev.key] = ev
		prev, had := state[ev.key]
		switch {
		case ev.op == "c" && had:
			t.Fatalf("key %s: insert of a row that exists: %v, then %v", ev.key, prev.row, ev.row)
		case ev.op != "c" && !had:
			t.Fatalf("key %s: %s of a row never inserted", ev.key, ev.op)
		}
		for c, v := range ev.before {
			if _, isUnknown := v.(unknownValue); !isUnknown && !reflect.DeepEqual(v, prev.row[c]) {
				t.Fatalf("key %s: %s's before image has %s %v, the row had %v", ev.key, ev.op, c, v, prev.row[c])
			}
		}
		if ev.old != nil {
			for c, v := range prev.row {
				changed := !reflect.DeepEqual(v, ev.row[c])
				oldV, inOld := ev.old[c]
				if changed != inOld || (inOld && !reflect.DeepEqual(oldV, v)) {
					t.Fatalf("key %s: update of %s from %v to %v, but old says %v", ev.key, c, v, ev.row[c], ev.old)
				}
			}
		}
		if ev.op == "d" {
			delete(state, ev.key)
			continue
		}
		if hasUnknown(ev.row) {
			t.Fatalf("key %s: %s's row has unknown values: %v", ev.key, ev.op, ev.row)
		}
		state[ev.key] = kept{partition: r.Partition, row: ev.row}
	}
	out := make(map[string]string, len(state))
	for k, v := range state {
		b, _ := json.Marshal(v.row) // sorted keys
		out[k] = string(b)
	}
	return out
}

// normKey rewrites a JSON message key with sorted keys, as sourceState
// builds them.
func normKey(t *testing.T, key []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(key, &m); err != nil {
		t.Fatalf("message key %q: %v", key, err)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// checkKey checks that a message's key is its row's primary key, the id
// column alone (also under REPLICA IDENTITY FULL, where PostgreSQL marks
// every column as part of the identity).
func checkKey(t *testing.T, ev fmtEvent) {
	t.Helper()
	row := ev.row
	if ev.op == "d" {
		row = ev.before
	}
	if want := fmt.Sprintf(`{"id":%v}`, row["id"]); ev.key != want {
		t.Fatalf("%s message key %s, row %v: want %s", ev.op, ev.key, row, want)
	}
}

// canalDecoder decodes Canal flat messages of table, checking the fields
// a Canal reader relies on: type, pkNames, isDdl, where, sqlType, one
// row in data, and old: null but for updates under REPLICA IDENTITY FULL
// (full), where PostgreSQL sends the old row.
func canalDecoder(t *testing.T, table string, full bool) func(testenv.Record) fmtEvent {
	return func(r testenv.Record) fmtEvent {
		t.Helper()
		var m struct {
			Data     []map[string]any  `json:"data"`
			Old      []map[string]any  `json:"old"`
			Type     string            `json:"type"`
			PkNames  []string          `json:"pkNames"`
			IsDdl    bool              `json:"isDdl"`
			Database string            `json:"database"`
			Schema   string            `json:"schema"`
			Table    string            `json:"table"`
			ID       uint64            `json:"id"`
			SQLType  map[string]uint32 `json:"sqlType"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("canal message %s: %v", r.Value, err)
		}
		if m.Database != testenv.DefaultDB || m.Schema != "public" || m.Table != table {
			t.Fatalf("canal message of %s.%s.%s, want postgres.public.%s: %s", m.Database, m.Schema, m.Table, table, r.Value)
		}
		if m.Type == "TRUNCATE" {
			if !m.IsDdl || m.Data != nil || r.Key != nil {
				t.Fatalf("canal truncate: %s (key %q)", r.Value, r.Key)
			}
			return fmtEvent{op: "t"}
		}
		ops := map[string]string{"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
		ev := fmtEvent{op: ops[m.Type], key: normKey(t, r.Key), lsn: m.ID}
		if ev.op == "" || m.IsDdl || len(m.Data) != 1 || !reflect.DeepEqual(m.PkNames, []string{"id"}) ||
			!reflect.DeepEqual(m.SQLType, map[string]uint32{"id": 23, "v": 25, "n": 23}) {
			t.Fatalf("canal row message (key %s): %s", r.Key, r.Value)
		}
		if ev.op == "d" {
			ev.before = m.Data[0] // all columns under FULL, else the key
		} else {
			ev.row = m.Data[0]
		}
		switch {
		case ev.op == "u" && full && len(m.Old) == 1:
			ev.old = m.Old[0]
		case m.Old != nil || (ev.op == "u" && full):
			t.Fatalf("canal %s with old %v (replica identity full: %v): %s", m.Type, m.Old, full, r.Value)
		}
		if ev.op == "d" && full && len(ev.before) != 3 {
			t.Fatalf("canal delete under REPLICA IDENTITY FULL without the whole row: %s", r.Value)
		}
		checkKey(t, ev)
		return ev
	}
}

// schemaRegistry is the part of a Confluent schema registry that Sluice
// and a consumer use: GET /subjects lists the subjects (Sluice's precheck
// asks it), POST /subjects/{subject}/versions registers a schema and
// answers its id (the same id for the same schema), GET /schemas/ids/{id}
// returns it.
type schemaRegistry struct {
	mu       sync.Mutex
	schemas  []string       // id-1 → schema
	subjects map[string]int // subject → id of its (one) schema
}

func (r *schemaRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	path := req.URL.Path
	switch {
	case req.Method == http.MethodGet && path == "/subjects":
		_ = json.NewEncoder(w).Encode(slices.Sorted(maps.Keys(r.subjects)))
	case req.Method == http.MethodPost && strings.HasPrefix(path, "/subjects/") && strings.HasSuffix(path, "/versions"):
		var body struct {
			Schema string `json:"schema"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil || body.Schema == "" {
			http.Error(w, `{"error_code":42201,"message":"invalid schema"}`, http.StatusUnprocessableEntity)
			return
		}
		if _, err := avro.Parse(body.Schema); err != nil {
			http.Error(w, `{"error_code":42201,"message":"invalid schema"}`, http.StatusUnprocessableEntity)
			return
		}
		id := 0
		for i, s := range r.schemas {
			if s == body.Schema {
				id = i + 1
			}
		}
		if id == 0 {
			r.schemas = append(r.schemas, body.Schema)
			id = len(r.schemas)
		}
		r.subjects[strings.TrimSuffix(strings.TrimPrefix(path, "/subjects/"), "/versions")] = id
		fmt.Fprintf(w, `{"id":%d}`, id)
	case req.Method == http.MethodGet && strings.HasPrefix(path, "/schemas/ids/"):
		id, err := strconv.Atoi(strings.TrimPrefix(path, "/schemas/ids/"))
		if err != nil || id < 1 || id > len(r.schemas) {
			http.Error(w, `{"error_code":40403,"message":"Schema not found"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"schema": r.schemas[id-1]})
	default:
		http.NotFound(w, req)
	}
}

// avroReader decodes Confluent-framed Avro values as a consumer does:
// the schema comes from the registry by the id in the message.
type avroReader struct {
	full    bool // the table has REPLICA IDENTITY FULL
	url     string
	schemas map[uint32]avro.Schema
	ids     map[uint32]int // schema id → messages
}

func (a *avroReader) schema(t *testing.T, id uint32) avro.Schema {
	t.Helper()
	if s, ok := a.schemas[id]; ok {
		return s
	}
	resp, err := http.Get(fmt.Sprintf("%s/schemas/ids/%d", a.url, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("registry: schema %d: %s: %s", id, resp.Status, body)
	}
	var out struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	s, err := avro.Parse(out.Schema)
	if err != nil {
		t.Fatalf("registry: schema %d: %v", id, err)
	}
	a.schemas[id] = s
	return s
}

// decoder decodes the Avro Records of table (see apply/kafka/avro.go)
// into events, checking operation, objectName, the pk tag, fields, which
// images there are, and the images' Integer and Character values.
func (a *avroReader) decoder(t *testing.T, table string) func(testenv.Record) fmtEvent {
	return func(r testenv.Record) fmtEvent {
		t.Helper()
		if len(r.Value) < 5 || r.Value[0] != 0 {
			t.Fatalf("avro value not in Confluent framing: % x", r.Value[:min(len(r.Value), 8)])
		}
		id := binary.BigEndian.Uint32(r.Value[1:5])
		a.ids[id]++
		var rec map[string]any
		if err := avro.Unmarshal(a.schema(t, id), r.Value[5:], &rec); err != nil {
			t.Fatalf("avro value with schema %d: %v", id, err)
		}
		if rec["objectName"] != "postgres.public."+table {
			t.Fatalf("avro record of %v, want postgres.public.%s", rec["objectName"], table)
		}
		tags, _ := rec["tags"].(map[string]any)
		if rec["operation"] == "TRUNCATE" {
			if r.Key != nil {
				t.Fatalf("avro truncate with key %q", r.Key)
			}
			return fmtEvent{op: "t"}
		}
		ops := map[any]string{"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
		ev := fmtEvent{op: ops[rec["operation"]], key: normKey(t, r.Key), lsn: uint64(rec["id"].(int64)), snapshot: tags["snapshot"] == "true"}
		if ev.op == "" || tags["pk_uk_info"] != `{"PRIMARY":["id"]}` {
			t.Fatalf("avro row record: %v", rec)
		}
		var names []string
		fields, ok := rec["fields"].([]any)
		if !ok { // hamba/avro may give a union's branch by name
			fields, _ = rec["fields"].(map[string]any)["array"].([]any)
		}
		for _, f := range fields {
			fm := f.(map[string]any)
			names = append(names, fmt.Sprintf("%v:%v", fm["name"], fm["dataTypeNumber"]))
		}
		if strings.Join(names, " ") != "id:23 v:25 n:23" {
			t.Fatalf("avro fields %v", names)
		}
		cols := []string{"id", "v", "n"}
		ev.before, ev.row = avroImage(t, rec["beforeImages"], cols), avroImage(t, rec["afterImages"], cols)
		// Which images a change has: the after image but for a delete;
		// the before image for a delete, and for an update only under
		// REPLICA IDENTITY FULL (without it PostgreSQL sends no old row
		// unless the key changed, and such an update is a delete and an
		// insert). Under FULL, the before image knows every column.
		wantBefore := ev.op == "d" || (ev.op == "u" && a.full)
		if (ev.row == nil) != (ev.op == "d") || (ev.before != nil) != wantBefore || (a.full && hasUnknown(ev.before)) {
			t.Fatalf("avro %v (replica identity full: %v) with before %v, after %v", rec["operation"], a.full, ev.before, ev.row)
		}
		checkKey(t, ev)
		return ev
	}
}

// avroImage turns an image (the union's array branch) into a row as JSON
// decoding gives it: Integer as float64, Character as string, NULL as
// nil, EmptyObject NONE as unknownValue.
func avroImage(t *testing.T, v any, names []string) map[string]any {
	t.Helper()
	u, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	arr, ok := u["array"].([]any)
	if !ok || len(arr) != len(names) {
		t.Fatalf("avro image %#v for fields %v", v, names)
	}
	row := map[string]any{}
	for i, val := range arr {
		if val == nil {
			row[names[i]] = nil
			continue
		}
		branch, ok := val.(map[string]any)
		if !ok || len(branch) != 1 {
			t.Fatalf("avro value %#v", val)
		}
		for name, x := range branch {
			switch strings.TrimPrefix(name, "com.sluicedb.sluice.avro.") {
			case "Integer":
				f := x.(map[string]any)
				n, err := strconv.ParseFloat(f["value"].(string), 64)
				if err != nil || f["precision"] != 4 {
					t.Fatalf("avro Integer %v", f)
				}
				row[names[i]] = n
			case "Character":
				f := x.(map[string]any)
				if f["charset"] != "utf8" {
					t.Fatalf("avro Character %v", f)
				}
				row[names[i]] = string(f["value"].([]byte))
			case "EmptyObject":
				if x != "NONE" {
					t.Fatalf("avro EmptyObject %v", x)
				}
				row[names[i]] = unknownValue{}
			default:
				t.Fatalf("avro value %s %#v for an int or text column", name, x)
			}
		}
	}
	return row
}

// formatWorkload changes table: inserts, updates and deletes, a key
// change, a truncate, then rows again and more changes, so that the
// folded topic depends on every kind of message.
func formatWorkload(t *testing.T, conn *pgx.Conn, table string) {
	t.Helper()
	for i := range 60 {
		testenv.MustExec(t, conn, fmt.Sprintf(`INSERT INTO %[1]s VALUES (%[2]d, 'new', 0);
			UPDATE %[1]s SET v = v || '+', n = n + 1 WHERE id = %[3]d;
			DELETE FROM %[1]s WHERE id = %[4]d`, table, 1000+i, 1+(i*7)%300, 2+(i*11)%290))
	}
	testenv.MustExec(t, conn, fmt.Sprintf(`UPDATE %[1]s SET id = -id WHERE id = 5;
		UPDATE %[1]s SET v = NULL WHERE id = 1000`, table))
	testenv.MustExec(t, conn, fmt.Sprintf(`TRUNCATE %[1]s;
		INSERT INTO %[1]s SELECT g, 'again' || g, g FROM generate_series(1, 100) g`, table))
	for i := range 40 {
		testenv.MustExec(t, conn, fmt.Sprintf(`INSERT INTO %[1]s VALUES (%[2]d, 'late', 1);
			UPDATE %[1]s SET n = n * 2 WHERE id = %[3]d;
			DELETE FROM %[1]s WHERE id = %[4]d`, table, 2000+i, 1+(i*3)%100, 2+(i*13)%95))
	}
}

// PostgreSQL → Kafka in the Canal and Avro formats, through a node: each
// task copies a keyed table and streams inserts, updates, deletes, a key
// change and a truncate; each topic, decoded as its consumers do (Canal's
// data/old/type/pkNames; Avro with the schema fetched from the registry
// by the id in each message) and folded by key, ends equal to its table.
func TestSyncToKafkaFormats(t *testing.T) { syncFormats(t, false) }

// The same under REPLICA IDENTITY FULL, which Debezium and Canal users set
// to get whole before images: messages are still keyed (and partitioned)
// by the primary key, though PostgreSQL's relation messages then mark
// every column as part of the identity; updates carry the old row
// (Canal's old, Avro's beforeImages) and deletes the whole row.
func TestSyncToKafkaFormatsIdentityFull(t *testing.T) { syncFormats(t, true) }

func syncFormats(t *testing.T, full bool) {
	src := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	reg := &schemaRegistry{subjects: map[string]int{}, schemas: []string{`"string"`}} // id 1 is taken: Sluice's id is not a default
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	conn := testenv.Conn(t, src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, conn, `
		CREATE TABLE fcanal (id int PRIMARY KEY, v text, n int);
		INSERT INTO fcanal SELECT g, 'v' || g, g FROM generate_series(1, 300) g;
		CREATE TABLE favro (id int PRIMARY KEY, v text, n int);
		INSERT INTO favro SELECT g, 'v' || g, g FROM generate_series(1, 300) g`)
	if full {
		testenv.MustExec(t, conn, `ALTER TABLE fcanal REPLICA IDENTITY FULL; ALTER TABLE favro REPLICA IDENTITY FULL`)
	}
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 1}})
	c := n.Client()

	ar := &avroReader{full: full, url: srv.URL, schemas: map[uint32]avro.Schema{}, ids: map[uint32]int{}}
	runs := []struct {
		task, table, topic, dest string
		decode                   func(testenv.Record) fmtEvent
	}{
		{"fcanal", "fcanal", "canal-cdc", "  format: canal\n", canalDecoder(t, "fcanal", full)},
		{"favro", "favro", "avro-cdc", "  format: avro\n  schema_registry: " + srv.URL + "\n", ar.decoder(t, "favro")},
	}
	// Both tasks run at once on the node, to keep the test short.
	for _, r := range runs {
		createTask(t, c, kafkaTaskYAML(r.task, src.DSN(testenv.DefaultDB), k,
			"  topic: "+r.topic+"\n  topic_partitions: 2\n"+r.dest, "    tables: ["+r.table+"]\n"))
	}
	for _, r := range runs {
		waitPhase(t, c, r.task, proto.PhaseIncremental, 2*time.Minute)
	}
	// The copy's rows are all there when the task streams changes.
	for _, r := range runs {
		if err := compareStates(sourceState(t, conn, r.table), foldEvents(t, k.ReadTopic(t, r.topic), r.decode)); err != nil {
			t.Fatalf("%s after the copy: %v", r.task, err)
		}
	}
	for _, r := range runs {
		formatWorkload(t, conn, r.table)
	}
	for _, r := range runs {
		testenv.CheckFor(t, time.Minute, 500*time.Millisecond, func() error {
			if err := compareStates(sourceState(t, conn, r.table), foldEvents(t, k.ReadTopic(t, r.topic), r.decode)); err != nil {
				return fmt.Errorf("%s: %w", r.task, err)
			}
			return nil
		})
	}

	// Every kind of message was there to fold.
	for _, r := range runs {
		ops := map[string]int{}
		for _, rec := range k.ReadTopic(t, r.topic) {
			ev := r.decode(rec)
			ops[ev.op]++
		}
		t.Logf("%s: messages by op %v", r.topic, ops)
		// The workload's TRUNCATE is one message per partition (the sink
		// may write more: a full sync can start with one).
		if ops["c"] < 400 || ops["u"] < 50 || ops["d"] < 50 || ops["t"] < 2 {
			t.Errorf("%s: messages by op %v", r.topic, ops)
		}
	}

	// Avro: every message carries the id the registry gave the schema
	// under the topic's subject, and each copied row is tagged, once.
	reg.mu.Lock()
	subjects := maps.Clone(reg.subjects)
	reg.mu.Unlock()
	if want := map[string]int{"avro-cdc-value": 2}; !reflect.DeepEqual(subjects, want) {
		t.Errorf("registry subjects %v, want %v", subjects, want)
	}
	if len(ar.ids) != 1 || ar.ids[2] == 0 {
		t.Errorf("schema ids in messages: %v, want only 2", ar.ids)
	}
	snap := map[string]int{}
	for _, r := range k.ReadTopic(t, "avro-cdc") {
		if ev := ar.decoder(t, "favro")(r); ev.snapshot {
			snap[ev.key]++
		}
	}
	if len(snap) != 300 {
		t.Errorf("%d rows tagged snapshot, want 300", len(snap))
	}
	for key, n := range snap {
		if n != 1 {
			t.Errorf("row %s copied %d times", key, n)
		}
	}
	for _, r := range runs {
		if err := c.DeleteTask(ctx, r.task); err != nil {
			t.Fatal(err)
		}
	}
}
