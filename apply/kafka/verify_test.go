package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
	"github.com/sluicedb/sluice/verify/rowside"
	"github.com/sluicedb/sluice/verify/verifytest"
)

// verifyTableA is table a as verify compares it.
var verifyTableA = &proto.VerifyTable{Source: tableA, Dest: tableA, Columns: []string{"id", "v"}, DestColumns: []string{"id", "v"},
	Types: []string{"int4", "text"}, Key: []int{0}, LegacyHash: true}

// heldRows lists what a verify reader holds of a table: "key=v" (a keyless
// table: "values xcount"), in order.
func heldRows(t *testing.T, r apply.VerifyReader, vt *proto.VerifyTable) []string {
	t.Helper()
	rows, err := r.Rows(context.Background(), vt, false, proto.KeyRange{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, row := range rows {
		var vals []string
		for _, v := range row.Values {
			if v == nil {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, *v)
			}
		}
		if vt.Keyless() {
			out = append(out, fmt.Sprintf("%s x%d", strings.Join(vals, ","), row.Count))
		} else {
			out = append(out, strings.Join(vals, "="))
		}
	}
	slices.Sort(out)
	return out
}

// The topic folds into the table as a read_committed consumer keeping it
// by key holds it, in every format: the last message of a key wins over
// partitions, a delete or a tombstone takes the key away, an unchanged
// TOAST value keeps the value before, a truncate empties the table, an
// aborted transaction and other tables' messages leave it alone; a
// keyless table counts copies; and a re-check reads on from where the
// last read ended.
func TestVerifyReaderFoldsTopic(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			topic := "fold-" + format
			s := openSink(t, k, "t.apply."+format, func(o *Options) {
				o.Config.Format = format
				o.Config.TopicPartitions = 3
				o.DefaultTopic = topic
			})
			old := func(id string) proto.Tuple {
				return proto.Tuple{Kinds: []byte{proto.KindText, proto.KindNull}, Values: [][]byte{[]byte(id), nil}}
			}
			toast := proto.Tuple{Kinds: []byte{proto.KindText, proto.KindToast}, Values: [][]byte{[]byte("3"), nil}}
			batches := [][]proto.Row{
				{insert(pos(10, 0), "1", "one"), insert(pos(10, 1), "2", "two"), insert(pos(10, 2), "3", "three"), insert(pos(10, 3), "4", "four")},
				{{Op: proto.OpTruncate, Pos: pos(15, 0)}},
				{insert(pos(20, 0), "1", "one"), insert(pos(20, 1), "2", "two"), insert(pos(20, 2), "3", "three"), insert(pos(20, 3), "4", "four"),
					insert(pos(20, 4), "5", "a (b), \"c\"")},
				{{Op: proto.OpUpdate, Pos: pos(30, 0), New: text("1", "one+")}, {Op: proto.OpDelete, Pos: pos(30, 1), Old: old("2")},
					{Op: proto.OpUpdate, Pos: pos(30, 2), New: toast}, {Op: proto.OpUpdate, Pos: pos(30, 3), New: text("-4", "four"), Old: old("4")}},
			}
			for _, rows := range batches {
				if err := s.Apply(ctx, changes(1, rows...)); err != nil {
					t.Fatal(err)
				}
			}
			// Another table's rows in the topic, and a keyless one's.
			tableB := proto.TableID{Schema: "public", Name: "b"}
			colsC := []proto.Column{{Name: "kind", TypeOID: 25}, {Name: "n", TypeOID: 23}}
			tableC := proto.TableID{Schema: "public", Name: "c"}
			other := &apply.Changes{Task: "t", Epoch: 1, Segments: []*apply.Segment{
				{Table: tableB, Columns: colsA, Identity: proto.IdentityDefault, Rows: []proto.Row{insert(pos(40, 0), "1", "bee")}},
				{Table: tableC, Columns: colsC, Identity: proto.IdentityFull, Rows: []proto.Row{
					insert(pos(40, 1), "in", "1"), insert(pos(40, 2), "in", "1"), insert(pos(40, 3), "in", "1"), insert(pos(40, 4), "out", "2"),
					{Op: proto.OpDelete, Pos: pos(40, 5), Old: text("in", "1")},
					{Op: proto.OpUpdate, Pos: pos(40, 6), Old: text("out", "2"), New: text("out", "3")}}},
			}, Positions: map[string]proto.Position{tableB.Key(): pos(40, 0), tableC.Key(): pos(40, 6)}, Tables: map[string]proto.TableID{tableB.Key(): tableB, tableC.Key(): tableC}}
			if err := s.Apply(ctx, other); err != nil {
				t.Fatal(err)
			}
			// An aborted transaction's message, and a tombstone of key 3.
			pl, err := s.place(tableA, colsA)
			if err != nil {
				t.Fatal(err)
			}
			abortedEv := &Event{Database: "db", Table: tableA, Columns: colsA, Row: &proto.Row{Op: proto.OpInsert, Pos: pos(50, 0), New: text("1", "aborted")}}
			key, value, err := s.enc.Encode(ctx, topic, abortedEv)
			if err != nil {
				t.Fatal(err)
			}
			txn, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.TransactionalID("verify-test-"+format), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer txn.Close()
			if err := txn.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: s.partitionOf(pl, abortedEv), Key: key, Value: value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}
			three := &Event{Database: "db", Table: tableA, Columns: colsA, Row: &proto.Row{Op: proto.OpDelete, Old: old("3")}}
			plain, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if err := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: s.partitionOf(pl, three), Key: []byte(`{"id":3}`)}).FirstErr(); err != nil {
				t.Fatal(err)
			}

			r := s.VerifyReader()
			want := []string{"-4=four", "1=one+", `5=a (b), "c"`}
			if got := heldRows(t, r, verifyTableA); !slices.Equal(got, want) {
				t.Fatalf("table a: %q, want %q", got, want)
			}
			keyless := &proto.VerifyTable{Source: tableC, Dest: tableC, Columns: []string{"kind", "n"}, DestColumns: []string{"kind", "n"},
				Types: []string{"text", "int4"}, LegacyHash: true}
			if got, want := heldRows(t, s.VerifyReader(), keyless), []string{"in,1 x2", "out,3 x1"}; !slices.Equal(got, want) {
				t.Fatalf("keyless table c: %q, want %q", got, want)
			}

			// Without the tombstone, the TOAST update kept key 3's value;
			// a re-check reads what came since.
			if err := s.Apply(ctx, changes(1, insert(pos(60, 0), "3", "back"), insert(pos(60, 1), "6", "six"))); err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(ctx, changes(1, proto.Row{Op: proto.OpUpdate, Pos: pos(61, 0), New: toast})); err != nil {
				t.Fatal(err)
			}
			rows, err := r.RowsByKey(ctx, verifyTableA, [][]string{{"3"}, {"6"}, {"2"}})
			if err != nil || len(rows) != 2 || *rows[0].Values[1] != "back" || *rows[1].Values[1] != "six" {
				t.Fatalf("re-check: %+v %v", rows, err)
			}
		})
	}
}

// Every value of every type, written by each format's encoder from the
// source's text and read back, puts the same canonical text and row hash
// as pgverify computes at the source.
func TestVerifyValuesMatchPostgres(t *testing.T) {
	ctx := context.Background()
	pool := verifytest.Source(t, testenv.TypesSchema, strings.ReplaceAll(testenv.TypesRows, "$1", "1"), strings.ReplaceAll(testenv.TypesRows, "$1", "3"),
		`INSERT INTO nokey_types VALUES ('{"a": 1}', '(1,2)', '<x/>', 1.5, '{a,NULL}'), ('{"a": 1}', '(1,2)', '<x/>', 1.5, '{a,NULL}'), (NULL, NULL, NULL, NULL, NULL)`)
	src := pgverify.New(pool, pgverify.Source)
	for _, table := range []string{"types", "nokey_types"} {
		vt, cols, tuples := sourceRows(t, pool, table)
		want, err := src.Rows(ctx, vt, false, proto.KeyRange{})
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range Formats {
			enc, err := NewEncoder(FormatConfig{Format: format})
			if err != nil {
				t.Fatal(err)
			}
			fold := newTableFold(vt)
			for _, tuple := range tuples {
				key, value, err := enc.Encode(ctx, "topic", &Event{Database: "db", Table: vt.Dest, Columns: cols, Row: &proto.Row{Op: proto.OpInsert, New: tuple}})
				if err != nil {
					t.Fatal(err)
				}
				ch, err := readChange(format, "db", vt, value)
				if err != nil || ch.kind != changeUpsert {
					t.Fatalf("%s: read back %+v %v", format, ch, err)
				}
				fold.apply(0, key, false, ch)
			}
			loaded := fold.rows()
			got, err := rowside.New(func(context.Context, *proto.VerifyTable) ([][]any, error) { return loaded, nil }).Rows(ctx, vt, false, proto.KeyRange{})
			if err != nil {
				t.Fatal(err)
			}
			verifytest.SameRows(t, table+" in "+format, vt, want, got)
		}
	}
}

// sourceRows reads a table as verify compares it and as the capture
// sends it: its columns with their types, and each row's text values.
func sourceRows(t *testing.T, pool *pgxpool.Pool, table string) (*proto.VerifyTable, []proto.Column, []proto.Tuple) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `
		SELECT a.attname, a.atttypid, a.atttypmod, CASE WHEN t.typcategory = 'A' THEN coalesce(eb.typname::text || '[]', 'array') ELSE bt.typname::text END,
		       EXISTS (SELECT FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey))
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		LEFT JOIN pg_type et ON et.oid = bt.typelem AND t.typcategory = 'A'
		LEFT JOIN pg_type eb ON eb.oid = CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	id := proto.TableID{Schema: "public", Name: table}
	vt := &proto.VerifyTable{Source: id, Dest: id, LegacyHash: true}
	var cols []proto.Column
	var exprs []string
	for rows.Next() {
		var c proto.Column
		var typ string
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod, &typ, &c.Key); err != nil {
			t.Fatal(err)
		}
		if c.Key {
			vt.Key = append(vt.Key, len(cols))
		}
		cols = append(cols, c)
		vt.Columns, vt.Types = append(vt.Columns, c.Name), append(vt.Types, typ)
		exprs = append(exprs, `"`+c.Name+`"::text`)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	vt.DestColumns = vt.Columns
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, pgverify.Settings); err != nil {
		t.Fatal(err)
	}
	var tuples []proto.Tuple
	texts, err := tx.Query(ctx, "SELECT ARRAY["+strings.Join(exprs, ", ")+"]::text[] FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	for texts.Next() {
		var vals []*string
		if err := texts.Scan(&vals); err != nil {
			t.Fatal(err)
		}
		var tuple proto.Tuple
		for _, v := range vals {
			if v == nil {
				tuple.Kinds, tuple.Values = append(tuple.Kinds, proto.KindNull), append(tuple.Values, nil)
			} else {
				tuple.Kinds, tuple.Values = append(tuple.Kinds, proto.KindText), append(tuple.Values, []byte(*v))
			}
		}
		tuples = append(tuples, tuple)
	}
	return vt, cols, tuples
}
