package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	_ "github.com/sluicedb/sluice/proto/prototest" // the test destination type
)

const sequencesTestDDL = `
CREATE SCHEMA app;
CREATE SEQUENCE app.shared_seq;
CREATE TABLE app.orders (id serial PRIMARY KEY, no int DEFAULT nextval('app.shared_seq'));
CREATE TABLE app.items (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
CREATE TABLE app.other (id bigserial PRIMARY KEY);
CREATE SEQUENCE app.order_no_seq;          -- only the application calls it
CREATE SEQUENCE app.unused_seq START WITH 40;
CREATE SEQUENCE app."Odd Name";
CREATE SCHEMA ids;
CREATE SEQUENCE ids.global_id;
SELECT nextval('app.shared_seq'), nextval('app.shared_seq'), nextval('app.order_no_seq');
INSERT INTO app.orders DEFAULT VALUES;
INSERT INTO app.items DEFAULT VALUES;
`

func seqNames(seqs []proto.SequenceDef) []string {
	var out []string
	for _, s := range seqs {
		out = append(out, s.Schema+"."+s.Name)
	}
	return out
}

// Which sequences a selection brings: those its tables' columns use or
// own, those an entry names, and every one of a whole schema; named ones
// that are missing, not sequences, or identity sequences are refused.
func TestSequenceSelection(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, sequencesTestDDL)

	narrow := []proto.ObjectSpec{{Schema: "app", Tables: []string{"orders", "items"}, Sequences: []string{"order_no_seq"}}}
	s, err := ReadSchema(ctx, conn, narrow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqNames(s.Sequences), []string{"app.items_id_seq", "app.order_no_seq", "app.orders_id_seq", "app.shared_seq"}; !slices.Equal(got, want) {
		t.Fatalf("narrow selection's sequences %v, want %v", got, want)
	}
	for _, seq := range s.Sequences {
		switch seq.Name {
		case "order_no_seq":
			if seq.DDL == "" || seq.OwnedBy != "" || seq.LastValue != 1 || !seq.IsCalled {
				t.Errorf("order_no_seq: %+v", seq)
			}
		case "items_id_seq":
			if seq.DDL != "" {
				t.Errorf("identity sequence with DDL: %+v", seq)
			}
		}
	}
	refs, err := TaskSequences(ctx, conn, narrow, []proto.TableID{{Schema: "app", Name: "orders"}, {Schema: "app", Name: "items"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range refs {
		owner := "-"
		if r.Owner != nil {
			owner = r.Owner.String()
		}
		got = append(got, r.ID.String()+" "+owner)
	}
	if want := []string{"app.items_id_seq app.items", "app.order_no_seq -", "app.orders_id_seq app.orders", "app.shared_seq -"}; !slices.Equal(got, want) {
		t.Fatalf("TaskSequences %v, want %v", got, want)
	}

	whole := []proto.ObjectSpec{{Schema: "app"}}
	s, err = ReadSchema(ctx, conn, whole)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqNames(s.Sequences), []string{"app.Odd Name", "app.items_id_seq", "app.order_no_seq", "app.orders_id_seq", "app.other_id_seq", "app.shared_seq", "app.unused_seq"}; !slices.Equal(got, want) {
		t.Fatalf("whole schema's sequences %v, want %v", got, want)
	}
	// A table created later is not the task's (without DDL sync): nor is
	// the sequence it owns.
	testenv.MustExec(t, conn, `CREATE TABLE app.later (id serial PRIMARY KEY)`)
	refs, err = TaskSequences(ctx, conn, whole, []proto.TableID{{Schema: "app", Name: "orders"}, {Schema: "app", Name: "items"}, {Schema: "app", Name: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 7 || slices.ContainsFunc(refs, func(r SequenceRef) bool { return r.ID.Name == "later_id_seq" }) {
		t.Fatalf("whole schema's sequences with a table created later: %v", refs)
	}

	bad := []proto.ObjectSpec{{Schema: "app", Tables: []string{"orders"}, Sequences: []string{"nosuch", "other", "items_id_seq", "order_no_seq"}}}
	_, err = ReadSchema(ctx, conn, bad)
	var selErr *SelectionError
	if !errors.As(err, &selErr) {
		t.Fatalf("bad names: %v", err)
	}
	if want := "selected objects: not found: sequence app.nosuch; not supported yet: app.other (not a sequence: list it under tables), app.items_id_seq (the identity sequence of app.items.id: it is synced with its table)"; err.Error() != want {
		t.Fatalf("bad names:\n got %v\nwant %s", err, want)
	}
	// A task that runs keeps the others in step.
	if refs, err := TaskSequences(ctx, conn, bad, []proto.TableID{{Schema: "app", Name: "orders"}}); err != nil || len(refs) != 3 {
		t.Fatalf("TaskSequences with bad names: %v %v", refs, err)
	}
}

// Values: the last values of thousands of sequences in one query, those
// not called yet absent; exact states from the sequences themselves; and
// what a user without privileges may not read, named rather than failing.
func TestSequenceValues(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, sequencesTestDDL+`
		DO $$ BEGIN FOR i IN 1..2000 LOOP EXECUTE format('CREATE SEQUENCE app.many_%s START WITH %s', i, i); PERFORM nextval(format('app.many_%s', i)); END LOOP; END $$;
		CREATE ROLE weak LOGIN;
		GRANT SELECT ON SEQUENCE app.shared_seq TO weak;
		GRANT USAGE ON SEQUENCE app.order_no_seq TO weak`)
	// USAGE on the schema comes later: last values are read without it.
	refs, err := TaskSequences(ctx, conn, []proto.ObjectSpec{{Schema: "app"}}, []proto.TableID{{Schema: "app", Name: "orders"}, {Schema: "app", Name: "items"}, {Schema: "app", Name: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	oid := map[string]uint32{}
	var oids []uint32
	for _, r := range refs {
		oid[r.ID.Name] = r.OID
		oids = append(oids, r.OID)
	}
	if len(refs) != 2007 {
		t.Fatalf("%d sequences", len(refs))
	}
	values, denied, err := LastValues(ctx, conn, oids)
	if err != nil || len(denied) != 0 {
		t.Fatal(err, denied)
	}
	if values[oid["shared_seq"]] != 3 || values[oid["many_1999"]] != 1999 || values[oid["orders_id_seq"]] != 1 {
		t.Fatalf("values: shared %d, many_1999 %d, orders_id_seq %d", values[oid["shared_seq"]], values[oid["many_1999"]], values[oid["orders_id_seq"]])
	}
	if _, ok := values[oid["unused_seq"]]; ok || len(values) != 2007-3 {
		t.Fatalf("%d values; unused_seq, other_id_seq and Odd Name were never called", len(values))
	}
	states, denied, err := SequenceStates(ctx, conn, []uint32{oid["unused_seq"], oid["shared_seq"]})
	if err != nil || len(denied) != 0 {
		t.Fatal(err, denied)
	}
	if fmt.Sprint(states[oid["unused_seq"]], states[oid["shared_seq"]]) != "40* 3" {
		t.Fatalf("states %v", states)
	}

	weak := testenv.Conn(t, pg.UserDSN("weak", "", "postgres"))
	some := []uint32{oid["shared_seq"], oid["order_no_seq"], oid["orders_id_seq"]}
	values, denied, err = LastValues(ctx, weak, some)
	if err != nil {
		t.Fatal(err)
	}
	if len(values) != 2 || !slices.Equal(denied, []uint32{oid["orders_id_seq"]}) {
		t.Fatalf("as weak: values %v, denied %v", values, denied)
	}
	// Reading a sequence itself needs SELECT (USAGE is not enough), and
	// USAGE on its schema.
	states, denied, err = SequenceStates(ctx, weak, some)
	if err != nil || len(states) != 0 || len(denied) != 3 {
		t.Fatalf("as weak without the schema: states %v, denied %v, %v", states, denied, err)
	}
	testenv.MustExec(t, conn, `GRANT USAGE ON SCHEMA app TO weak`)
	states, denied, err = SequenceStates(ctx, weak, some)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || !slices.Equal(denied, []uint32{oid["order_no_seq"], oid["orders_id_seq"]}) {
		t.Fatalf("as weak: states %v, denied %v", states, denied)
	}
}

// The precheck names sequences that cannot be selected, and those the
// user may not read: a failure with schema sync, which reads them.
func TestPrecheckSequences(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, sequencesTestDDL+`
		CREATE ROLE weak LOGIN REPLICATION;
		GRANT USAGE ON SCHEMA app TO weak;
		GRANT SELECT ON ALL TABLES IN SCHEMA app TO weak;
		GRANT SELECT ON SEQUENCE app.shared_seq, app.order_no_seq TO weak`)
	check := func(dsn, objects, sync string) proto.Problem {
		t.Helper()
		spec, err := proto.ParseTaskSpec([]byte(fmt.Sprintf("name: t\nsource: {dsn: %q}\ndestination: {type: test, dsn: x}\nobjects: %s\nsync: %s\n", dsn, objects, sync)))
		if err != nil {
			t.Fatal(err)
		}
		c := &proto.Checks{}
		Precheck(ctx, spec, c)
		for _, p := range c.Report().Checks {
			if p.Check == "source.sequences" {
				return p
			}
		}
		t.Fatalf("no source.sequences check: %+v", c.Report().Checks)
		return proto.Problem{}
	}
	p := check(pg.DSN("postgres"), "[{schema: app, tables: [orders], sequences: [order_no_seq, nosuch]}]", "{}")
	if p.Result != proto.ResultFailure || !strings.Contains(p.Message, "sequence app.nosuch") {
		t.Fatalf("missing sequence: %+v", p)
	}
	p = check(pg.DSN("postgres"), "[{schema: app, tables: [orders], sequences: [order_no_seq]}]", "{}")
	if p.Result != proto.ResultPass || p.Message != "3 sequences, all readable" {
		t.Fatalf("good selection: %+v", p)
	}
	weak := pg.UserDSN("weak", "", "postgres")
	p = check(weak, "[{schema: app, tables: [orders], sequences: [order_no_seq]}]", "{}")
	if p.Result != proto.ResultFailure || !strings.Contains(p.Message, "may not read 1 of the task's sequences (app.orders_id_seq): schema sync reads") ||
		p.Fix != `GRANT SELECT ON SEQUENCE "app"."orders_id_seq" TO "weak"; (and USAGE on their schemas)` {
		t.Fatalf("unreadable with schema sync: %+v", p)
	}
	p = check(weak, "[{schema: app, tables: [orders], sequences: [order_no_seq]}]", "{schema: false}")
	if p.Result != proto.ResultWarning || !strings.Contains(p.Message, "not kept in step") {
		t.Fatalf("unreadable without schema sync: %+v", p)
	}
}
