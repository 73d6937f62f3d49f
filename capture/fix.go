package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// CheckReplicaIdentity is the precheck's check of the tables' replica
// identity: the one whose fix `--fix` runs.
const CheckReplicaIdentity = "source.replica_identity"

// IdentityFixStatement is the statement that gives a table without a key
// a replica identity; name is the table's quoted name.
func IdentityFixStatement(name string) string {
	return "ALTER TABLE " + name + " REPLICA IDENTITY FULL"
}

// IdentityFixer sets REPLICA IDENTITY FULL on tables at the source for
// `sluice precheck --fix`. The ALTER TABLE needs an ACCESS EXCLUSIVE lock:
// waiting for it behind a long transaction would queue every
// application's write on the table behind the ALTER. So each attempt
// waits at most LockTimeout for the lock, and gives up after Attempts
// (with Backoff doubling in between) or at Budget for all tables: the
// application is never blocked longer than LockTimeout at a time.
type IdentityFixer struct {
	LockTimeout time.Duration // per attempt; default 2s
	Attempts    int           // per table; default 3
	Backoff     time.Duration // before the second attempt, doubling; default 500ms
	Budget      time.Duration // for every table together; default 30s
	Logger      *slog.Logger
}

// IdentityFix is what the fixer did to one table: Err is nil when the
// statement ran.
type IdentityFix struct {
	Table     string // quoted name
	Statement string
	Err       error
}

func (f IdentityFixer) withDefaults() IdentityFixer {
	if f.LockTimeout <= 0 {
		f.LockTimeout = 2 * time.Second
	}
	if f.Attempts <= 0 {
		f.Attempts = 3
	}
	if f.Backoff <= 0 {
		f.Backoff = 500 * time.Millisecond
	}
	if f.Budget <= 0 {
		f.Budget = 30 * time.Second
	}
	if f.Logger == nil {
		f.Logger = slog.New(slog.DiscardHandler)
	}
	return f
}

// FixSource connects to the spec's source and fixes tables (quoted names,
// as the precheck lists them in SourceFacts.NoIdentity).
func (f IdentityFixer) FixSource(ctx context.Context, spec *proto.TaskSpec, tables []string) []IdentityFix {
	conn, err := pgconfig.Connect(ctx, spec.Source.ConnDSN(), "sluice precheck --fix")
	if err != nil {
		msg, _ := pgconfig.ConnectProblem("source", err)
		out := make([]IdentityFix, len(tables))
		for i, t := range tables {
			out[i] = IdentityFix{Table: t, Statement: IdentityFixStatement(t), Err: errors.New("cannot connect to the source: " + msg)}
		}
		return out
	}
	defer conn.Close(context.Background())
	return f.Fix(ctx, conn, tables)
}

// Fix runs IdentityFixStatement for each table, one transaction each (a
// table that cannot be fixed leaves the others fixed), and logs each.
func (f IdentityFixer) Fix(ctx context.Context, conn *pgx.Conn, tables []string) []IdentityFix {
	f = f.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, f.Budget)
	defer cancel()
	out := make([]IdentityFix, 0, len(tables))
	for _, t := range tables {
		fix := IdentityFix{Table: t, Statement: IdentityFixStatement(t)}
		fix.Err = f.fixOne(ctx, conn, fix.Statement)
		if fix.Err != nil {
			f.Logger.Warn("could not set the replica identity", "table", t, "statement", fix.Statement, "err", fix.Err)
		} else {
			f.Logger.Info("set the replica identity (precheck --fix)", "table", t, "statement", fix.Statement)
		}
		out = append(out, fix)
	}
	return out
}

// fixOne tries stmt up to Attempts times, each waiting at most
// LockTimeout for the table's lock.
func (f IdentityFixer) fixOne(ctx context.Context, conn *pgx.Conn, stmt string) error {
	backoff := f.Backoff
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// SET LOCAL: the connection's own setting stays as it was.
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", f.LockTimeout.Milliseconds())); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, stmt)
			return err
		})
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("gave up: the time bound for all fixes (%s) ran out", f.Budget)
		case !lockTimedOut(err):
			return err
		case attempt == f.Attempts:
			return fmt.Errorf("lock timeout: another session holds a lock on the table; gave up after %d attempts waiting %s each", attempt, f.LockTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: the time bound for all fixes (%s) ran out", f.Budget)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// lockTimedOut is PostgreSQL's lock_not_available, which lock_timeout
// raises.
func lockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
