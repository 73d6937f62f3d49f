package postgres_test

import (
	"context"
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// A full sync builds a table's primary key and unique constraints after
// its load: BeginTable drops them, FinishTable builds them again with the
// same definitions, and a task deleted in the middle of a load gets them
// back from Release. Keys something else leans on stay where they are,
// and a load that breaks a key fails FinishTable without storing the
// table's position.
func TestKeysBuiltAfterTheLoad(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `
		CREATE TABLE loaded (id bigint PRIMARY KEY, code text NOT NULL, v text,
			CONSTRAINT loaded_code UNIQUE (code) INCLUDE (v) WITH (fillfactor = 70) DEFERRABLE INITIALLY DEFERRED);
		CREATE TABLE referenced (id int PRIMARY KEY);
		CREATE TABLE referring (id int PRIMARY KEY, r int REFERENCES referenced);
		CREATE TABLE commented (id int PRIMARY KEY);
		COMMENT ON CONSTRAINT commented_pkey ON commented IS 'kept';
		CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE kept (id int PRIMARY KEY);
		CREATE TABLE broken (id int PRIMARY KEY);
		CREATE TABLE abandoned (id int CONSTRAINT abandoned_key PRIMARY KEY);`)
	before := constraintDefs(t, conn)

	sink, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)
	const task = "keys"
	tb := func(name string) proto.TableID { return proto.TableID{Schema: "public", Name: name} }
	for _, name := range []string{"loaded", "referenced", "referring", "commented", "parted", "broken", "abandoned"} {
		if err := sink.BeginTable(ctx, task, tb(name), 1, false); err != nil {
			t.Fatalf("begin %s: %v", name, err)
		}
	}
	if err := sink.BeginTable(ctx, task, tb("kept"), 1, true); err != nil {
		t.Fatal(err)
	}
	during := constraintDefs(t, conn)
	for _, gone := range []string{"loaded.loaded_pkey", "loaded.loaded_code", "referring.referring_pkey", "broken.broken_pkey", "abandoned.abandoned_key"} {
		if _, ok := during[gone]; ok {
			t.Errorf("%s is still there during the load", gone)
		}
	}
	for _, stays := range []string{"referenced.referenced_pkey", "commented.commented_pkey", "parted.parted_pkey", "kept.kept_pkey", "referring.referring_r_fkey"} {
		if during[stays] != before[stays] {
			t.Errorf("%s during the load: %q, want it kept as %q", stays, during[stays], before[stays])
		}
	}

	load := func(name string, cols []string, lines ...string) {
		t.Helper()
		c := apply.ChunkLoad{Task: task, Plan: 1, Table: tb(name), Columns: cols, Format: proto.CopyText}
		if _, err := sink.CopyChunk(ctx, c, func(w io.Writer) (int64, error) {
			_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
			return int64(len(lines)), err
		}); err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
	}
	load("loaded", []string{"id", "code", "v"}, "1\ta\tx", "2\tb\ty")
	load("referring", []string{"id", "r"}, `1	\N`)
	load("broken", []string{"id"}, "7", "7") // two rows of one key: the key cannot be built
	at := proto.Position{LSN: 0x1000}
	for _, name := range []string{"loaded", "referenced", "referring", "commented", "parted"} {
		if err := sink.FinishTable(ctx, task, tb(name), 1, at, 1); err != nil {
			t.Fatalf("finish %s: %v", name, err)
		}
	}
	err = sink.FinishTable(ctx, task, tb("broken"), 1, at, 1)
	if err == nil || !strings.Contains(err.Error(), "broken_pkey") || !strings.Contains(err.Error(), "after the load") {
		t.Fatalf("finishing a table whose rows break its key: %v, want an error naming the key", err)
	}
	var finished bool
	if err := conn.QueryRow(ctx, `SELECT finished FROM sluice.copy_tables WHERE task = $1 AND table_name = 'broken'`, task).Scan(&finished); err != nil || finished {
		t.Fatalf("broken's copy after a failed finish: finished %t, %v (want it unfinished)", finished, err)
	}
	positions, err := sink.Offsets(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if positions[tb("loaded").Key()] != at || positions[tb("broken").Key()] != (proto.Position{}) {
		t.Fatalf("positions after finishing: %v (want loaded at %v, broken none)", positions, at)
	}
	testenv.MustExec(t, conn, `DELETE FROM broken`)

	// Deleting the task gives the keys of the loads it left back.
	released, err := sink.Release(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if len(released) != 2 {
		t.Errorf("release ran %q, want broken's and abandoned's keys built", released)
	}
	if after := constraintDefs(t, conn); !maps.Equal(after, before) {
		t.Fatalf("constraints after the loads and the release:\n%v\nwant the ones before:\n%v", after, before)
	}
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sluice.deferred_keys`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("deferred keys left: %d, %v", left, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO loaded VALUES (3, 'a', 'z')`); err == nil {
		t.Fatal("the rebuilt unique constraint lets a second code 'a' in")
	}
}

// constraintDefs is every user table's constraints, "table.name" to
// definition.
func constraintDefs(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT c.conrelid::regclass::text || '.' || c.conname, pg_get_constraintdef(c.oid)
		FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
		WHERE n.nspname = 'public' AND NOT r.relispartition`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
