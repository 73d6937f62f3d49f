package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Two-way apply against a real PostgreSQL 15 that records commit times
// (last_writer_wins reads them). Rows "written here" are committed as the
// replay of a test origin at a chosen commit time, so every comparison of
// commit times is exact and none depends on the clock.

var items = proto.TableID{Schema: "public", Name: "items"}

var itemCols = []proto.Column{
	{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
	{Name: "code", TypeOID: 25, TypeMod: -1},
	{Name: "note", TypeOID: 25, TypeMod: -1},
	{Name: "body", TypeOID: 25, TypeMod: -1},
}

const itemsDDL = `CREATE TABLE items (id int PRIMARY KEY, code text UNIQUE, note text, body text)`

// toast marks a value left out as unchanged TOAST.
const toast = "\x00toast"

// at is a commit time, seconds into 2024.
func at(sec int) int64 { return time.Date(2024, 1, 1, 0, 0, sec, 0, time.UTC).UnixMicro() }

// lsnOf is the source commit LSN of the change numbered idx: one source
// transaction per change.
func lsnOf(idx uint32) proto.LSN { return proto.LSN(0x1000000 + uint64(idx)*0x100) }

func itemTuple(vals ...string) proto.Tuple {
	t := proto.Tuple{Kinds: make([]byte, len(vals)), Values: make([][]byte, len(vals))}
	for i, v := range vals {
		switch v {
		case toast:
			t.Kinds[i] = proto.KindToast
		default:
			t.Kinds[i], t.Values[i] = proto.KindText, []byte(v)
		}
	}
	return t
}

func change(op proto.Op, idx uint32, commit int64, vals ...string) proto.Row {
	r := proto.Row{Op: op, Pos: proto.Position{LSN: lsnOf(idx)}, CommitTimeUS: commit}
	if op == proto.OpDelete {
		r.Old = itemTuple(vals[0], "", "", "")
		r.Old.Kinds[1], r.Old.Kinds[2], r.Old.Kinds[3] = proto.KindNull, proto.KindNull, proto.KindNull
	} else {
		r.New = itemTuple(vals...)
	}
	return r
}

// moved is an update that changes the key from oldID.
func moved(r proto.Row, oldID string) proto.Row {
	r.Old = itemTuple(oldID, "", "", "")
	r.Old.Kinds[1], r.Old.Kinds[2], r.Old.Kinds[3] = proto.KindNull, proto.KindNull, proto.KindNull
	return r
}

func itemBatch(task string, rows ...proto.Row) *apply.Changes {
	return &apply.Changes{
		Task: task, Epoch: 1,
		Segments:  []*apply.Segment{{Table: items, Columns: itemCols, Identity: proto.IdentityDefault, Rows: rows}},
		Positions: map[string]proto.Position{items.Key(): rows[len(rows)-1].Pos},
		Tables:    map[string]proto.TableID{items.Key(): items},
	}
}

// twoWayDB is a database of its own in a cluster that records commit
// times.
type twoWayDB struct {
	dsn  string
	conn *pgx.Conn
}

func twoWayCluster(t *testing.T) *testenv.Postgres {
	return testenv.NewPostgres(t, testenv.PostgresOptions{Settings: []string{"track_commit_timestamp = on"}})
}

func newTwoWayDB(t *testing.T, pg *testenv.Postgres, name string) *twoWayDB {
	t.Helper()
	admin := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	db := &twoWayDB{dsn: pg.DSN(name)}
	db.conn = testenv.Conn(t, db.dsn)
	testenv.MustExec(t, db.conn, itemsDDL)
	return db
}

func (db *twoWayDB) open(t *testing.T, tw postgres.TwoWay) *postgres.Sink {
	t.Helper()
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Options{DSN: db.dsn, TwoWay: &tw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(ctx) })
	return s
}

// localOrigin stamps the rows a test writes "here": not this sink's.
const localOrigin = "test:local"

// writeAt runs sql in a transaction committed at commit time us.
func (db *twoWayDB) writeAt(t *testing.T, us int64, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	testenv.MustExec(t, db.conn, `SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT FROM pg_replication_origin WHERE roname = $1)`, localOrigin)
	testenv.MustExec(t, db.conn, `SELECT pg_replication_origin_session_setup($1)`, localOrigin)
	defer testenv.MustExec(t, db.conn, `SELECT pg_replication_origin_session_reset()`)
	err := pgx.BeginFunc(ctx, db.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_replication_origin_xact_setup('0/1', 'epoch'::timestamptz + $1::bigint * interval '1 microsecond')`, us); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rows reads the table as "id|code|note|body", bodies longer than 20
// bytes shown as their name in big.
func (db *twoWayDB) rows(t *testing.T, big map[string]string) []string {
	t.Helper()
	rows, err := db.conn.Query(context.Background(), `SELECT id::text, coalesce(code, 'NULL'), coalesce(note, 'NULL'), coalesce(body, 'NULL') FROM items ORDER BY items.id`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var id, code, note, body string
		if err := rows.Scan(&id, &code, &note, &body); err != nil {
			t.Fatal(err)
		}
		for name, v := range big {
			if body == v {
				body = name
			}
		}
		out = append(out, strings.Join([]string{id, code, note, body}, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// conflicts reads sluice.conflicts as "id kind resolution", sorted.
func (db *twoWayDB) conflicts(t *testing.T, task string) []string {
	t.Helper()
	rows, err := db.conn.Query(context.Background(), `SELECT key->>'id', kind, resolution FROM sluice.conflicts WHERE task = $1`, task)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var id, kind, res string
		if err := rows.Scan(&id, &kind, &res); err != nil {
			t.Fatal(err)
		}
		out = append(out, id+" "+kind+" "+res)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	want = slices.Clone(want)
	if strings.Contains(what, "conflicts") {
		slices.Sort(want)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// countsOf is the process's conflict counts of task as "kind resolution n".
func countsOf(task string) []string {
	var out []string
	for _, c := range postgres.ConflictCounts() {
		if c.Task == task {
			out = append(out, fmt.Sprintf("%s %s %s %d", c.Direction, c.Kind, c.Resolution, c.N))
		}
	}
	return out
}

// One batch meets every kind of conflict, under each policy that goes on:
// an insert of a key held here, an update and a delete of rows gone here,
// an update and a delete of rows changed here later (older changes), an
// insert whose unique code a row of another key holds here, and updates
// (one changing the key) whose unchanged TOAST values must keep what is
// here.
func TestTwoWayConflictPolicies(t *testing.T) {
	ctx := context.Background()
	pg := twoWayCluster(t)
	big8, big9 := strings.Repeat("eight ", 2000), strings.Repeat("nine ", 2000)
	big := map[string]string{"BIG8": big8, "BIG9": big9}
	cases := []struct {
		policy    string
		rows      []string
		conflicts []string
	}{
		{
			policy: proto.ConflictIgnore,
			rows:   []string{"1|a|local1|l1", "2|b|in2|b2", "3|c|in3|b3", "5|x|local5|l5", "8|h|in8|BIG8", "10|i|in10|BIG9"},
			conflicts: []string{"1 insert_exists kept_local", "2 update_missing inserted", "7 delete_missing skipped",
				"6 unique_conflict kept_local"},
		},
		{
			policy: proto.ConflictOverwrite,
			rows:   []string{"1|a2|in1|b1", "2|b|in2|b2", "3|c|in3|b3", "6|x|in6|b6", "8|h|in8|BIG8", "10|i|in10|BIG9"},
			conflicts: []string{"1 insert_exists overwritten", "2 update_missing inserted", "7 delete_missing skipped",
				"6 unique_conflict overwritten"},
		},
		{
			policy: proto.ConflictLastWriterWins,
			rows:   []string{"1|a|local1|l1", "3|c|local3|l3", "6|x|in6|b6", "8|h|in8|BIG8", "10|i|in10|BIG9"},
			conflicts: []string{"1 insert_exists kept_local", "2 update_missing skipped", "3 update_stale kept_local",
				"4 delete_stale deleted", "7 delete_missing skipped", "6 unique_conflict overwritten"},
		},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			task := "p_" + c.policy
			db := newTwoWayDB(t, pg, task)
			db.writeAt(t, at(10), `INSERT INTO items VALUES (1, 'a', 'local1', 'l1'), (3, 'c', 'local3', 'l3'), (4, 'd', 'local4', 'l4'),
				(5, 'x', 'local5', 'l5'), (8, 'h', 'local8', $1), (9, 'i', 'local9', $2)`, big8, big9)
			sink := db.open(t, postgres.TwoWay{Task: task, Direction: "forward", Policy: c.policy, Origin: "sluice:" + task + ":fwd"})
			batch := itemBatch(task,
				change(proto.OpInsert, 1, at(5), "1", "a2", "in1", "b1"),
				change(proto.OpUpdate, 2, at(20), "2", "b", "in2", "b2"),
				change(proto.OpUpdate, 3, at(5), "3", "c", "in3", "b3"),
				change(proto.OpDelete, 4, at(5), "4"),
				change(proto.OpDelete, 5, at(20), "7"),
				change(proto.OpInsert, 6, at(20), "6", "x", "in6", "b6"),
				change(proto.OpUpdate, 7, at(20), "8", "h", "in8", toast),
				moved(change(proto.OpUpdate, 8, at(20), "10", "i", "in10", toast), "9"),
			)
			if err := sink.Apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
			wantStrings(t, "rows", db.rows(t, big), c.rows)
			wantStrings(t, "conflicts", db.conflicts(t, task), c.conflicts)
			offsets, err := sink.Offsets(ctx, task)
			if err != nil || offsets[items.Key()] != batch.Positions[items.Key()] {
				t.Fatalf("offsets %v %v, want %v", offsets, err, batch.Positions)
			}
			var counted []string
			for _, k := range c.conflicts {
				f := strings.Fields(k)
				counted = append(counted, "forward "+f[1]+" "+f[2]+" 1")
			}
			slices.Sort(counted)
			wantStrings(t, "counts", countsOf(task), counted)
		})
	}
}

// A conflict row holds what was met: both rows as text, both commit
// times, the change's LSN.
func TestTwoWayConflictRow(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "row")
	db.writeAt(t, at(10), `INSERT INTO items VALUES (1, 'a', 'local1', NULL)`)
	sink := db.open(t, postgres.TwoWay{Task: "row", Direction: "reverse", Policy: proto.ConflictLastWriterWins, Origin: "sluice:row:rev"})
	if err := sink.Apply(ctx, itemBatch("row__r", change(proto.OpInsert, 1, at(5), "1", "a2", "in1", "b1"))); err != nil {
		t.Fatal(err)
	}
	got := postgrestest.ReadQuery(t, db.conn, `SELECT task, direction, table_name, key::text, kind, resolution, local_row::text, incoming_row::text,
		local_commit_time = '2024-01-01 00:00:10+00', incoming_commit_time = '2024-01-01 00:00:05+00', local_lsn IS NOT NULL, incoming_lsn::text
		FROM sluice.conflicts`, []string{"task", "direction", "table", "key", "kind", "res", "local", "incoming", "local_time", "incoming_time", "local_lsn", "incoming_lsn"})
	want := []sinktest.Row{{
		"task": "row", "direction": "reverse", "table": "public.items", "key": `{"id": "1"}`, "kind": "insert_exists", "res": "kept_local",
		"local":      `{"id": "1", "body": null, "code": "a", "note": "local1"}`,
		"incoming":   `{"id": "1", "body": "b1", "code": "a2", "note": "in1"}`,
		"local_time": "t", "incoming_time": "t", "local_lsn": "t", "incoming_lsn": lsnOf(1).String(),
	}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conflict row:\n got  %v\n want %v", got, want)
	}
}

// Under task_failed a conflict stops the task: nothing of the batch is
// written, its position stays, and the conflict is logged.
func TestTwoWayTaskFailed(t *testing.T) {
	ctx := context.Background()
	pg := twoWayCluster(t)
	cases := []struct {
		name     string
		conflict proto.Row
		want     string
	}{
		{"insert_exists", change(proto.OpInsert, 2, at(20), "1", "a2", "in1", "b1"), "1 insert_exists failed"},
		{"unique_conflict", change(proto.OpInsert, 2, at(20), "6", "x", "in6", "b6"), "6 unique_conflict failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := newTwoWayDB(t, pg, c.name)
			db.writeAt(t, at(10), `INSERT INTO items VALUES (1, 'a', 'local1', 'l1'), (5, 'x', 'local5', 'l5')`)
			sink := db.open(t, postgres.TwoWay{Task: c.name, Direction: "forward", Origin: "sluice:" + c.name + ":fwd"})
			err := sink.Apply(ctx, itemBatch(c.name, change(proto.OpInsert, 1, at(20), "2", "b", "in2", "b2"), c.conflict))
			if !errors.Is(err, apply.ErrStopTask) {
				t.Fatalf("apply: %v, want an error that stops the task", err)
			}
			for _, s := range []string{"public.items", c.name, `"id":"` + strings.Fields(c.want)[0] + `"`, "sluice task resume " + c.name} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not name %q: %v", s, err)
				}
			}
			wantStrings(t, "rows", db.rows(t, nil), []string{"1|a|local1|l1", "5|x|local5|l5"})
			wantStrings(t, "conflicts", db.conflicts(t, c.name), []string{c.want})
			if offsets, err := sink.Offsets(ctx, c.name); err != nil || !offsets[items.Key()].IsZero() {
				t.Fatalf("offsets after the stop: %v %v", offsets, err)
			}
		})
	}
}

// Under last_writer_wins, equal commit times go the forward direction's
// way on both sides: the forward apply overwrites, the reverse one keeps
// its row. A row this direction wrote itself is the same writer's older
// version: a change of it applies whatever the times.
func TestTwoWayLastWriterWinsTies(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "tie")
	db.writeAt(t, at(10), `INSERT INTO items VALUES (1, 'a', 'local1', 'l1'), (2, 'b', 'local2', 'l2')`)
	fwd := db.open(t, postgres.TwoWay{Task: "tie", Direction: "forward", Policy: proto.ConflictLastWriterWins, Origin: "sluice:tie:fwd"})
	rev := db.open(t, postgres.TwoWay{Task: "tie", Direction: "reverse", Policy: proto.ConflictLastWriterWins, Origin: "sluice:tie:rev"})
	if err := fwd.Apply(ctx, itemBatch("tie", change(proto.OpUpdate, 1, at(10), "1", "a", "fwd1", "f1"))); err != nil {
		t.Fatal(err)
	}
	if err := rev.Apply(ctx, itemBatch("tie__r", change(proto.OpUpdate, 1, at(10), "2", "b", "rev2", "r2"))); err != nil {
		t.Fatal(err)
	}
	// Older than what fwd wrote, but fwd wrote it: applies.
	if err := fwd.Apply(ctx, itemBatch("tie", change(proto.OpUpdate, 2, at(3), "1", "a", "fwd1b", "f1b"))); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "rows", db.rows(t, nil), []string{"1|a|fwd1b|f1b", "2|b|local2|l2"})
	got := postgrestest.ReadQuery(t, db.conn, `SELECT direction, key->>'id', kind, resolution FROM sluice.conflicts`, []string{"dir", "id", "kind", "res"})
	if want := []sinktest.Row{{"dir": "reverse", "id": "2", "kind": "update_stale", "res": "kept_local"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conflicts: %v, want %v", got, want)
	}
}

// The apply's transaction carries the direction's origin: the origin's
// progress reaches the batch's last LSN, and the rows it wrote show the
// origin and the batch's newest source commit time. Its session is
// reset after. A reset of the task drops the origins no session uses.
func TestTwoWayOrigin(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "orig")
	const base = "sluice:orig:fwd"
	sink := db.open(t, postgres.TwoWay{Task: "orig", Direction: "forward", Policy: proto.ConflictOverwrite, Origin: base})
	batch := itemBatch("orig", change(proto.OpInsert, 1, at(7), "1", "a", "n1", "b1"), change(proto.OpInsert, 2, at(9), "2", "b", "n2", "b2"))
	if err := sink.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var progress string
	if err := db.conn.QueryRow(ctx, `SELECT pg_replication_origin_progress($1, false)::text`, base).Scan(&progress); err != nil {
		t.Fatal(err)
	}
	if progress != lsnOf(2).String() {
		t.Fatalf("origin progress %s, want %s", progress, lsnOf(2))
	}
	var sameOrigin, batchTime bool
	err := db.conn.QueryRow(ctx, `SELECT (c).roident = (SELECT roident FROM pg_replication_origin WHERE roname = $1), (c).timestamp = '2024-01-01 00:00:09+00'
		FROM (SELECT pg_xact_commit_timestamp_origin(xmin) AS c FROM items WHERE id = 1) s`, base).Scan(&sameOrigin, &batchTime)
	if err != nil || !sameOrigin || !batchTime {
		t.Fatalf("row 1: written under the origin %v, at the batch's commit time %v (%v)", sameOrigin, batchTime, err)
	}
	var bound bool
	if err := sink.Pool().QueryRow(ctx, `SELECT pg_replication_origin_session_is_setup()`).Scan(&bound); err != nil || bound {
		t.Fatalf("a session of the pool is still bound to an origin: %v %v", bound, err)
	}

	// A session holds base:1 (an apply of the last run still going).
	testenv.MustExec(t, db.conn, `SELECT pg_replication_origin_create($1)`, base+":1")
	testenv.MustExec(t, db.conn, `SELECT pg_replication_origin_session_setup($1)`, base+":1")
	if err := sink.ResetOffsets(ctx, "orig"); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, db.conn, `SELECT pg_replication_origin_session_reset()`)
	got := postgrestest.ReadQuery(t, db.conn, `SELECT roname FROM pg_replication_origin WHERE roname LIKE 'sluice:orig:%'`, []string{"name"})
	if want := []sinktest.Row{{"name": base + ":1"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("origins after the reset: %v, want %v", got, want)
	}
}

// Two sinks of one direction (apply groups) write at the same time: the
// first takes the origin, the other the pool's next one.
func TestTwoWayOriginPool(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "pool")
	const base = "sluice:pool:fwd"
	open := func() *postgres.Sink {
		return db.open(t, postgres.TwoWay{Task: "pool", Direction: "forward", Policy: proto.ConflictTaskFailed, Origin: base})
	}
	sinks := []*postgres.Sink{open(), open()}
	for i, s := range sinks {
		id := fmt.Sprint(i + 1)
		if err := s.Apply(ctx, itemBatch("pool"+id, change(proto.OpInsert, 1, at(1), id, id, "first", ""))); err != nil {
			t.Fatal(err)
		}
	}
	// Both transactions wait for the table, each bound to an origin.
	lock, err := db.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, "LOCK TABLE items IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, len(sinks))
	for i, s := range sinks {
		id := fmt.Sprint(i + 1)
		go func() {
			done <- s.Apply(ctx, itemBatch("pool"+id, change(proto.OpUpdate, 2, at(2), id, id, "second", "")))
		}()
	}
	watch := testenv.Conn(t, db.dsn)
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice apply' AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			return err
		}
		if waiting != 2 {
			return fmt.Errorf("%d applies wait for the table", waiting)
		}
		return nil
	})
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for range sinks {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	wantStrings(t, "rows", db.rows(t, nil), []string{"1|1|second|", "2|2|second|"})
	got := postgrestest.ReadQuery(t, db.conn, `SELECT roname, pg_replication_origin_progress(roname, false)::text FROM pg_replication_origin WHERE roname LIKE 'sluice:pool:%' ORDER BY roname`,
		[]string{"name", "progress"})
	want := []sinktest.Row{{"name": base, "progress": lsnOf(2).String()}, {"name": base + ":1", "progress": lsnOf(2).String()}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("origins: %v, want %v", got, want)
	}
}

// A two-way sink keeps the sink contract: the conformance suite, with
// conflicts stopping the task (none of its cases meets one).
func TestTwoWayConformance(t *testing.T) {
	d := conformanceDestination(t, twoWayCluster(t), postgres.Options{
		TwoWay: &postgres.TwoWay{Task: "conformance", Direction: "forward", Origin: "sluice:conformance:fwd"}})
	// Two-way sync needs a primary key on every table (the precheck says
	// so); these cases write keyless tables. Their keyed halves are proved
	// by TestTwoWayReplaySkipped and TestTwoWayUnchangedToast.
	d.KnownGaps = map[string]string{
		"KeylessUpdates": "two-way sync refuses keyless tables",
		"ReplaySkipped":  "proved on a keyless table, which two-way sync refuses",
		"UnchangedToast": "half of it is a keyless table, which two-way sync refuses",
		"SchemaSync":     "one of its tables is keyless, which two-way sync refuses",
	}
	sinktest.Run(t, d)
}

// A batch replayed by a new owner (after a crash) writes only what is new,
// and meets no conflict: the rows it repeats are skipped by position, not
// found to exist.
func TestTwoWayReplaySkipped(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "replay")
	tw := postgres.TwoWay{Task: "replay", Direction: "forward", Origin: "sluice:replay:fwd"}
	first := itemBatch("replay", change(proto.OpInsert, 1, at(1), "1", "a", "n1", "b1"), change(proto.OpInsert, 2, at(2), "2", "b", "n2", "b2"))
	if err := db.open(t, tw).Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := itemBatch("replay", append(first.Segments[0].Rows, change(proto.OpInsert, 3, at(3), "3", "c", "n3", "b3"))...)
	again.Epoch = 2
	if err := db.open(t, tw).Apply(ctx, again); err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "rows", db.rows(t, nil), []string{"1|a|n1|b1", "2|b|n2|b2", "3|c|n3|b3"})
	wantStrings(t, "conflicts", db.conflicts(t, "replay"), nil)
}

// Unchanged TOAST values keep what the destination holds: over a row of
// an earlier batch, over an earlier update of the same batch, over a row
// inserted in the same batch, and with different columns unchanged side
// by side.
func TestTwoWayUnchangedToast(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "toast")
	big := map[string]string{}
	for _, n := range []string{"BIG1", "BIG2", "BIG3", "BIG4"} {
		big[n] = strings.Repeat(n, 3000)
	}
	sink := db.open(t, postgres.TwoWay{Task: "toast", Direction: "reverse", Policy: proto.ConflictLastWriterWins, Origin: "sluice:toast:rev"})
	batches := [][]proto.Row{
		{
			change(proto.OpInsert, 1, at(1), "1", "a", "n1", big["BIG1"]),
			change(proto.OpInsert, 2, at(1), "2", "b", "n2", big["BIG2"]),
			change(proto.OpInsert, 3, at(1), "3", "c", "n3", big["BIG3"]),
		},
		{
			change(proto.OpUpdate, 4, at(2), "1", "a", "u1", toast),
			change(proto.OpUpdate, 5, at(2), "2", toast, "u2", "new2"),
			change(proto.OpUpdate, 6, at(2), "2", "b2", toast, toast),
			change(proto.OpInsert, 7, at(2), "4", "d", "n4", big["BIG4"]),
			change(proto.OpUpdate, 8, at(2), "4", "d", "u4", toast),
		},
	}
	for _, rows := range batches {
		if err := sink.Apply(ctx, itemBatch("toast__r", rows...)); err != nil {
			t.Fatal(err)
		}
	}
	wantStrings(t, "rows", db.rows(t, big), []string{"1|a|u1|BIG1", "2|b2|u2|new2", "3|c|n3|BIG3", "4|d|u4|BIG4"})
	wantStrings(t, "conflicts", db.conflicts(t, "toast"), nil)
}

// Two rows of the batch swap their unique codes through a third value:
// the set-based write trips the unique constraint, the change-by-change
// one goes through in source order, and nothing is a conflict.
func TestTwoWaySwapIsNoConflict(t *testing.T) {
	ctx := context.Background()
	db := newTwoWayDB(t, twoWayCluster(t), "swap")
	db.writeAt(t, at(10), `INSERT INTO items VALUES (1, 'a', 'n1', 'b1'), (2, 'b', 'n2', 'b2')`)
	sink := db.open(t, postgres.TwoWay{Task: "swap", Direction: "forward", Origin: "sluice:swap:fwd"})
	err := sink.Apply(ctx, itemBatch("swap",
		change(proto.OpUpdate, 1, at(20), "1", "tmp", "n1", toast),
		change(proto.OpUpdate, 2, at(20), "2", "a", "n2", toast),
		change(proto.OpUpdate, 3, at(20), "1", "b", "n1", toast)))
	if err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "rows", db.rows(t, nil), []string{"1|b|n1|b1", "2|a|n2|b2"})
	wantStrings(t, "conflicts", db.conflicts(t, "swap"), nil)
}
