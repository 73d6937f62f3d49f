package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// workingCopyTables are WorkingCopySchema's tables (payment with its
// partitions, read through the root).
var workingCopyTables = []string{"shop.customer", "shop.film", "shop.rental", "shop.rental_log", "shop.payment"}

// A working copy with a destination user that is not a superuser: the
// source's views, routines, triggers, rules, partitions and comments are
// there, and a workload that writes customers, their rentals and
// payments (foreign keys across tables and partitions) and deletes them
// again, children first, arrives whole: the apply never commits a state
// the keys refuse, and the triggers and rules, held, never act on
// replicated rows.
func TestWorkingCopyNonSuperuser(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, postgrestest.WorkingCopySchema)
	testenv.MustExec(t, testenv.Conn(t, p.dst.DSN(testenv.DefaultDB)), `CREATE ROLE app LOGIN;
		GRANT CREATE ON DATABASE `+testenv.DefaultDB+` TO app`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := []byte(fmt.Sprintf(`name: copy
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
sync: { ddl: true }
objects: [{ schema: shop, refresh: interval, refresh_interval: 1s }]
`, p.src.DSN(testenv.DefaultDB), p.dst.UserDSN("app", "", testenv.DefaultDB)))

	report, err := c.Precheck(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	var said bool
	for _, ch := range report.Checks {
		said = said || (ch.Check == "destination.replica_mode" && ch.Result == proto.ResultPass && strings.Contains(ch.Message, "created disabled"))
	}
	if !said || !report.Passed {
		t.Fatalf("precheck does not say how triggers and foreign keys are handled for a user that is not a superuser: %+v", report)
	}
	createTask(t, c, spec)
	waitPhase(t, c, "copy", proto.PhaseIncremental, 3*time.Minute)

	// Two writers, each its own customers.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- rentals(ctx, p.src.DSN(testenv.DefaultDB), w, 60)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	dstConn := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.CheckFor(t, 2*time.Minute, 250*time.Millisecond, func() error {
		if st, err := c.GetTask(ctx, "copy"); err != nil || st.State != proto.StateRunning {
			return fmt.Errorf("task: %+v %v", st, err)
		}
		return testenv.CompareTables(ctx, srcConn, dstConn, workingCopyTables)
	})
	// The views answer the same.
	for _, v := range []string{"shop.customer_list", "shop.active_customers", "shop.film_list"} {
		q := "(SELECT * FROM " + v + ")"
		if err := testenv.CompareTable(ctx, srcConn, dstConn, q, q); err != nil {
			t.Errorf("view %s: %v", v, err)
		}
	}
	if st, err := c.GetTask(ctx, "copy"); err != nil || st.LastError != nil {
		t.Fatalf("task after the workload: %+v %v", st, err)
	}
	// refresh: interval keeps the materialized view in step with the
	// rows (the source's own is as its last REFRESH left it).
	salesQuery := `(SELECT f.rating, count(*) AS rentals, sum(p.amount) AS total
		FROM shop.payment p JOIN shop.rental r ON r.rental_id = p.rental_id JOIN shop.film f ON f.film_id = r.film_id GROUP BY f.rating)`
	if testenv.CompareTable(ctx, srcConn, srcConn, salesQuery, "shop.sales_by_rating") == nil {
		t.Fatal("the workload left the source's materialized view as it was: the refresh check below could not fail")
	}
	testenv.CheckFor(t, time.Minute, 250*time.Millisecond, func() error {
		return testenv.CompareTable(ctx, srcConn, dstConn, salesQuery, "shop.sales_by_rating")
	})

	// Partitions come and go during incremental sync: created (and
	// written at once), detached (their rows leave the table), dropped
	// (their rows go without a change each).
	testenv.MustExec(t, srcConn, `CREATE TABLE shop.payment_2021_01 PARTITION OF shop.payment FOR VALUES FROM ('2021-01-01 00:00:00+00') TO ('2021-02-01 00:00:00+00');
		INSERT INTO shop.payment (customer_id, amount, payment_date) VALUES (1, 7.5, '2021-01-15');
		ALTER TABLE shop.payment DETACH PARTITION shop.payment_p2022_05;
		DROP TABLE shop.payment_p2022_04;
		UPDATE shop.payment SET amount = amount + 1 WHERE payment_date < '2022-01-03'`)
	// Objects change too (DDL sync): a trigger created now is held like
	// those schema sync made, a view replaced, a comment changed.
	testenv.MustExec(t, srcConn, `CREATE TRIGGER rental_touch BEFORE UPDATE ON shop.rental FOR EACH ROW EXECUTE FUNCTION shop.last_updated();
		CREATE OR REPLACE VIEW shop.active_customers AS SELECT * FROM shop.customer_list WHERE notes = 'active' OR notes IS NULL;
		COMMENT ON TABLE shop.film IS 'the films';
		UPDATE shop.rental SET return_date = now() WHERE rental_id % 7 = 0`)
	testenv.CheckFor(t, 2*time.Minute, 250*time.Millisecond, func() error {
		return testenv.CompareTables(ctx, srcConn, dstConn, workingCopyTables)
	})
	if err := testenv.CompareTable(ctx, srcConn, dstConn, "shop.payment_p2022_05", "shop.payment_p2022_05"); err != nil {
		t.Errorf("the detached partition: %v", err)
	}

	// The objects are the source's, but for the keys made deferrable.
	want := postgrestest.DescribeObjects(t, srcConn, "shop")
	got := postgrestest.DescribeObjects(t, dstConn, "shop")
	for i, l := range got {
		got[i] = strings.Replace(l, " DEFERRABLE", "", 1)
	}
	if d := postgrestest.LineDiff(want, got); d != "" {
		t.Fatalf("objects differ (- source only, + destination only):\n%s", d)
	}
	// The triggers and rules on the tables are held; the view's rule is not.
	for _, l := range postgrestest.DescribeFiring(t, dstConn, "shop") {
		if held := strings.HasSuffix(l, " D"); held == strings.Contains(l, "customer_list") {
			t.Errorf("firing state at the destination: %s", l)
		}
	}

	// Cutover: the sequences exactly as at the source, the held objects
	// given the source's definitions back; the destination takes the
	// application's writes.
	cut, err := c.Cutover(ctx, "copy", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(cut.Released) < 3+2+3 || len(cut.Sequences) < 4 {
		t.Fatalf("cutover report: %+v", cut)
	}
	seqs := `(SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'shop')`
	if err := testenv.CompareTable(ctx, srcConn, dstConn, seqs, seqs); err != nil {
		t.Fatalf("sequences after the cutover: %v", err)
	}
	testenv.MustExec(t, dstConn, `INSERT INTO shop.customer (first_name, last_name) VALUES ('after', 'cutover');
		INSERT INTO shop.rental (rental_date, film_id, customer_id) SELECT now(), 1, max(customer_id) FROM shop.customer`)
	releasedAfter(t, c, "copy", srcConn, dstConn)
}

// releasedAfter deletes a task and checks that its destination got the
// source's definitions back: triggers and rules fire as at the source,
// foreign keys are as deferrable as there.
func releasedAfter(t *testing.T, c *coordinator.Client, task string, srcConn, dstConn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	if err := c.DeleteTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if d := postgrestest.LineDiff(postgrestest.DescribeFiring(t, srcConn, "shop"), postgrestest.DescribeFiring(t, dstConn, "shop")); d != "" {
		t.Errorf("firing states after the task (- source, + destination):\n%s", d)
	}
	if d := postgrestest.LineDiff(postgrestest.DescribeObjects(t, srcConn, "shop"), postgrestest.DescribeObjects(t, dstConn, "shop")); d != "" {
		t.Errorf("objects after the task (- source, + destination):\n%s", d)
	}
	var deferrable int
	if err := dstConn.QueryRow(ctx, `SELECT count(*) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
		WHERE n.nspname = 'shop' AND k.contype = 'f' AND k.condeferrable`).Scan(&deferrable); err != nil || deferrable != 0 {
		t.Errorf("%d foreign keys still deferrable after the task (%v)", deferrable, err)
	}
	// The triggers act on local writes now, and the keys check them.
	var fired bool
	if err := dstConn.QueryRow(ctx, `UPDATE shop.customer SET last_update = '2000-01-01' WHERE customer_id = 1 RETURNING last_update = now()`).Scan(&fired); err != nil || !fired {
		t.Errorf("the last_updated trigger did not fire for a local update at the destination (%v)", err)
	}
	if _, err := dstConn.Exec(ctx, `INSERT INTO shop.rental (rental_date, film_id, customer_id) VALUES (now(), 1, -1)`); err == nil || !strings.Contains(err.Error(), "rental_customer_id_fkey") {
		t.Errorf("a local insert that breaks a foreign key at the destination: %v", err)
	}
}

// rentals runs n rounds of a rental workload as writer w: a customer
// rents a film and pays (one transaction), the customer's email changes
// (a trigger sets last_update at the source), and every third round the
// payment, the rental and the customer go again, children first.
func rentals(ctx context.Context, dsn string, w, n int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	for i := 0; i < n; i++ {
		var customer, rental int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `INSERT INTO shop.customer (first_name, last_name, email) VALUES ($1, $2, $3) RETURNING customer_id`,
				fmt.Sprintf("w%d", w), fmt.Sprintf("n%d", i), fmt.Sprintf("w%d.%d@x", w, i)).Scan(&customer); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO shop.rental (rental_date, film_id, customer_id) VALUES (now(), $1, $2) RETURNING rental_id`,
				1+rng.IntN(40), customer).Scan(&rental); err != nil {
				return err
			}
			day := rng.IntN(200)
			_, err := tx.Exec(ctx, `INSERT INTO shop.payment (customer_id, rental_id, amount, payment_date) VALUES ($1, $2, $3, '2022-01-01'::timestamptz + $4 * interval '1 day')`,
				customer, rental, float64(rng.IntN(1000))/100, day)
			return err
		})
		if err != nil {
			return fmt.Errorf("writer %d round %d: rent: %w", w, i, err)
		}
		if _, err := conn.Exec(ctx, `UPDATE shop.customer SET email = 'changed.' || email WHERE customer_id = $1`, customer); err != nil {
			return fmt.Errorf("writer %d round %d: update: %w", w, i, err)
		}
		if i%3 == 2 {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for _, del := range []struct {
					sql string
					id  int
				}{{`DELETE FROM shop.payment WHERE rental_id = $1`, rental}, {`DELETE FROM shop.rental WHERE rental_id = $1`, rental}, {`DELETE FROM shop.customer WHERE customer_id = $1`, customer}} {
					if _, err := tx.Exec(ctx, del.sql, del.id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("writer %d round %d: delete: %w", w, i, err)
			}
		}
	}
	return nil
}

// sluice task plan: what a task would create, in order, creating nothing.
func TestTaskPlan(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, postgrestest.WorkingCopySchema)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := fmt.Sprintf(`name: planned
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
objects: [{ schema: shop, rename: { film: movies } }]
`, p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB))
	plan, err := c.Plan(ctx, []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]proto.PlannedTable{}
	for _, pt := range plan.Tables {
		tables[pt.Source.String()] = pt
	}
	pay, rental, customer := tables["shop.payment"], tables["shop.rental"], tables["shop.customer"]
	if len(plan.Tables) != 5 || tables["shop.film"].Destination != "shop.movies" || pay.Storage != "partitioned by RANGE (payment_date) (9 partitions)" ||
		!slices.Equal(pay.Key, []string{"payment_date", "payment_id"}) || pay.EstimatedRows <= 0 {
		t.Fatalf("planned tables: %+v", plan.Tables)
	}
	// customer, rental and payment (through its partitions' keys) and
	// film are linked by foreign keys: one group; rental_log is not.
	if rental.Group != customer.Group || pay.Group != customer.Group || rental.Linked != "shop.customer" || tables["shop.rental_log"].Linked != "" {
		t.Fatalf("groups: %+v", plan.Tables)
	}
	var order []string
	for _, st := range plan.Statements {
		order = append(order, st.Phase+": "+st.What)
	}
	at := func(what string) int {
		i := slices.IndexFunc(order, func(s string) bool { return strings.HasSuffix(s, what) })
		if i < 0 {
			t.Fatalf("the plan has no %q:\n%s", what, strings.Join(order, "\n"))
		}
		return i
	}
	if !(at("create table shop.payment") < at("create partition shop.payment_p2022_01 of shop.payment") &&
		at("create partition shop.payment_later of shop.payment") < at("create partition shop.payment_later_0 of shop.payment_later") &&
		at("create view shop.customer_list") < at("create view shop.active_customers") &&
		at(`add constraint "rental_customer_id_fkey" to shop.rental`) < at("create trigger last_updated on shop.rental")) ||
		!strings.HasPrefix(order[at("create trigger last_updated on shop.rental")], proto.PhaseAfterLoad) ||
		!strings.HasPrefix(order[at("create function shop.customer_balance(integer)")], proto.PhaseBeforeLoad) ||
		plan.Objects[proto.ObjectView] != 4 || plan.Objects[proto.ObjectTrigger] != 3 {
		t.Fatalf("statements out of order:\n%s\nobjects %v", strings.Join(order, "\n"), plan.Objects)
	}
	// Nothing was created, at either end.
	var schemas, slots int
	if err := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB)).QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname IN ('shop', 'sluice')`).Scan(&schemas); err != nil || schemas != 0 {
		t.Fatalf("the destination has %d of the task's schemas after a plan (%v)", schemas, err)
	}
	if err := srcConn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("the source has %d slots after a plan (%v)", slots, err)
	}
	// Bad input: a spec that does not validate, a source that cannot be
	// reached, a selection that names nothing.
	for _, bad := range []struct{ spec, want string }{
		{strings.Replace(spec, "type: postgres", "type: nope", 1), "nope"},
		{strings.Replace(spec, p.src.DSN(testenv.DefaultDB), "postgres://postgres@127.0.0.1:1/x?sslmode=disable", 1), "cannot connect to the source"},
		{strings.Replace(spec, "schema: shop", "schema: nowhere", 1), "nowhere"},
		{strings.Replace(spec, "rename: { film: movies }", "partitions: sideways", 1), "objects[0].partitions"},
	} {
		if _, err := c.Plan(ctx, []byte(bad.spec)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("plan of a bad spec: %v, want an error saying %q", err, bad.want)
		}
	}
}
