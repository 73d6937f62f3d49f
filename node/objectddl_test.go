package node_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// objectDDLSteps are schema changes made at the source while rows keep
// coming, each depending on the one before across tables of different
// apply groups: a view on a column added just before, a view dropped
// just before a type change it would block, a type created just before a
// column uses it, a domain before a new table, renames of a view and a
// function with views on top, a trigger whose function lives outside the
// task's schema, comments, a materialized view and its index, an
// operator and an aggregate, drops.
var objectDDLSteps = []string{
	`ALTER TABLE app.b ADD COLUMN x int DEFAULT 1;
	 CREATE VIEW app.ab AS SELECT a.id, b.x FROM app.a JOIN app.b USING (id)`,
	`CREATE FUNCTION app.twice(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2 * n';
	 CREATE OR REPLACE VIEW app.ab AS SELECT a.id, b.x, app.twice(b.x) AS x2 FROM app.a JOIN app.b USING (id)`,
	`ALTER VIEW app.ab RENAME TO ab2;
	 CREATE VIEW app.on_ab2 AS SELECT id, x2 FROM app.ab2 WHERE x2 > 0`,
	`DROP VIEW app.v_old;
	 ALTER TABLE app.a ALTER COLUMN v TYPE bigint;
	 CREATE VIEW app.v_new AS SELECT id, v FROM app.a WHERE v % 2 = 0`,
	`CREATE TYPE app.mood AS ENUM ('sad', 'ok');
	 ALTER TYPE app.mood ADD VALUE 'happy'`,
	`ALTER TABLE app.a ADD COLUMN m app.mood;
	 UPDATE app.a SET m = 'happy' WHERE id % 3 = 0`,
	`CREATE DOMAIN app.posint AS int CHECK (VALUE > 0);
	 CREATE TABLE app.c (id app.posint PRIMARY KEY, note text);
	 INSERT INTO app.c SELECT g, 'c' || g FROM generate_series(1, 20) g`,
	`CREATE SCHEMA util;
	 CREATE FUNCTION util.stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.note := NEW.note || '!'; RETURN NEW; END$$;
	 CREATE TRIGGER c_stamp BEFORE INSERT ON app.c FOR EACH ROW EXECUTE FUNCTION util.stamp();
	 INSERT INTO app.c VALUES (21, 'stamped')`,
	`COMMENT ON COLUMN app.a.v IS 'the value';
	 COMMENT ON VIEW app.ab2 IS 'a with b';
	 COMMENT ON FUNCTION app.f_old(int) IS 'soon gone'`,
	`CREATE MATERIALIZED VIEW app.mv AS SELECT count(*) AS n, sum(v) AS total FROM app.a;
	 CREATE UNIQUE INDEX mv_n ON app.mv (n)`,
	`CREATE FUNCTION app.near(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT abs(a - b) < 2';
	 CREATE OPERATOR app.=~ (FUNCTION = app.near, LEFTARG = int, RIGHTARG = int);
	 CREATE AGGREGATE app.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0')`,
	`ALTER FUNCTION app.twice(int) RENAME TO double;
	 DROP FUNCTION app.f_old(int);
	 CREATE OR REPLACE FUNCTION app.double(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT n + n'`,
}

// DDL sync of the objects beside tables: each step above reaches the
// destination in order with the rows around it, whichever apply group
// their tables are in, and at the end the destination's objects are the
// source's, the rows the same, the views answer the same.
func TestObjectDDLSync(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE SCHEMA app;
		CREATE TABLE app.a (id int PRIMARY KEY, v int NOT NULL);
		CREATE TABLE app.b (id int PRIMARY KEY, w text);
		CREATE TABLE app.d (id int PRIMARY KEY);
		INSERT INTO app.a SELECT g, g FROM generate_series(1, 100) g;
		INSERT INTO app.b SELECT g, 'b' || g FROM generate_series(1, 100) g;
		CREATE FUNCTION app.f_old(n int) RETURNS int LANGUAGE sql AS 'SELECT n';
		CREATE VIEW app.v_old AS SELECT id, v FROM app.a`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, []byte(fmt.Sprintf(`name: objs
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
sync: { ddl: true }
objects: [{ schema: app }]
`, p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB))))
	waitPhase(t, c, "objs", proto.PhaseIncremental, 3*time.Minute)

	// Rows keep coming into every table while the steps run.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	werr := make(chan error, 1)
	go func() {
		defer wg.Done()
		werr <- objectWorkload(ctx, p.src.DSN(testenv.DefaultDB), &stop)
	}()
	for i, step := range objectDDLSteps {
		if _, err := srcConn.Exec(ctx, step); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("step %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}

	dstConn := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	tables := []string{"app.a", "app.b", "app.c", "app.d"}
	testenv.CheckFor(t, 2*time.Minute, 250*time.Millisecond, func() error {
		if st, err := c.GetTask(ctx, "objs"); err != nil || st.LastError != nil {
			return fmt.Errorf("task: %+v %v", st, err)
		}
		if err := testenv.CompareTables(ctx, srcConn, dstConn, tables); err != nil {
			return err
		}
		if d := postgrestest.LineDiff(postgrestest.DescribeObjects(t, srcConn, "app"), postgrestest.DescribeObjects(t, dstConn, "app")); d != "" {
			return fmt.Errorf("objects differ (- source only, + destination only):\n%s", d)
		}
		return nil
	})
	for _, v := range []string{"app.ab2", "app.on_ab2", "app.v_new"} {
		q := "(SELECT * FROM " + v + ")"
		if err := testenv.CompareTable(ctx, srcConn, dstConn, q, q); err != nil {
			t.Errorf("view %s: %v", v, err)
		}
	}
	// The materialized view was made from the destination's rows when its
	// event came, so it holds what the source's held then.
	var populated bool
	if err := dstConn.QueryRow(ctx, `SELECT relispopulated FROM pg_class WHERE oid = 'app.mv'::regclass`).Scan(&populated); err != nil || !populated {
		t.Errorf("materialized view not populated at the destination (%v)", err)
	}
	// The trigger's function came along (its schema is not the task's),
	// and the trigger did not fire for replicated rows: the destination
	// has the row as the source's trigger left it, once stamped.
	var note string
	if err := dstConn.QueryRow(ctx, `SELECT note FROM app.c WHERE id = 21`).Scan(&note); err != nil || note != "stamped!" {
		t.Errorf("row written through the trigger at the destination: %q (%v)", note, err)
	}
	var fn bool
	if err := dstConn.QueryRow(ctx, `SELECT to_regprocedure('util.stamp()') IS NOT NULL`).Scan(&fn); err != nil || !fn {
		t.Errorf("the trigger's function is not at the destination (%v)", err)
	}
	// A local write at the destination uses the synced objects.
	var ok bool
	if err := dstConn.QueryRow(ctx, `SELECT app.double(2) = 4 AND 3 OPERATOR(app.=~) 4 AND (SELECT app.total(x) FROM (VALUES (1), (2)) v(x)) = 3`).Scan(&ok); err != nil || !ok {
		t.Errorf("synced routines at the destination: %v %v", ok, err)
	}
	if st, err := c.GetTask(ctx, "objs"); err != nil || st.State != proto.StateRunning {
		t.Fatalf("task: %+v %v", st, err)
	}
}

// objectWorkload inserts and updates rows of app.a, app.b and app.d
// until stop, at most 2,000 rounds.
func objectWorkload(ctx context.Context, dsn string, stop *atomic.Bool) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := 0; i < 2000 && !stop.Load(); i++ {
		id := 1000 + i
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO app.a (id, v) VALUES ($1, $1)`, id)
		b.Queue(`INSERT INTO app.b (id, w) VALUES ($1, 'w')`, id)
		b.Queue(`INSERT INTO app.d VALUES ($1)`, id)
		b.Queue(`UPDATE app.a SET v = v + 1 WHERE id = $1`, id-5)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("workload round %d: %w", i, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
