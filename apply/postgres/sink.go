// Package postgres is the PostgreSQL destination: schema creation, full
// sync loading with COPY, and exactly-once incremental apply with
// set-based statements, the applied positions stored in the destination
// in the same transaction as the data.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Compile-time checks that the sink keeps the contract.
var (
	_ apply.TaskSink     = (*Sink)(nil)
	_ apply.DDLApplier   = (*Sink)(nil)
	_ apply.TableRenamer = (*Sink)(nil)
)

// Options configure a sink.
type Options struct {
	DSN string
	// MaxConns bounds the sink's sessions (default 4).
	MaxConns int32
	// Shards is how many sessions write one table's changes at once
	// (default 2). It is part of the stored positions: keep it the same
	// for the life of a task.
	Shards int
	// Application names the sessions in pg_stat_activity.
	Application string
	Logger      *slog.Logger
	// TwoWay makes the sink the apply of one direction of a two-way task
	// (origin.go, conflict.go); nil for a one-way task.
	TwoWay *TwoWay
	// Schema are the task's choices for schema sync (nil: the defaults).
	Schema *SchemaOptions
	// Dialect is the server's, for a PostgreSQL-family server that is not
	// PostgreSQL itself (dialect.go); nil for PostgreSQL.
	Dialect *Dialect
}

// DefaultShards is the number of sessions applying one table at once.
const DefaultShards = 2

// Sink writes to one PostgreSQL database.
type Sink struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	shards int
	// tw is set for one direction of a two-way task.
	tw     *twoWay
	schema SchemaOptions
	// dialect is the server's (nil: PostgreSQL), as detected at Open.
	dialect *Dialect
	// replicaMode: every session could set session_replication_role =
	// replica, so foreign-key checks do not run on replicated rows.
	replicaMode atomic.Bool

	mu    sync.Mutex
	metas map[string]*tableMeta
	// positions are the committed positions per table and shard.
	positions map[string][]proto.Position
}

// Open connects (the ctx bounds the opening only), checks the database
// answers, and creates Sluice's offset table if needed.
func Open(ctx context.Context, opts Options) (*Sink, error) {
	if opts.DSN == "" {
		return nil, errors.New("postgres sink: DSN is required")
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	if opts.Shards <= 0 {
		opts.Shards = DefaultShards
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Application == "" {
		opts.Application = "sluice apply"
	}
	cfg, err := pgconfig.ParsePool(opts.DSN, opts.Application)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = opts.MaxConns
	s := &Sink{logger: opts.Logger, shards: opts.Shards, metas: map[string]*tableMeta{}, positions: map[string][]proto.Position{}}
	if opts.Schema != nil {
		s.schema = *opts.Schema
	}
	s.schema.Logger = opts.Logger
	s.dialect = opts.Dialect.clone()
	s.schema.Dialect = s.dialect
	if opts.TwoWay != nil {
		if s.tw, err = newTwoWay(opts.TwoWay); err != nil {
			return nil, err
		}
	}
	var warnOnce sync.Once
	// Like PostgreSQL's own apply worker: replica mode keeps user triggers
	// and foreign-key checks from firing on replicated rows, whose order
	// across tables need not match the source's. It needs superuser (or
	// GRANT SET); without it writes still work, with triggers active.
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		// Apply joins a batch's keys, as arrays, to the table: a nested
		// loop over the key index touches only the batch's rows, where a
		// hash or merge join would scan the whole table for every batch.
		if _, err := conn.Exec(ctx, "SET enable_hashjoin = off; SET enable_mergejoin = off"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
			s.replicaMode.Store(false)
			warnOnce.Do(func() {
				s.logger.Warn("destination: cannot set session_replication_role=replica; triggers and rules Sluice creates are held, its foreign keys deferrable, and batches end at source transactions' ends", "err", err)
			})
		}
		return nil
	}
	s.replicaMode.Store(true)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.pool = pool
	if err := s.dialect.detect(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.ensureOffsetTable(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the sessions.
func (s *Sink) Close(ctx context.Context) error {
	s.pool.Close()
	return nil
}

// Pool exposes the sessions to schema sync and tests.
func (s *Sink) Pool() *pgxpool.Pool { return s.pool }

// ApplyPreData creates extensions, schemas, types, sequences and tables.
func (s *Sink) ApplyPreData(ctx context.Context, sc *proto.Schema) error {
	sc, err := s.dialect.schema(sc)
	if err != nil {
		return err
	}
	return s.withConn(ctx, func(c *pgx.Conn) error { return ApplyPreData(ctx, c, sc, s.schemaOptions()) })
}

// ApplyPostData creates secondary indexes and foreign keys.
func (s *Sink) ApplyPostData(ctx context.Context, sc *proto.Schema) error {
	sc, err := s.dialect.schema(sc)
	if err != nil {
		return err
	}
	return s.withConn(ctx, func(c *pgx.Conn) error { return ApplyPostData(ctx, c, sc, s.schemaOptions()) })
}

// schemaOptions are the task's schema choices, and whether the sessions
// could take replica mode (triggers are held otherwise).
func (s *Sink) schemaOptions() *SchemaOptions {
	o := s.schema
	o.NoReplicaMode = !s.replicaMode.Load()
	return &o
}

// SyncSequences sets sequences to the source's values.
func (s *Sink) SyncSequences(ctx context.Context, sc *proto.Schema) error {
	sc, err := s.dialect.schema(sc)
	if err != nil {
		return err
	}
	return s.withConn(ctx, func(c *pgx.Conn) error { return SyncSequences(ctx, c, sc) })
}

// ExistingTables returns which tables exist at the destination.
func (s *Sink) ExistingTables(ctx context.Context, tables []proto.TableID) ([]proto.TableID, error) {
	var out []proto.TableID
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		var err error
		out, err = ExistingTables(ctx, c, tables)
		return err
	})
	return out, err
}

func (s *Sink) withConn(ctx context.Context, f func(*pgx.Conn) error) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c.Conn())
}

// forgetTable drops cached metadata after a failure that may come from a
// schema change at the destination.
func (s *Sink) forgetTable(t proto.TableID) {
	s.mu.Lock()
	delete(s.metas, t.Key())
	s.mu.Unlock()
}

func isCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}

func tableName(t proto.TableID) string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func wrapTable(t proto.TableID, what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", what, t, err)
}
