// Package pipelinetest is the pipeline-level suite every destination
// runs: a real source PostgreSQL, a Sluice node (in the test process) and
// the destination's server, a task created through the API, and the
// destination read back and compared with the source, value for value, in
// the canonical form of the sink conformance suite (apply/sinktest.Row:
// PostgreSQL's text output, timestamptz in UTC). Where apply/sinktest
// drives a sink directly, this drives the whole pipeline: precheck,
// schema, full sync, capture, apply, DDL, retries.
//
// TestEveryDestination runs it once per registered destination.
package pipelinetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// Target is a destination server tasks write to.
type Target interface {
	// Block is the task YAML's destination block, in flow style
	// ("{type: postgres, dsn: ...}").
	Block() string
	// Read reads back a table as task synced it: one canonical row per
	// row, holding cols; a table it does not hold reads as no rows.
	Read(t *testing.T, task string, table proto.TableID, cols []proto.Column) []sinktest.Row
	// Unavailable is what Read shows for an unchanged TOAST value the
	// destination could not fill ("" when it keeps the value it holds):
	// the suite then syncs its tables under REPLICA IDENTITY FULL, whose
	// old rows carry every value.
	Unavailable() string
	// Stop makes the destination unreachable. Start brings it back with
	// what it held, and reports false when it cannot.
	Stop(t *testing.T)
	Start(t *testing.T) bool
}

// Destination is a destination type under the suite.
type Destination struct {
	Capabilities apply.Capabilities
	// New starts a server of the destination for one test.
	New func(t *testing.T) Target
	// KnownGaps names scenarios the destination fails for a known,
	// documented reason (scenario → the reason): they are skipped, and
	// say so.
	KnownGaps map[string]string
	// Acknowledge are the precheck warnings the destination gives by
	// design (check ids), acknowledged when tasks are created, as a user
	// would.
	Acknowledge []string
}

// Run runs the suite's scenarios, each with a source, a node and a
// destination of its own.
func Run(t *testing.T, d Destination) {
	run := func(name string, f func(*testing.T, Destination)) {
		t.Run(name, func(t *testing.T) {
			if why, ok := d.KnownGaps[name]; ok {
				t.Skip("known gap: " + why)
			}
			f(t, d)
		})
	}
	run("FullAndIncrementalUnderLoad", underLoad)
	run("TypeFamilies", typeFamilies)
	run("FiltersOperationsColumns", selection)
	run("Renames", renames)
	run("AddAndRemoveTables", addTables)
	run("DDL", func(t *testing.T, d Destination) {
		if !d.Capabilities.DDL {
			t.Skip("the destination does not claim DDL")
		}
		ddl(t, d)
	})
	run("DestinationOutage", outage)
}

// env is one scenario's source, node and destination.
type env struct {
	t      *testing.T
	src    *testenv.Postgres
	conn   *pgx.Conn
	c      *coordinator.Client
	target Target
	ack    []string
}

func newEnv(t *testing.T, d Destination, cfg node.Config) *env {
	src := testenv.NewPostgres(t)
	e := &env{t: t, src: src, target: d.New(t), ack: d.Acknowledge}
	e.conn = postgrestest.Conn(t, src.DSN(testenv.DefaultDB))
	n := sluicetest.StartNode(t, cfg)
	e.c = n.Client()
	return e
}

// exec runs SQL at the source.
func (e *env) exec(sql string) {
	e.t.Helper()
	testenv.MustExec(e.t, e.conn, sql)
}

// writer runs stmt(0), stmt(1), ... at the source, a few milliseconds
// apart (at most 20,000 of them, for at most 3 minutes), until the
// returned stop is called; stop fails the test if a statement failed.
func (e *env) writer(stmt func(i int) string) (stop func()) {
	w := testenv.Conn(e.t, e.src.DSN(testenv.DefaultDB))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 20000 && ctx.Err() == nil; i++ {
			if _, err := w.Exec(context.Background(), stmt(i)); err != nil {
				done <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		done <- nil
	}()
	return func() {
		e.t.Helper()
		cancel()
		if err := <-done; err != nil {
			e.t.Fatalf("writer: %v", err)
		}
	}
}

// fullIdentity gives tables REPLICA IDENTITY FULL where the destination
// cannot keep a value an update leaves unchanged (Target.Unavailable).
func (e *env) fullIdentity(tables ...string) {
	e.t.Helper()
	if e.target.Unavailable() == "" {
		return
	}
	for _, tb := range tables {
		e.exec("ALTER TABLE " + tb + " REPLICA IDENTITY FULL")
	}
}

// create creates task name with the YAML sections extra (objects and
// more) after its source and destination.
func (e *env) create(name, extra string) {
	e.t.Helper()
	spec := fmt.Sprintf("name: %s\nsource: { dsn: %q }\ndestination: %s\n%s", name, e.src.DSN(testenv.DefaultDB), e.target.Block(), extra)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.c.CreateTask(ctx, []byte(spec), e.ack...); err != nil {
		e.t.Fatalf("create task: %v\n%s", err, spec)
	}
}

// status polls the task until cond holds (failing on a failed task unless
// cond accepts it).
func (e *env) status(name, what string, timeout time.Duration, cond func(*proto.TaskStatus) bool) *proto.TaskStatus {
	e.t.Helper()
	var st *proto.TaskStatus
	testenv.CheckFor(e.t, timeout, 200*time.Millisecond, func() error {
		var err error
		if st, err = e.c.GetTask(context.Background(), name); err != nil {
			return err
		}
		if cond(st) {
			return nil
		}
		if st.State == proto.StateFailed {
			e.t.Fatalf("task %s failed: %+v", name, st.LastError)
		}
		return fmt.Errorf("waiting for %s: phase %s, state %s, last error %+v", what, st.Phase, st.State, st.LastError)
	})
	return st
}

func (e *env) incremental(name string) *proto.TaskStatus {
	e.t.Helper()
	return e.status(name, "incremental", 3*time.Minute, func(st *proto.TaskStatus) bool {
		return st.Phase == proto.PhaseIncremental && st.State == proto.StateRunning
	})
}

// waitEqual polls until the destination holds what the source does, row
// for row, in every table.
func (e *env) waitEqual(task string, tables []string, timeout time.Duration) {
	e.t.Helper()
	testenv.CheckFor(e.t, timeout, time.Second, func() error {
		for _, name := range tables {
			if err := e.compare(task, name); err != nil {
				return err
			}
		}
		return nil
	})
}

// compare reads a table on both sides: equal multisets of rows.
func (e *env) compare(task, name string) error {
	e.t.Helper()
	tb := tableID(name)
	cols := e.columns(tb)
	return e.same(name, postgrestest.ReadTable(e.t, e.conn, tb, cols), e.target.Read(e.t, task, tb, cols))
}

// waitQuery polls until the destination's table holds the rows of a
// query at the source. columns name the table's columns as the
// destination has them, in the query's order, "dest=source" where the
// source's table (like, whose types they have) calls one otherwise.
func (e *env) waitQuery(task, query, table, like string, columns []string, timeout time.Duration) {
	e.t.Helper()
	types := map[string]uint32{}
	for _, c := range e.columns(tableID(like)) {
		types[c.Name] = c.TypeOID
	}
	cols := make([]proto.Column, len(columns))
	names := make([]string, len(columns))
	for i, spec := range columns {
		dest, src, renamed := strings.Cut(spec, "=")
		if !renamed {
			src = dest
		}
		cols[i], names[i] = proto.Column{Name: dest, TypeOID: types[src]}, dest
	}
	testenv.CheckFor(e.t, timeout, time.Second, func() error {
		return e.same(table, postgrestest.ReadQuery(e.t, e.conn, query, names), e.target.Read(e.t, task, tableID(table), cols))
	})
}

// same compares two reads of a table as multisets of rows.
func (e *env) same(name string, source, dest []sinktest.Row) error {
	want, got := rowTexts(source), rowTexts(dest)
	if slices.Equal(got, want) {
		return nil
	}
	return fmt.Errorf("%s: %d rows at the destination, %d at the source%s", name, len(got), len(want), firstDifference(got, want))
}

// columns are a source table's replicated columns (not generated ones),
// with their types.
func (e *env) columns(tb proto.TableID) []proto.Column {
	e.t.Helper()
	rows, err := e.conn.Query(context.Background(), `SELECT attname, atttypid FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, tb.Schema+"."+tb.Name)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var cols []proto.Column
	for rows.Next() {
		var c proto.Column
		if err := rows.Scan(&c.Name, &c.TypeOID); err != nil {
			e.t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return cols
}

func tableID(name string) proto.TableID {
	schema, table, ok := strings.Cut(name, ".")
	if !ok {
		return proto.TableID{Schema: "public", Name: name}
	}
	return proto.TableID{Schema: schema, Name: table}
}

// rowTexts writes each row as its "col=value" pairs (long values cut,
// a hash of the whole row after them), sorted.
func rowTexts(rows []sinktest.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(r)) {
			v := r[k]
			if len(v) > 64 {
				v = fmt.Sprintf("%s…(%d bytes)", v[:64], len(v))
			}
			fmt.Fprintf(&b, "%s=%q ", k, v)
		}
		out[i] = b.String() + fmt.Sprintf("#%x", hash(r))
	}
	slices.Sort(out)
	return out
}

// hash tells rows apart whose shortened texts are alike.
func hash(r sinktest.Row) uint64 {
	h := uint64(14695981039346656037)
	for _, k := range slices.Sorted(maps.Keys(r)) {
		for _, s := range []string{k, "\x00", r[k], "\x01"} {
			for i := 0; i < len(s); i++ {
				h ^= uint64(s[i])
				h *= 1099511628211
			}
		}
	}
	return h
}

// firstDifference names a row one side has and the other lacks.
func firstDifference(got, want []string) string {
	have := map[string]int{}
	for _, g := range got {
		have[g]++
	}
	for _, w := range want {
		if have[w] == 0 {
			return "; the destination lacks: " + w
		}
		have[w]--
	}
	for g, n := range have {
		if n > 0 {
			return "; the destination has too: " + g
		}
	}
	return ""
}
