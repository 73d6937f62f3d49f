package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// A working copy: schema sync creates the source's views, routines,
// triggers, rules, aggregates, operators, types, comments and partitions
// as they are there, runs again harmlessly, and holds triggers and rules
// when asked to.
func TestWorkingCopyRoundTrip(t *testing.T) {
	src := testenv.NewPostgres(t)
	dst := testenv.NewPostgres(t)
	srcConn := testenv.Conn(t, src.DSN("postgres"))
	testenv.MustExec(t, srcConn, postgrestest.WorkingCopySchema)
	ctx := context.Background()
	s, err := capture.ReadSchema(ctx, srcConn, []proto.ObjectSpec{{Schema: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	want := postgrestest.DescribeObjects(t, srcConn, "shop")
	for _, kind := range []string{"view shop.active_customers", "routine CREATE OR REPLACE PROCEDURE shop.close_rental", "aggregate shop.group_concat(text)",
		"operator shop.=~=(numeric,numeric)", "type shop.unused_email", "type shop.unused_mood", "partition shop.payment_later_1 of shop.payment_later FOR VALUES WITH (modulus 2, remainder 1)", "partition shop.payment_old of shop.payment DEFAULT",
		"partition constraint shop.payment_p2022_01 payment_p2022_01_rental_id_fkey", "partition index CREATE INDEX idx_payment_p2022_01_customer",
		"rule CREATE RULE rental_log_rule", "comment schema shop: the shop", "comment table constraint rental_film_id_fkey on shop.rental: rented film",
		"matview populated shop.sales_by_rating true", "matview index CREATE UNIQUE INDEX sales_by_rating_rating"} {
		if !slices.ContainsFunc(want, func(l string) bool { return strings.HasPrefix(l, kind) }) {
			t.Fatalf("the source's description has no %q: the comparison below could not fail for it:\n%s", kind, strings.Join(want, "\n"))
		}
	}

	run := func(t *testing.T, db string, o *postgres.SchemaOptions) {
		t.Helper()
		testenv.MustExec(t, testenv.Conn(t, dst.DSN("postgres")), "CREATE DATABASE "+db)
		dstConn := testenv.Conn(t, dst.DSN(db))
		// Twice: a crash and a restart run schema sync again.
		for round := 0; round < 2; round++ {
			if err := postgres.ApplyPreData(ctx, dstConn, s, o); err != nil {
				t.Fatalf("round %d: pre-data: %v", round, err)
			}
			if err := postgres.ApplyPostData(ctx, dstConn, s, o); err != nil {
				t.Fatalf("round %d: post-data: %v", round, err)
			}
		}
		got := postgrestest.DescribeObjects(t, dstConn, "shop")
		if o != nil && o.Flatten != nil {
			want = slices.DeleteFunc(slices.Clone(want), func(l string) bool { return strings.HasPrefix(l, "partition ") })
		}
		if d := postgrestest.LineDiff(want, got); d != "" {
			t.Fatalf("objects differ (- source only, + destination only):\n%s", d)
		}
		// The functions work at the destination.
		testenv.MustExec(t, dstConn, `INSERT INTO shop.customer (first_name, last_name) VALUES ('a', 'b');
			INSERT INTO shop.film (title) VALUES ('f');
			INSERT INTO shop.rental (rental_date, film_id, customer_id) VALUES ('2022-01-05', 1, 1);
			INSERT INTO shop.payment (customer_id, rental_id, amount, payment_date) VALUES (1, 1, 2.5, '2022-01-05'), (1, 1, 1, '2023-01-05');
			CALL shop.close_rental(1)`)
		var balance, names string
		if err := dstConn.QueryRow(ctx, `SELECT shop.customer_balance(1)::text, (SELECT shop.group_concat(name) FROM shop.customer_list)`).Scan(&balance, &names); err != nil {
			t.Fatal(err)
		}
		if balance != "3.50" || names != "a b" {
			t.Fatalf("customer_balance(1) = %s, group_concat = %q: want 3.50 and %q", balance, names, "a b")
		}
	}

	t.Run("keep", func(t *testing.T) {
		run(t, "keep", nil)
		dstConn := testenv.Conn(t, dst.DSN("keep"))
		if d := postgrestest.LineDiff(postgrestest.DescribeFiring(t, srcConn, "shop"), postgrestest.DescribeFiring(t, dstConn, "shop")); d != "" {
			t.Fatalf("firing states differ:\n%s", d)
		}
		// The rental_log rule fires for local writes (as at the source).
		var logged int
		if err := dstConn.QueryRow(ctx, `SELECT count(*) FROM shop.rental_log`).Scan(&logged); err != nil || logged != 1 {
			t.Fatalf("rental_log rows after a local insert: %d, %v; want 1", logged, err)
		}
	})
	t.Run("flatten, triggers held", func(t *testing.T) {
		run(t, "flat", &postgres.SchemaOptions{Flatten: func(proto.TableID) bool { return true }, NoReplicaMode: true})
		dstConn := testenv.Conn(t, dst.DSN("flat"))
		var kind string
		if err := dstConn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'shop.payment'::regclass`).Scan(&kind); err != nil || kind != "r" {
			t.Fatalf("flattened payment has relkind %q (%v), want r", kind, err)
		}
		for _, l := range postgrestest.DescribeFiring(t, dstConn, "shop") {
			// Held on the tables the task writes; a view's rule never sees
			// a replicated row.
			held := strings.HasSuffix(l, " D")
			if strings.Contains(l, "customer_list") == held {
				t.Errorf("firing state: %s", l)
			}
		}
	})
}
