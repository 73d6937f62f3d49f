package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// filteredRows runs the capture of items with filter over what the
// source did before (so the live rows are the workload's last state, and
// what the capture reads of them is fixed) and returns the rows it
// published, once want of them are there.
func filteredRows(t *testing.T, f *captureFixture, filter string, want int) []proto.Row {
	t.Helper()
	return filteredRowsWith(t, f, Config{}, filter, want)
}

// filteredRowsWith is filteredRows with cfg's options.
func filteredRowsWith(t *testing.T, f *captureFixture, cfg Config, filter string, want int) []proto.Row {
	t.Helper()
	items := proto.TableID{Schema: "public", Name: "items"}
	cfg.Filter = func(t proto.TableID) string {
		if t == items {
			return filter
		}
		return ""
	}
	_, _, done := f.startWith(t, cfg)
	var rows []proto.Row
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-done:
			done <- err // for the cleanup's wait
			t.Fatalf("capture ended: %v", err)
		default:
		}
		rows = rows[:0]
		for _, b := range f.readAll(t, items) {
			rows = append(rows, b.Rows...)
		}
		if len(rows) < want {
			return fmt.Errorf("got %d rows, want %d", len(rows), want)
		}
		return nil
	})
	return rows
}

// describe prints rows as op:key[:value of column col], old key first
// when it differs; a 'u' (unchanged TOAST) value prints as ?.
func describe(rows []proto.Row, col int) string {
	var out []string
	for _, r := range rows {
		s := r.Op.String()[:1] + ":"
		if r.Old.Len() > 0 {
			s += string(r.Old.Values[0])
			if r.Op == proto.OpDelete {
				out = append(out, s)
				continue
			}
			s += ">"
		}
		s += string(r.New.Values[0])
		switch r.New.Kinds[col] {
		case proto.KindToast:
			s += ":?"
		case proto.KindText:
			s += ":" + string(r.New.Values[col][:min(4, len(r.New.Values[col]))])
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

const filterTableDDL = `CREATE TABLE items (id int PRIMARY KEY, region text, big text);
	ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL`

// A filter on a column outside the replica identity is evaluated by the
// capture: failing inserts are dropped, updates moving a row out become
// deletes by key, updates keep whole rows (unchanged TOAST values read
// from the live row), and a row whose live version is gone is deleted.
func TestCapturePipelineFilter(t *testing.T) {
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, filterTableDDL, items)
	ctx := context.Background()
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	filter := "region = 'eu'"
	if err := PrepareSource(ctx, src, f.task, []proto.TableID{items}, func(proto.TableID) string { return filter }, nil, false); err != nil {
		t.Fatal(err)
	}
	var qual *string
	if err := src.QueryRow(ctx, `SELECT rowfilter FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'items'`, proto.SlotName(f.task)).Scan(&qual); err != nil || qual != nil {
		t.Fatalf("publication row filter %v (%v), want none: the capture filters", qual, err)
	}
	testenv.MustExec(t, src, `BEGIN;
		INSERT INTO items VALUES (1, 'eu', 'b1__' || repeat('1', 9000)), (2, 'us', 'b2__' || repeat('2', 9000)),
			(3, 'eu', 'b3'), (5, 'us', 'b5__' || repeat('5', 9000));
		COMMIT`)
	for _, stmt := range []string{
		`UPDATE items SET region = 'us' WHERE id = 1`, // out: delete 1
		`UPDATE items SET region = 'eu' WHERE id = 2`, // in, big unchanged; the live row 2 is gone (moved to 20): delete 2
		`UPDATE items SET big = 'x3' WHERE id = 3`,    // stays in: update
		`UPDATE items SET id = 20 WHERE id = 2`,       // key change in the filter, big unchanged: filled from the live row 20
		`INSERT INTO items VALUES (4, 'us', 'b4')`,    // dropped
		`DELETE FROM items WHERE id = 4`,              // passed on: deleting an absent key is a no-op
		`UPDATE items SET region = 'eu' WHERE id = 5`, // in, but deleted since: delete 5
		`DELETE FROM items WHERE id = 5`,
		`UPDATE items SET region = NULL WHERE id = 3`, // NULL is not true: delete 3
	} {
		testenv.MustExec(t, src, stmt)
	}
	rows := filteredRows(t, f, filter, 10)
	const want = "i:1:b1__ i:3:b3 d:1 d:2 u:3:x3 u:2>20:b2__ d:4 d:5 d:5 d:3"
	if got := describe(rows, 2); got != want {
		t.Fatalf("published\n%s\nwant\n%s", got, want)
	}
	if filled := rows[5].New.Values[2]; string(filled) != "b2__"+strings.Repeat("2", 9000) {
		t.Fatalf("filled TOAST value: %d bytes", len(filled))
	}
	for i := 1; i < len(rows); i++ {
		if !rows[i-1].Pos.Less(rows[i].Pos) {
			t.Fatalf("positions not increasing at %d", i)
		}
	}
}

// A filter on the key stays in the publication. PostgreSQL 15 sends an
// UPDATE that moves a row in by changing its key as an INSERT whose
// unchanged TOAST values are 'u' markers: the capture fills them from
// the live row, so the INSERT is whole.
func TestCapturePublicationFilterFillsInsert(t *testing.T) {
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, filterTableDDL, items)
	ctx := context.Background()
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	filter := "id > 100"
	if err := PrepareSource(ctx, src, f.task, []proto.TableID{items}, func(proto.TableID) string { return filter }, nil, false); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, src, `INSERT INTO items VALUES (1, 'eu', 'b1__' || repeat('1', 9000)), (2, 'eu', 'b2__' || repeat('2', 9000))`)
	testenv.MustExec(t, src, `UPDATE items SET id = 200 WHERE id = 1`)
	testenv.MustExec(t, src, `UPDATE items SET id = 300 WHERE id = 2`)
	testenv.MustExec(t, src, `DELETE FROM items WHERE id = 300`) // gone before it is read: deleted by key
	rows := filteredRows(t, f, filter, 3)
	const want = "i:200:b1__ d:300 d:300"
	if got := describe(rows, 2); got != want {
		t.Fatalf("published\n%s\nwant\n%s", got, want)
	}
}

// A transaction far larger than the batches and the open-batch budget:
// the held rows are evaluated batch by batch, in order, nothing lost.
func TestCapturePipelineFilterLargeTransaction(t *testing.T) {
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, filterTableDDL, items)
	ctx := context.Background()
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	filter := "region = 'eu'"
	if err := PrepareSource(ctx, src, f.task, []proto.TableID{items}, func(proto.TableID) string { return filter }, nil, false); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, src, `BEGIN;
		INSERT INTO items SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, md5(g::text) FROM generate_series(1, 3000) g;
		UPDATE items SET region = CASE region WHEN 'eu' THEN 'us' ELSE 'eu' END;
		COMMIT`)
	// 1,500 inserts pass; of the 3,000 updates, 1,500 move rows out
	// (deletes) and 1,500 in (whole-row updates).
	rows := filteredRowsWith(t, f, Config{MaxOpenBytes: 4096}, filter, 4500)
	ops := map[proto.Op]int{}
	for i, r := range rows {
		ops[r.Op]++
		if i > 0 && !rows[i-1].Pos.Less(r.Pos) {
			t.Fatalf("positions not increasing at %d", i)
		}
		if r.Op == proto.OpUpdate && (string(r.New.Values[1]) != "eu" || len(r.New.Values[2]) != 32) {
			t.Fatalf("update %d: %q", i, r.New.Values)
		}
	}
	if len(rows) != 4500 || ops[proto.OpInsert] != 1500 || ops[proto.OpDelete] != 1500 || ops[proto.OpUpdate] != 1500 {
		t.Fatalf("%d rows: %v", len(rows), ops)
	}
}
