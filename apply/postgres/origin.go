package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/proto"
)

// TwoWay configures the sink as the apply of one direction of a two-way
// task (proto.TwoWaySpec). Its transactions carry a replication origin,
// which the other direction's capture recognises and leaves out (else
// every change would travel back where it came from), and a change that
// meets a different row at the destination is resolved by Policy and
// logged in sluice.conflicts (conflict.go).
type TwoWay struct {
	// Task is the two-way task's name as the user knows it (the forward
	// direction's, proto.TaskSpec.ForwardName): sluice.conflicts and
	// messages name it.
	Task string
	// Direction is "forward" or "reverse" (proto.TaskSpec.Direction).
	Direction string
	// Policy is two_way.conflicts (one of proto.ConflictPolicies; empty
	// is the default, task_failed).
	Policy string
	// Origin is the replication origin this direction writes under
	// (proto.TaskSpec.ApplyOrigin). Sessions that write at the same time
	// take Origin, Origin+":1", ... (proto.OriginOf matches them all).
	Origin string
}

// policy is a two-way conflict policy (two_way.conflicts).
type policy uint8

const (
	policyTaskFailed policy = iota
	policyIgnore
	policyOverwrite
	policyLastWriterWins
)

func (p policy) String() string {
	switch p {
	case policyTaskFailed:
		return proto.ConflictTaskFailed
	case policyIgnore:
		return proto.ConflictIgnore
	case policyOverwrite:
		return proto.ConflictOverwrite
	case policyLastWriterWins:
		return proto.ConflictLastWriterWins
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

func parsePolicy(s string) (policy, error) {
	switch s {
	case "", proto.ConflictTaskFailed:
		return policyTaskFailed, nil
	case proto.ConflictIgnore:
		return policyIgnore, nil
	case proto.ConflictOverwrite:
		return policyOverwrite, nil
	case proto.ConflictLastWriterWins:
		return policyLastWriterWins, nil
	}
	return 0, fmt.Errorf("unknown two_way.conflicts policy %q", s)
}

// twoWay is a two-way sink's settings and state.
type twoWay struct {
	TwoWay
	policy policy
	// forward: this is the forward direction, whose version wins a tie of
	// commit times under last_writer_wins, so both sides pick the same.
	forward bool
	// next is the origin of the pool tried first: the one this sink bound
	// last, so that each sink keeps to one and they seldom collide.
	next atomic.Int32
	// commitTimesOn: track_commit_timestamp was found on (LWW needs it).
	commitTimesOn atomic.Bool
}

func newTwoWay(o *TwoWay) (*twoWay, error) {
	p, err := parsePolicy(o.Policy)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Task == "":
		return nil, errors.New("postgres sink: two-way needs the task's name")
	case o.Origin == "":
		return nil, errors.New("postgres sink: two-way needs a replication origin")
	case o.Direction != "forward" && o.Direction != "reverse":
		return nil, fmt.Errorf("postgres sink: two-way direction must be forward or reverse, not %q", o.Direction)
	}
	return &twoWay{TwoWay: *o, policy: p, forward: o.Direction == "forward"}, nil
}

// originPoolSize is how many origins one direction writes under at most:
// PostgreSQL 15 lets one session at a time use an origin, and a
// direction's apply groups (on several nodes) write at the same time.
const originPoolSize = 16

// originName is the pool's i-th origin.
func (tw *twoWay) originName(i int) string {
	if i == 0 {
		return tw.Origin
	}
	return tw.Origin + ":" + strconv.Itoa(i)
}

// Replication origin (SQL state) errors.
const (
	codeUndefinedObject = "42704" // the origin does not exist
	codeDuplicateObject = "42710" // created meanwhile
	codeUniqueViolation = "23505"
	codeObjectInUse     = "55006" // another session uses the origin
)

// bindOrigin sets up one of the direction's origins for conn's session,
// before its transaction begins (a refusal would abort it). unbind
// resets the session when the transaction is over, before the
// connection returns to the pool.
func (s *Sink) bindOrigin(ctx context.Context, conn *pgxpool.Conn) (unbind func(), err error) {
	start := int(s.tw.next.Load())
	for n := 0; n < originPoolSize; n++ {
		i := (start + n) % originPoolSize
		name := s.tw.originName(i)
		err := setupOrigin(ctx, conn, name)
		if isCode(err, codeObjectInUse) {
			continue
		}
		if err != nil {
			// Should the setup have taken effect all the same (a
			// cancelled call), the session must not keep the origin.
			s.unbindOrigin(conn, name)
			return nil, fmt.Errorf("set up replication origin %s: %w", name, err)
		}
		s.tw.next.Store(int32(i))
		return func() { s.unbindOrigin(conn, name) }, nil
	}
	return nil, fmt.Errorf("all %d replication origins of %s are in use by other sessions: too many sessions apply this direction at once", originPoolSize, s.tw.Origin)
}

// setupOrigin binds name to the session, creating the origin on its
// first use.
func setupOrigin(ctx context.Context, conn *pgxpool.Conn, name string) error {
	const setup = "SELECT pg_catalog.pg_replication_origin_session_setup($1)"
	_, err := conn.Exec(ctx, setup, name)
	if !isCode(err, codeUndefinedObject) {
		return err
	}
	// Another session may create it at the same time: either way it is
	// there after.
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_replication_origin_create($1)", name); err != nil && !isCode(err, codeDuplicateObject, codeUniqueViolation) {
		return err
	}
	_, err = conn.Exec(ctx, setup, name)
	return err
}

// unbindOrigin resets the session's origin, if it has one. A session
// that cannot be reset is closed: still bound, it would write whatever it
// runs next under the origin, and hold the origin from other sessions.
func (s *Sink) unbindOrigin(conn *pgxpool.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const reset = "SELECT pg_catalog.pg_replication_origin_session_reset() WHERE pg_catalog.pg_replication_origin_session_is_setup()"
	if _, err := conn.Exec(ctx, reset); err != nil {
		s.logger.Warn("cannot reset the session's replication origin; closing the session", "origin", name, "err", err)
		conn.Conn().Close(ctx)
	}
}

// xactOrigin marks tx as the replay of source changes up to lsn that
// committed at commitUS (µs since the Unix epoch; 0: unknown, the
// transaction's own time). The transaction then commits with that
// commit time, the one last_writer_wins compares on both sides, and
// advances the origin's progress to lsn.
func xactOrigin(ctx context.Context, tx pgx.Tx, lsn proto.LSN, commitUS int64) error {
	var at *int64
	if commitUS != 0 {
		at = &commitUS
	}
	_, err := tx.Exec(ctx, "SELECT pg_catalog.pg_replication_origin_xact_setup($1::text::pg_lsn, COALESCE("+fromMicros("$2::bigint")+", now()))", lsn.String(), at)
	if err != nil {
		return fmt.Errorf("set the transaction's replication origin: %w", err)
	}
	return nil
}

// fromMicros is the timestamptz of expr, µs since the Unix epoch, exactly
// (both sides count in µs).
func fromMicros(expr string) string {
	return "('epoch'::timestamptz + " + expr + " * interval '1 microsecond')"
}

// withOrigin runs fn on a session bound to one of the direction's
// origins, released unbound.
func (s *Sink) withOrigin(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	unbind, err := s.bindOrigin(ctx, conn)
	if err != nil {
		return err
	}
	defer unbind()
	return fn(conn)
}

// originTx runs fn in a transaction that writes under one of the
// direction's origins, as the replay of source changes up to lsn that
// committed at commitUS, and commits it.
func (s *Sink) originTx(ctx context.Context, lsn proto.LSN, commitUS int64, fn func(context.Context, pgx.Tx, *pgconn.PgConn) error) error {
	return s.withOrigin(ctx, func(conn *pgxpool.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := xactOrigin(ctx, tx, lsn, commitUS); err != nil {
				return err
			}
			return fn(ctx, tx, conn.Conn().PgConn())
		})
	})
}

// beginOwn runs fn in a transaction of the direction's own: under one of
// its origins for a two-way sink (plain for a one-way one). The forward
// direction loads the full sync this way, so that the rows it copies are
// its own at the destination, like those it applies later: under
// last_writer_wins a change the source made while the copy ran is never
// taken for older than the copy's commit there.
func (s *Sink) beginOwn(ctx context.Context, fn func(pgx.Tx) error) error {
	if s.tw == nil {
		return pgx.BeginFunc(ctx, s.pool, fn)
	}
	return s.withOrigin(ctx, func(conn *pgxpool.Conn) error { return pgx.BeginFunc(ctx, conn, fn) })
}

// dropOrigins drops the direction's origins (a deleted task, or one that
// starts over, leaves none behind). One a session still uses (an apply
// of the task's last run that has not stopped yet) stays, with a
// warning: it is dropped the next time.
func (s *Sink) dropOrigins(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT roname FROM pg_catalog.pg_replication_origin WHERE roname = $1 OR starts_with(roname, $1 || ':')`, s.tw.Origin)
	if err != nil {
		return fmt.Errorf("list replication origins: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list replication origins: %w", err)
	}
	for _, name := range names {
		_, err := s.pool.Exec(ctx, "SELECT pg_catalog.pg_replication_origin_drop($1)", name)
		switch {
		case err == nil, isCode(err, codeUndefinedObject):
		case isCode(err, codeObjectInUse):
			s.logger.Warn("replication origin in use by a session; left in place", "origin", name, "err", err)
		default:
			return fmt.Errorf("drop replication origin %s: %w", name, err)
		}
	}
	return nil
}
