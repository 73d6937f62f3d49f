package capture

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// runWithDDLCapture installs the DDL capture for tables (the schema
// public taken whole), twice (the second changes nothing), and runs the
// capture with onDDL from a slot made after it; stop ends the capture.
func (f *captureFixture) runWithDDLCapture(t *testing.T, conn *pgx.Conn, tables []proto.TableID, onDDL func(context.Context, *proto.DDLEvent) error) (stop func()) {
	t.Helper()
	ctx := context.Background()
	if err := PrepareSource(ctx, conn, f.task, tables, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := InstallDDLCapture(ctx, conn, f.task, tables, []string{"public"}); err != nil {
			t.Fatal(err)
		}
	}
	// The fixture's slot predates the trigger's publication: start anew.
	if err := DropSlot(ctx, conn, f.task); err != nil {
		t.Fatal(err)
	}
	f.snap.Close()
	var err error
	if f.snap, err = CreateSlot(ctx, f.pg.DSN("postgres"), f.task); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Task: f.task, SourceDSN: f.pg.DSN("postgres"), JetStream: f.js, HeartbeatInterval: 200 * time.Millisecond, OnDDL: onDDL})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	rconn := f.snap.Conn
	f.snap.Conn = nil
	go func() { done <- c.Run(cctx, f.snap.LSN, rconn) }()
	return func() { cancel(); <-done }
}

// The DDL capture: schema changes arrive on their table's subject between
// the rows written before and after them, with the shapes before and
// after; a table created in a schema taken whole joins the publication in
// its own transaction (keyless: REPLICA IDENTITY FULL), so its first rows
// are captured; renames and drops are reported; nothing is left behind.
func TestDDLCapture(t *testing.T) {
	ctx := context.Background()
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, `CREATE TABLE items (id int PRIMARY KEY, v text); CREATE PUBLICATION all_pub FOR ALL TABLES`)
	conn := testenv.Conn(t, f.pg.DSN("postgres"))
	var mu sync.Mutex
	var seen []*proto.DDLEvent
	stop := f.runWithDDLCapture(t, conn, []proto.TableID{items}, func(_ context.Context, ev *proto.DDLEvent) error {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
		return nil
	})
	defer stop()

	testenv.MustExec(t, conn, `BEGIN;
		INSERT INTO items VALUES (1, 'a');
		ALTER TABLE items ADD COLUMN n int DEFAULT 5, ALTER COLUMN v SET NOT NULL;
		INSERT INTO items VALUES (2, 'b', 6);
		CREATE TABLE fresh (a int, b text);
		INSERT INTO fresh VALUES (1, 'x');
		COMMIT`)
	testenv.MustExec(t, conn, `UPDATE fresh SET b = 'y'`) // would fail without a replica identity
	testenv.MustExec(t, conn, `ALTER TABLE items RENAME COLUMN v TO w; ALTER TABLE items RENAME TO goods; INSERT INTO goods VALUES (3, 'c', 7)`)
	// These three in a replica session, as a Sluice apply writing into a
	// database that is another task's source (a cascade) runs them.
	testenv.MustExec(t, conn, `SET session_replication_role = replica; CREATE INDEX fresh_a ON fresh (a); DROP INDEX fresh_a; DROP TABLE fresh;
		RESET session_replication_role`)
	testenv.MustExec(t, conn, `CREATE TEMP TABLE scratch (a int); CREATE UNLOGGED TABLE loose (a int); ALTER TABLE loose ADD COLUMN b int`)

	fresh := proto.TableID{Schema: "public", Name: "fresh"}
	goods := proto.TableID{Schema: "public", Name: "goods"}
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 7 {
			return fmt.Errorf("%d DDL events, want 7", len(seen))
		}
		return nil
	})
	kinds := ""
	for _, ev := range seen {
		kinds += fmt.Sprintf("%s %s %v %v; ", ev.Tag, ev.Table().Name, ev.Old != nil, ev.New != nil)
	}
	want := "ALTER TABLE items true true; CREATE TABLE fresh false true; ALTER TABLE items true true; ALTER TABLE items true true; CREATE INDEX fresh true true; DROP INDEX fresh true true; DROP TABLE fresh true false; "
	if kinds != want {
		t.Fatalf("events:\n got %s\nwant %s", kinds, want)
	}
	add := seen[0]
	if len(add.New.Columns) != 3 || add.New.Columns[2].Default != "5" || !add.New.Columns[1].NotNull || add.Old.Columns[1].NotNull {
		t.Fatalf("ADD COLUMN shapes: %+v -> %+v", add.Old, add.New)
	}
	if seen[1].New.ReplicaIdentity != 'f' {
		t.Fatalf("new keyless table's identity %q, want f", seen[1].New.ReplicaIdentity)
	}
	if r := seen[3]; !r.Renamed() || r.New.ID != goods || r.New.Columns[1].Name != "w" || r.New.Columns[1].Num != r.Old.Columns[1].Num {
		t.Fatalf("rename: %+v -> %+v", r.Old, r.New)
	}

	// On the items subject: row 1, the change, row 2, then the renames.
	var order []string
	for _, b := range f.readAll(t, items) {
		if len(b.DDL) > 0 {
			if _, err := proto.DecodeDDL(b.DDL); err != nil {
				t.Fatal(err)
			}
			order = append(order, "ddl")
			continue
		}
		for range b.Rows {
			order = append(order, fmt.Sprintf("row%d", len(b.Columns)))
		}
	}
	if got := fmt.Sprint(order); got != "[row2 ddl row3 ddl ddl]" {
		t.Fatalf("items subject: %s", got)
	}
	var freshRows, goodsWait int
	for _, b := range f.readAll(t, fresh) {
		freshRows += len(b.Rows)
	}
	for _, b := range f.readAll(t, goods) {
		if len(b.DDL) > 0 {
			ev, _ := proto.DecodeDDL(b.DDL)
			if ev.WaitOnly {
				goodsWait++
			}
		}
	}
	if freshRows != 2 || goodsWait != 1 {
		t.Fatalf("fresh rows %d (want insert and update), goods wait markers %d", freshRows, goodsWait)
	}
	assertNothingPublishable(t, conn)

	// A crash of the source empties the unlogged recorded state: the
	// next DDL reads it again before it changes the table, and its
	// change still comes with the shape before.
	testenv.MustExec(t, conn, `DELETE FROM sluice.ddl_state; DELETE FROM sluice.object_state`)
	testenv.MustExec(t, conn, `ALTER TABLE goods ADD COLUMN z int`)
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 8 {
			return fmt.Errorf("%d DDL events, want 8", len(seen))
		}
		return nil
	})
	if ev := seen[7]; ev.Table() != goods || ev.Old == nil || len(ev.Old.Columns) != 3 || len(ev.New.Columns) != 4 {
		t.Fatalf("DDL after the state was lost: %+v", ev)
	}
	testenv.MustExec(t, conn, `DROP PUBLICATION all_pub`)
	if err := DropTaskObjects(ctx, conn, f.task); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SourceLeftovers(ctx, conn); err != nil {
		t.Fatal(err)
	}
}
