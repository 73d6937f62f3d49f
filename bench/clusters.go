package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
)

// clusterSettings are the postgresql.conf lines both clusters get on top
// of testenv's (listen on 127.0.0.1, wal_level=logical, shared_buffers
// 128MB). None weakens durability: fsync, full_page_writes and
// synchronous_commit keep their defaults (testenv's Durable option).
// max_wal_size is raised only so a checkpoint is not forced by WAL volume
// in the middle of a measured run (every run starts right after an
// explicit CHECKPOINT instead). max_locks_per_transaction is raised for
// the schema/ scenarios (scenarios_schema.go): a transaction writing
// 5,000 tables locks each table and its primary key index, at the source
// and in native's apply worker, and creating or reading 20,000 tables in
// one transaction locks four relations each (table, key index, TOAST
// table and index); the shared lock table holds max_locks_per_transaction
// times max_connections plus the background processes (132 here) locks,
// about 8,400 at the default 64. It costs shared memory only (the lock
// tables take about 130 MB of each cluster's 194 MB), no speed.
var clusterSettings = []string{
	"max_wal_size = '8GB'",
	"checkpoint_timeout = '30min'",
	"max_locks_per_transaction = 1024",
}

// startClusters starts the source and destination clusters, with extra
// postgresql.conf lines on top of clusterSettings.
func startClusters(extra ...string) (src, dst *testenv.Postgres, err error) {
	opts := testenv.PostgresOptions{Durable: true, Settings: append(append([]string(nil), clusterSettings...), extra...)}
	if src, err = testenv.StartPostgres(opts); err != nil {
		return nil, nil, fmt.Errorf("start source cluster: %w", err)
	}
	if dst, err = testenv.StartPostgres(opts); err != nil {
		src.Destroy()
		return nil, nil, fmt.Errorf("start destination cluster: %w", err)
	}
	return src, dst, nil
}

// releaseClusters destroys clusters, or with --keep stops them and prints
// how to start them again (their files stay).
func releaseClusters(keep bool, pgs ...*testenv.Postgres) {
	for _, pg := range pgs {
		if !keep {
			pg.Destroy()
			continue
		}
		start := fmt.Sprintf("%s/postgres -D %s/data", pg.Bin, pg.Dir)
		if os.Geteuid() == 0 {
			start = "runuser -u postgres -- " + start
		}
		logf("kept cluster %s, port %d (start it again with: %s)", pg.Dir, pg.Port, start)
		pg.Stop()
	}
}

// connect opens a session; bench sessions keep the server's defaults.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", dsn, err)
	}
	return conn, nil
}

// createDatabase (re)creates an empty database.
func createDatabase(ctx context.Context, pg *testenv.Postgres, name string) error {
	if err := dropDatabase(ctx, pg, name); err != nil {
		return err
	}
	return pg.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// dropDatabase removes a database, with the replication slots a failed
// run may have left in it (they would block the drop).
func dropDatabase(ctx context.Context, pg *testenv.Postgres, name string) error {
	conn, err := connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = poll(ctx, time.Minute, 100*time.Millisecond, "slots of database "+name+" dropped", func() (bool, error) {
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name); err != nil {
			return false, err
		}
		var left int
		err := conn.QueryRow(ctx, `SELECT count(pg_drop_replication_slot(slot_name)) FILTER (WHERE NOT active), count(*) FILTER (WHERE active) FROM pg_replication_slots WHERE database = $1`, name).Scan(new(int), &left)
		return left == 0, err
	})
	if err != nil {
		return err
	}
	return execSQL(ctx, conn, 5*time.Minute, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// createBenchDatabases (re)creates each database on both clusters with
// the bench table in it.
func (b *bench) createBenchDatabases(ctx context.Context, dbs ...string) error {
	for _, db := range dbs {
		for _, pg := range []*testenv.Postgres{b.src, b.dst} {
			if err := createDatabase(ctx, pg, db); err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := pg.Exec(cctx, db, benchDDL)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", firstLine(benchDDL), err)
			}
		}
	}
	return nil
}

// exec runs statements on a connection with a time bound.
func execSQL(ctx context.Context, conn *pgx.Conn, timeout time.Duration, sql string, args ...any) error {
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := conn.Exec(ectx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", firstLine(sql), err)
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// checkpoint flushes the dirty buffers of both clusters, so that no
// measured run pays for the writes of the setup before it.
func checkpoint(ctx context.Context, pgs ...*testenv.Postgres) error {
	for _, pg := range pgs {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err := pg.Exec(cctx, "postgres", "CHECKPOINT")
		cancel()
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return nil
}

// copyPipe streams `COPY (query) TO STDOUT (FORMAT binary)` from src into
// `COPY target FROM STDIN (FORMAT binary)` at dst through an io.Pipe: the
// PostgreSQL-to-PostgreSQL copy that full sync is measured against, and
// how the destination is seeded. It returns the rows copied.
func copyPipe(ctx context.Context, src, dst *pgx.Conn, query, target string) (int64, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := src.PgConn().CopyTo(ctx, pw, "COPY ("+query+") TO STDOUT (FORMAT binary)")
		pw.CloseWithError(err) // nil closes with io.EOF
		done <- err
	}()
	tag, err := dst.PgConn().CopyFrom(ctx, pr, "COPY "+target+" FROM STDIN (FORMAT binary)")
	pr.CloseWithError(io.ErrClosedPipe) // unblocks the reader side if COPY FROM failed early
	if rerr := <-done; rerr != nil && err == nil {
		err = fmt.Errorf("COPY TO: %w", rerr)
	}
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", target, err)
	}
	return tag.RowsAffected(), nil
}

// compareTables fails loudly when a table's content differs between the
// two sides (row count and an order-independent hash of every row).
func compareTables(ctx context.Context, src, dst *pgx.Conn, tables ...string) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if err := testenv.CompareTables(cctx, src, dst, tables); err != nil {
		return fmt.Errorf("CONTENT MISMATCH: %w", err)
	}
	return nil
}

// sqlLiteral quotes a string for SQL.
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pairEnv is a scenario's sessions: Sluice's source and destination
// databases, and native logical replication between its own pair.
type pairEnv struct {
	db       string    // Sluice's database, on both clusters
	src, dst *pgx.Conn // sessions in it
	nat      *native
}

// openPairEnv connects to Sluice's pair (sluiceDB on both clusters) and
// sets up native replication of tables between nativeDB on both.
func (b *bench) openPairEnv(ctx context.Context, sluiceDB, nativeDB, subscription string, tables []string) (*pairEnv, error) {
	env := &pairEnv{db: sluiceDB}
	var err error
	if env.src, err = connect(ctx, b.src.DSN(sluiceDB)); err != nil {
		return nil, err
	}
	if env.dst, err = connect(ctx, b.dst.DSN(sluiceDB)); err != nil {
		env.Close()
		return nil, err
	}
	if env.nat, err = newNative(ctx, b.src, b.dst, nativeDB, nativeDB, subscription, tables); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// Close ends the sessions (and native's subscription).
func (e *pairEnv) Close() {
	if e.nat != nil {
		e.nat.Close(context.Background())
	}
	for _, c := range []*pgx.Conn{e.src, e.dst} {
		if c != nil {
			c.Close(context.Background())
		}
	}
}
