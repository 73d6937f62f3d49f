package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// DDL operations can be chosen: with only add_column and create_table,
// a dropped column stays at the destination (its rows then carry no
// value for it) and an index is not created; the rows still arrive.
func TestDDLOperationSelection(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text, old text);
		INSERT INTO items SELECT g, 'v', 'o' FROM generate_series(1, 100) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, append(taskYAML("ddlsel", p, ""), []byte("sync: { ddl: true, ddl_operations: [add_column, create_table] }\n")...))
	waitPhase(t, c, "ddlsel", proto.PhaseIncremental, time.Minute)
	testenv.MustExec(t, src, `
		ALTER TABLE items DROP COLUMN old;
		CREATE INDEX items_v ON items (v);
		ALTER TABLE items ADD COLUMN added int DEFAULT 1;
		INSERT INTO items VALUES (101, 'new', 2);
		UPDATE items SET v = 'u' WHERE id <= 10`)
	waitSame(t, p, "(SELECT id, v, NULL::text AS old, added FROM public.items WHERE id > 100 UNION ALL SELECT id, v, 'o', added FROM public.items WHERE id <= 100)", "public.items", time.Minute)
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var idx bool
	if err := dst.QueryRow(ctx, `SELECT to_regclass('public.items_v') IS NOT NULL`).Scan(&idx); err != nil || idx {
		t.Fatalf("index created though create_index is not selected: %v %v", idx, err)
	}
	// A selection that names an unknown operation is refused up front.
	_, err := c.CreateTask(ctx, append(taskYAML("ddlbad", p, ""), []byte("sync: { ddl: true, ddl_operations: [alter_everything] }\n")...))
	if err == nil || !strings.Contains(err.Error(), "sync.ddl_operations") {
		t.Fatalf("unknown DDL operation: %v", err)
	}
}

// startWriter runs stmt(0), stmt(1), ... up to n statements at the
// source, pausing between them, until the returned stop is called; stop
// waits for it and fails the test if a statement failed.
func startWriter(t *testing.T, dsn string, n int, pause time.Duration, stmt func(i int) string) (stop func()) {
	t.Helper()
	w := testenv.Conn(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			if _, err := w.Exec(context.Background(), stmt(i)); err != nil {
				done <- err
				return
			}
			time.Sleep(pause)
		}
		done <- nil
	}()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
}
