package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// sluice precheck --fix and task create --fix, through the real process,
// on keyless tables the application writes all along: the precheck alone
// refuses them; --fix sets REPLICA IDENTITY FULL on each, except on a
// table another session holds a lock on, where it gives up after its
// bounded lock waits and says how to run it by hand, leaving the writer
// unblocked; a later --fix runs it, task create --fix fixes a table of
// its own, and the sync's content then matches the source after updates
// and deletes on every keyless table.
func TestPrecheckFixKeylessTables(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcDSN := p.src.DSN(testenv.DefaultDB)
	src := testenv.Conn(t, srcDSN)
	testenv.MustExec(t, src, `CREATE TABLE bag (v text, n int); CREATE TABLE heap (v text, n int);
		CREATE TABLE keyed (id int PRIMARY KEY, v text);
		INSERT INTO bag SELECT 'b' || g, g FROM generate_series(1, 200) g;
		INSERT INTO heap SELECT 'h' || g, g FROM generate_series(1, 200) g;
		INSERT INTO keyed SELECT g, 'k' FROM generate_series(1, 200) g`)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	spec := filepath.Join(t.TempDir(), "fixer.yaml")
	if err := os.WriteFile(spec, taskYAML("fixer", p, ""), 0o600); err != nil {
		t.Fatal(err)
	}
	// The application: inserts, updates and deletes on both keyless
	// tables and the keyed one, 6000 rounds at most (stopped once the
	// task runs).
	stop := startWriter(t, srcDSN, 6000, 10*time.Millisecond, func(i int) string {
		return fmt.Sprintf(`INSERT INTO bag VALUES ('w%[1]d', %[1]d); UPDATE bag SET n = n + 1 WHERE v = 'b%[2]d';
			INSERT INTO heap VALUES ('w%[1]d', %[1]d); DELETE FROM heap WHERE v = 'h%[2]d';
			INSERT INTO keyed VALUES (1000 + %[1]d, 'w'); UPDATE keyed SET v = 'u' WHERE id = %[2]d`, i, i%200+1)
	})

	out, code := runSluice(t, proc, "precheck", "-f", spec)
	if code != 1 || !strings.Contains(out, "FAILURE  source.replica_identity") || !strings.Contains(out, "public.bag, public.heap") {
		t.Fatalf("precheck of keyless tables without --fix: exit %d\n%s", code, out)
	}
	if identity(t, src, "bag") != proto.IdentityDefault || identity(t, src, "heap") != proto.IdentityDefault {
		t.Fatal("the precheck without --fix changed a replica identity")
	}

	// A long reader holds bag: --fix sets heap's identity, gives up on
	// bag's after its bounded lock waits, and says so.
	holder := testenv.Conn(t, srcDSN)
	testenv.MustExec(t, holder, `BEGIN; SELECT count(*) FROM bag`)
	out, code = runSluice(t, proc, "precheck", "--fix", "-f", spec)
	for _, want := range []string{"FAILURE  source.replica_identity: fixed: ALTER TABLE public.heap REPLICA IDENTITY FULL",
		"could not fix: public.bag (lock timeout", "run it yourself when the table is not busy (or add a primary key): ALTER TABLE public.bag REPLICA IDENTITY FULL;"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("precheck --fix with bag locked: exit %d, want %q in\n%s", code, want, out)
		}
	}
	if identity(t, src, "bag") != proto.IdentityDefault || identity(t, src, "heap") != proto.IdentityFull {
		t.Fatalf("identities after a --fix that could fix heap only: bag %c, heap %c", identity(t, src, "bag"), identity(t, src, "heap"))
	}
	// Nothing waits behind a queued ALTER TABLE: the writer goes on while
	// the reader still holds its lock.
	before := count(t, src, "bag")
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n := count(t, src, "bag"); n <= before {
			return fmt.Errorf("the writer is stuck at %d rows of bag", n)
		}
		return nil
	})
	var waiting int
	if err := src.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&waiting); err != nil || waiting != 0 {
		t.Fatalf("sessions waiting for a lock after --fix gave up: %d %v", waiting, err)
	}
	testenv.MustExec(t, holder, `ROLLBACK`)

	out, code = runSluice(t, proc, "precheck", "--fix", "-f", spec)
	if code != 0 || !strings.Contains(out, "PASS     source.replica_identity: fixed: ALTER TABLE public.bag REPLICA IDENTITY FULL") || !strings.Contains(out, "precheck passed") {
		t.Fatalf("precheck --fix: exit %d\n%s", code, out)
	}
	if identity(t, src, "bag") != proto.IdentityFull {
		t.Fatal("precheck --fix passed, bag has no replica identity")
	}

	// A new keyless table: task create --fix sets its identity, then
	// creates the task.
	testenv.MustExec(t, src, `CREATE TABLE late (v text, n int); INSERT INTO late SELECT 'l' || g, g FROM generate_series(1, 50) g`)
	out, code = runSluice(t, proc, "task", "create", "--fix", "-f", spec)
	if code != 0 || !strings.Contains(out, "fixed: ALTER TABLE public.late REPLICA IDENTITY FULL") || !strings.Contains(out, "task fixer created") {
		t.Fatalf("task create --fix: exit %d\n%s", code, out)
	}
	c := proc.Client()
	waitPhase(t, c, "fixer", proto.PhaseIncremental, 2*time.Minute)
	testenv.MustExec(t, src, `UPDATE late SET n = -n WHERE n <= 10; DELETE FROM late WHERE n > 40;
		UPDATE bag SET v = v || '!' WHERE n % 7 = 0; DELETE FROM bag WHERE n % 5 = 0; DELETE FROM heap WHERE n % 3 = 0`)
	stop()
	waitEqual(t, p, []string{"public.bag", "public.heap", "public.late", "public.keyed"}, 2*time.Minute)
}

// A table created in a schema a task with DDL sync takes whole, without a
// primary key, takes its UPDATE and DELETE at the source right after its
// CREATE (the DDL capture gives it REPLICA IDENTITY FULL in the creating
// transaction), and syncs. So does a new partition of a keyless
// partitioned table of the task (an identity does not pass down).
func TestDDLNewKeylessTableTakesUpdates(t *testing.T) {
	p := newPair(t)
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE keyed (id int PRIMARY KEY, v text); INSERT INTO keyed VALUES (1, 'a');
		CREATE TABLE events (at int, v text) PARTITION BY RANGE (at);
		CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (100);
		ALTER TABLE events REPLICA IDENTITY FULL; ALTER TABLE events_1 REPLICA IDENTITY FULL; INSERT INTO events VALUES (1, 'e')`)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	c := proc.Client()
	createTask(t, c, append(taskYAML("newbag", p, ""), []byte("sync: { ddl: true }\n")...))
	waitPhase(t, c, "newbag", proto.PhaseIncremental, 2*time.Minute)

	testenv.MustExec(t, src, `CREATE TABLE newbag (v text, n int)`)
	testenv.MustExec(t, src, `INSERT INTO newbag SELECT 'n' || g, g FROM generate_series(1, 100) g;
		UPDATE newbag SET v = 'updated' WHERE n <= 10;
		DELETE FROM newbag WHERE n > 90;
		INSERT INTO newbag VALUES ('twin', 0), ('twin', 0);
		DELETE FROM newbag WHERE ctid = (SELECT min(ctid) FROM newbag WHERE v = 'twin')`)
	if identity(t, src, "newbag") != proto.IdentityFull {
		t.Fatalf("new keyless table's identity %c, want f", identity(t, src, "newbag"))
	}
	testenv.MustExec(t, src, `CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (100) TO (200)`)
	testenv.MustExec(t, src, `INSERT INTO events SELECT g, 'e' FROM generate_series(100, 150) g;
		UPDATE events SET v = 'updated' WHERE at BETWEEN 100 AND 110; DELETE FROM events WHERE at > 140`)
	testenv.MustExec(t, src, `INSERT INTO keyed VALUES (2, 'b')`)
	waitEqual(t, p, []string{"public.newbag", "public.events", "public.keyed"}, 2*time.Minute)
}

// runSluice runs the sluice CLI against proc (its client config) and
// returns its output and exit code, bounded by the CLI's own timeout.
func runSluice(t *testing.T, proc *sluicetest.Process, args ...string) (string, int) {
	t.Helper()
	out, err := runCLIBinary(t, proc.ConfigHome, append(args, "--server", proc.URL, "--timeout", "2m")...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	}
	t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	return "", 0
}

// identity is a source table's relreplident.
func identity(t *testing.T, conn *pgx.Conn, table string) byte {
	t.Helper()
	var ident byte
	if err := conn.QueryRow(context.Background(), `SELECT relreplident FROM pg_class WHERE oid = $1::regclass`, table).Scan(&ident); err != nil {
		t.Fatal(err)
	}
	return ident
}

func count(t *testing.T, conn *pgx.Conn, table string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
