package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

func seqState(t *testing.T, conn *pgx.Conn, name string) proto.SequenceState {
	t.Helper()
	var st proto.SequenceState
	if err := conn.QueryRow(context.Background(), "SELECT last_value, is_called FROM "+name).Scan(&st.LastValue, &st.IsCalled); err != nil {
		t.Fatal(err)
	}
	return st
}

// Thousands of sequences moved forward in a few statements, each only
// where the wanted value is ahead in its own direction, never back; then
// set exactly, with what each held before and after.
func TestAdvanceAndSetSequences(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN(testenv.DefaultDB))
	const n = 3000
	testenv.MustExec(t, conn, fmt.Sprintf(`CREATE SCHEMA s;
		DO $$ BEGIN FOR i IN 1..%d LOOP EXECUTE format('CREATE SEQUENCE s.seq_%%s', i); END LOOP; END $$;
		CREATE SEQUENCE s."Odd ""Name""";
		CREATE SEQUENCE s.down INCREMENT BY -1 MAXVALUE -1 START WITH -1;
		CREATE SEQUENCE s.fresh START WITH 100;
		SELECT setval('s.seq_1', 1000000);              -- set ahead by hand: stays
		SELECT setval('s.down', -50);
		CREATE TABLE s.not_a_sequence (id int)`, n))

	var want []proto.SequenceUpdate
	for i := 1; i <= n; i++ {
		want = append(want, proto.SequenceUpdate{Name: proto.TableID{Schema: "s", Name: fmt.Sprintf("seq_%d", i)}, SequenceState: proto.SequenceState{LastValue: int64(i * 10), IsCalled: true}})
	}
	odd := proto.TableID{Schema: "s", Name: `Odd "Name"`}
	down := proto.TableID{Schema: "s", Name: "down"}
	fresh := proto.TableID{Schema: "s", Name: "fresh"}
	gone := proto.TableID{Schema: "s", Name: "gone"}
	table := proto.TableID{Schema: "s", Name: "not_a_sequence"}
	want = append(want,
		proto.SequenceUpdate{Name: odd, SequenceState: proto.SequenceState{LastValue: 7, IsCalled: true}},
		// -40 is behind -50 for a descending sequence: not moved.
		proto.SequenceUpdate{Name: down, SequenceState: proto.SequenceState{LastValue: -40, IsCalled: true}},
		// (100, called) hands out 101 next: ahead of (100, not called).
		proto.SequenceUpdate{Name: fresh, SequenceState: proto.SequenceState{LastValue: 100, IsCalled: true}},
		proto.SequenceUpdate{Name: gone, SequenceState: proto.SequenceState{LastValue: 5, IsCalled: true}},
		proto.SequenceUpdate{Name: table, SequenceState: proto.SequenceState{LastValue: 5, IsCalled: true}})

	missing, err := postgres.AdvanceSequences(ctx, conn, want)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(missing) != fmt.Sprint([]proto.TableID{gone, table}) {
		t.Fatalf("missing: %v", missing)
	}
	check := func(name string, want proto.SequenceState) {
		t.Helper()
		if got := seqState(t, conn, name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	check("s.seq_1", proto.SequenceState{LastValue: 1000000, IsCalled: true})
	check("s.seq_2", proto.SequenceState{LastValue: 20, IsCalled: true})
	check(fmt.Sprintf("s.seq_%d", n), proto.SequenceState{LastValue: n * 10, IsCalled: true})
	check(`s."Odd ""Name"""`, proto.SequenceState{LastValue: 7, IsCalled: true})
	check("s.down", proto.SequenceState{LastValue: -50, IsCalled: true})
	check("s.fresh", proto.SequenceState{LastValue: 100, IsCalled: true})
	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_sequences WHERE schemaname = 's' AND sequencename LIKE 'seq\_%' AND last_value = substr(sequencename, 5)::int * 10`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n-1 {
		t.Fatalf("%d sequences at their value, want %d", count, n-1)
	}

	// Lower values and the same again change nothing; a descending
	// sequence moves down.
	back := []proto.SequenceUpdate{
		{Name: proto.TableID{Schema: "s", Name: "seq_2"}, SequenceState: proto.SequenceState{LastValue: 3, IsCalled: true}},
		{Name: proto.TableID{Schema: "s", Name: "seq_3"}, SequenceState: proto.SequenceState{LastValue: 30, IsCalled: false}},
		{Name: proto.TableID{Schema: "s", Name: "seq_4"}, SequenceState: proto.SequenceState{LastValue: 40, IsCalled: true}},
		{Name: down, SequenceState: proto.SequenceState{LastValue: -60, IsCalled: true}},
	}
	if _, err := postgres.AdvanceSequences(ctx, conn, back); err != nil {
		t.Fatal(err)
	}
	check("s.seq_2", proto.SequenceState{LastValue: 20, IsCalled: true})
	check("s.seq_3", proto.SequenceState{LastValue: 30, IsCalled: true})
	check("s.seq_4", proto.SequenceState{LastValue: 40, IsCalled: true})
	check("s.down", proto.SequenceState{LastValue: -60, IsCalled: true})

	// Exactly, both ways, reported in the order given.
	exact := []proto.SequenceUpdate{
		{Name: proto.TableID{Schema: "s", Name: "seq_1"}, SequenceState: proto.SequenceState{LastValue: 10, IsCalled: true}},
		{Name: gone, SequenceState: proto.SequenceState{LastValue: 1, IsCalled: true}},
		{Name: fresh, SequenceState: proto.SequenceState{LastValue: 500, IsCalled: false}},
	}
	res, err := postgres.SetSequences(ctx, conn, exact)
	if err != nil {
		t.Fatal(err)
	}
	wantRes := []proto.SequenceResult{
		{Name: exact[0].Name, Before: proto.SequenceState{LastValue: 1000000, IsCalled: true}, After: proto.SequenceState{LastValue: 10, IsCalled: true}},
		{Name: gone, Missing: true},
		{Name: fresh, Before: proto.SequenceState{LastValue: 100, IsCalled: true}, After: proto.SequenceState{LastValue: 500, IsCalled: false}},
	}
	if fmt.Sprint(res) != fmt.Sprint(wantRes) {
		t.Fatalf("set:\n got %v\nwant %v", res, wantRes)
	}
	var next int64
	if err := conn.QueryRow(ctx, `SELECT nextval('s.fresh')`).Scan(&next); err != nil || next != 500 {
		t.Fatalf("nextval after setting (500, not called): %d %v", next, err)
	}
}
