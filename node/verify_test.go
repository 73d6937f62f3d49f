package node_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// verifyDiffs lists a report's differences as "table kind key (columns)".
func verifyDiffs(r *proto.VerifyReport) []string {
	var out []string
	for _, t := range r.Tables {
		if t.Error != "" {
			out = append(out, t.Table+" error "+t.Error)
		}
		for _, d := range t.Differences {
			keys := make([]string, 0, len(d.Key))
			for k, v := range d.Key {
				keys = append(keys, k+"="+v)
			}
			slices.Sort(keys)
			s := t.Table + " " + d.Kind + " " + strings.Join(keys, ",")
			if len(d.Columns) > 0 {
				s += " (" + strings.Join(d.Columns, ",") + ")"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// sluice verify on a running PostgreSQL task: nothing reported while a
// workload updates the same keys over and over; every kind of damage
// done at the destination named by key (a value of each type family, a
// missing row, an extra row, a duplicated row of a keyless table, a row
// outside the filter, a renamed column's value); --repair leaves verify
// clean and the tables equal by content, while the workload runs again;
// the last results are kept.
func TestVerify(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `
		CREATE TABLE items (id int PRIMARY KEY, n numeric(10,2), ts timestamptz, d date, j jsonb, f float8, b bytea, note text, tags text[]);
		INSERT INTO items SELECT g, g + 0.25, '2024-05-01 10:00:00+00'::timestamptz + g * interval '1 minute', '2024-01-01'::date + g,
			jsonb_build_object('k', g, 'a', 'x'), g / 7.0, decode(md5(g::text), 'hex'), 'note ' || g, ARRAY['t' || g]
			FROM generate_series(1, 500) g;
		CREATE TABLE logs (kind text, n int);
		ALTER TABLE logs REPLICA IDENTITY FULL;
		INSERT INTO logs SELECT (ARRAY['in', 'out'])[1 + g % 2], g % 5 FROM generate_series(1, 40) g;
		CREATE TABLE orders (id int PRIMARY KEY, amount int, region text);
		ALTER TABLE orders REPLICA IDENTITY FULL;
		INSERT INTO orders SELECT g, g * 10, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END FROM generate_series(1, 60) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, []byte(fmt.Sprintf(`name: v
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
objects:
  - schema: public
    filter: { orders: "region = 'eu'" }
    rename: { "orders.amount": total }
`, p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB))))
	waitPhase(t, c, "v", proto.PhaseIncremental, 3*time.Minute)

	// 1. While the same keys are updated over and over, verify reports
	// nothing.
	nothingUnderLoad(t, c, "v", p.src.DSN(testenv.DefaultDB), 3)

	// 2. Damage at the destination, in every way.
	dstConn := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, dstConn, `
		UPDATE items SET n = n + 1 WHERE id = 101; UPDATE items SET ts = ts + interval '1 second' WHERE id = 102;
		UPDATE items SET d = d + 1 WHERE id = 103; UPDATE items SET j = j || '{"z": 0}' WHERE id = 104;
		UPDATE items SET f = f * 2 WHERE id = 105; UPDATE items SET b = '\x00' WHERE id = 106;
		UPDATE items SET note = 'x' WHERE id = 107; UPDATE items SET tags = NULL WHERE id = 108;
		DELETE FROM items WHERE id = 109; INSERT INTO items (id, note) VALUES (9999, 'extra');
		INSERT INTO logs SELECT * FROM logs LIMIT 1;
		INSERT INTO orders VALUES (3000, 1, 'us'); UPDATE orders SET total = -1 WHERE id = 10`)
	report, err := c.Verify(ctx, "v", proto.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := verifyDiffs(report)
	want := []string{
		"public.items changed id=101 (n)", "public.items changed id=102 (ts)", "public.items changed id=103 (d)",
		"public.items changed id=104 (j)", "public.items changed id=105 (f)", "public.items changed id=106 (b)",
		"public.items changed id=107 (note)", "public.items changed id=108 (tags)", "public.items missing id=109",
		"public.items extra id=9999", "public.orders changed id=10 (amount)", "public.orders extra id=3000",
	}
	slices.Sort(want)
	var logsDiff string
	for _, g := range got {
		if strings.HasPrefix(g, "public.logs ") {
			logsDiff = g
		}
	}
	got = slices.DeleteFunc(got, func(s string) bool { return strings.HasPrefix(s, "public.logs ") })
	if strings.Join(got, "\n") != strings.Join(want, "\n") || !strings.HasPrefix(logsDiff, "public.logs extra ") || report.Outcome() != 1 {
		t.Fatalf("differences (outcome %d):\n%s\n%s\nwant:\n%s\npublic.logs extra ...", report.Outcome(), strings.Join(got, "\n"), logsDiff, strings.Join(want, "\n"))
	}
	// One table only.
	one, err := c.Verify(ctx, "v", proto.VerifyRequest{Tables: []string{"public.orders"}})
	if err != nil || len(one.Tables) != 1 || len(one.Tables[0].Differences) != 2 {
		t.Fatalf("verify --table public.orders: %+v %v", one, err)
	}
	if _, err := c.Verify(ctx, "v", proto.VerifyRequest{Tables: []string{"public.nope"}}); err == nil || !strings.Contains(err.Error(), "not one of task v's tables") {
		t.Fatalf("verify of a table the task does not have: %v", err)
	}

	// 3. Repair, while the workload runs again: the repaired rows are
	// checked again, verify is clean after, and the tables are equal.
	repaired := verifyUnderLoad(t, c, "v", p.src.DSN(testenv.DefaultDB), proto.VerifyRequest{Repair: true})
	for _, tr := range repaired.Tables {
		if tr.Error != "" || tr.Remaining != 0 || (tr.Differs() && tr.Repaired == 0) {
			t.Fatalf("repair of %s: %+v", tr.Table, tr)
		}
	}
	if repaired.Outcome() != 0 {
		t.Fatalf("repair outcome %d: %+v", repaired.Outcome(), repaired.Tables)
	}
	testenv.CheckFor(t, time.Minute, 250*time.Millisecond, func() error {
		if err := testenv.CompareTables(ctx, srcConn, dstConn, []string{"items", "logs"}); err != nil {
			return err
		}
		q := "(SELECT id, amount FROM orders WHERE region = 'eu')"
		return testenv.CompareTable(ctx, srcConn, dstConn, q, "(SELECT id, total FROM orders)")
	})
	clean, err := c.Verify(ctx, "v", proto.VerifyRequest{})
	if err != nil || clean.Outcome() != 0 {
		t.Fatalf("verify after the repair: %v %v", verifyDiffs(clean), err)
	}

	// 4. The last results are kept, per table.
	last, err := c.LastVerify(ctx, "v")
	if err != nil || len(last) != 3 {
		t.Fatalf("last verification: %+v %v", last, err)
	}
	for _, r := range last {
		if r.Differences != 0 || r.Rows == 0 || r.At.IsZero() {
			t.Fatalf("last verification of %s: %+v", r.Table, r)
		}
	}
}

// verifiedItemsAndLogs are the source tables the verify tests of
// destinations that read rows into Go share: items, keyed, with a value
// of each type family the canonical form spells; logs, keyless.
const verifiedItemsAndLogs = `
		CREATE TABLE items (id int PRIMARY KEY, n numeric(10,2), ts timestamptz, d date, j jsonb, f float8, b bytea, note text, tags text[], ok bool, u uuid);
		INSERT INTO items SELECT g, g + 0.25, '2024-05-01 10:00:00+00'::timestamptz + g * interval '1 minute 1.5 second', '2024-01-01'::date + g,
			jsonb_build_object('k', g, 'a', 'x', 'long key', ARRAY[g, 1]), g / 7.0, decode(md5(g::text), 'hex'), 'note (' || g || '), "q"',
			ARRAY['t' || g, NULL, 'a b'], g % 2 = 0, md5(g::text)::uuid
			FROM generate_series(1, 300) g;
		CREATE TABLE logs (kind text, n int);
		ALTER TABLE logs REPLICA IDENTITY FULL;
		INSERT INTO logs SELECT (ARRAY['in', 'out'])[1 + g % 2], g % 5 FROM generate_series(1, 40) g;
`

// verifyUnderLoad runs a verification of task while hotKeys writes at
// the source.
func verifyUnderLoad(t *testing.T, c *coordinator.Client, task, srcDSN string, req proto.VerifyRequest) *proto.VerifyReport {
	t.Helper()
	ctx := context.Background()
	var stop atomic.Bool
	werr := make(chan error, 1)
	go func() { werr <- hotKeys(ctx, srcDSN, &stop) }()
	time.Sleep(500 * time.Millisecond)
	report, err := c.Verify(ctx, task, req)
	stop.Store(true)
	if werr := <-werr; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return report
}

// nothingUnderLoad checks that a verification of task's tables (all
// of them holding rows) while hotKeys writes reports nothing.
func nothingUnderLoad(t *testing.T, c *coordinator.Client, task, srcDSN string, tables int) {
	t.Helper()
	report := verifyUnderLoad(t, c, task, srcDSN, proto.VerifyRequest{})
	if d := verifyDiffs(report); len(d) > 0 || report.Outcome() != 0 {
		t.Fatalf("verify under a workload reported (outcome %d):\n%s\n%+v", report.Outcome(), strings.Join(d, "\n"), report.Tables)
	}
	if len(report.Tables) != tables || report.Tables[0].Rows == 0 {
		t.Fatalf("tables verified: %+v", report.Tables)
	}
}

// hotKeys updates the same few rows over and over, with inserts and
// deletes beside, until stop (at most 3,000 rounds).
func hotKeys(ctx context.Context, dsn string, stop *atomic.Bool) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := 0; i < 3000 && !stop.Load(); i++ {
		b := &pgx.Batch{}
		b.Queue(`UPDATE items SET n = n + 1, note = 'hot ' || $1::int, ts = now() WHERE id = 1 + $1::int % 10`, i)
		b.Queue(`UPDATE orders SET amount = amount + 1 WHERE id = 1 + $1::int % 5`, i)
		b.Queue(`INSERT INTO logs VALUES ('hot', $1::int % 3)`, i)
		b.Queue(`DELETE FROM logs WHERE ctid IN (SELECT ctid FROM logs WHERE kind = 'hot' LIMIT 1) AND $1::int % 2 = 0`, i)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("hot keys round %d: %w", i, err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	return nil
}
