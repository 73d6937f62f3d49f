package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/proto"
)

// Pipelined statements. A batch spread over many tables writes a few rows
// into each: one statement or two per table, each a round trip to the
// destination and, on a small machine, a pair of context switches, which
// cost more than the rows themselves. The writer of a plain apply
// transaction therefore queues the statements whose outcome it does not
// need at once (deletes, inserts of a few rows, updates whose row count
// is checked afterwards) and sends them together, in order, in one round
// trip (PostgreSQL's extended protocol pipeline). Anything that needs an
// answer first, or writes by COPY, sends the queue before it.

// smallInsert is the most new rows of one table written by a pipelined
// INSERT ... SELECT FROM unnest; more go by COPY, the faster way per row
// but two round trips each.
const smallInsert = 64

// maxQueued bounds the statements queued before they are sent.
const maxQueued = 512

// errUpdateMissedRows: a pipelined UPDATE found fewer rows than it was
// given (the destination lacks rows the source has). The transaction is
// written again without the pipeline, which inserts those rows right
// after their UPDATE (updateRows).
var errUpdateMissedRows = errors.New("a pipelined update missed rows at the destination")

// queuedStatement is what the writer must know of a queued statement
// once its result is back.
type queuedStatement struct {
	table proto.TableID
	// expect, when not negative, is the number of rows the statement must
	// touch.
	expect int64
}

// queuedError is the error of a queued statement, with its table.
type queuedError struct {
	table proto.TableID
	err   error
}

func (e *queuedError) Error() string { return e.err.Error() }
func (e *queuedError) Unwrap() error { return e.err }

// queue adds a statement with binary array parameters (execArrays) to
// the pipeline.
func (w *writer) queue(ctx context.Context, t proto.TableID, sql string, params [][]byte, oids []uint32, formats []int16, expect int64) error {
	name, err := w.prepared(ctx, sql, oids)
	if err != nil {
		return err
	}
	if w.batch == nil {
		w.batch = &pgconn.Batch{}
	}
	if name != "" {
		w.batch.ExecPrepared(name, params, formats, nil)
	} else {
		w.batch.ExecParams(sql, params, oids, formats, nil)
	}
	w.queued = append(w.queued, queuedStatement{table: t, expect: expect})
	if len(w.queued) >= maxQueued {
		return w.send(ctx)
	}
	return nil
}

// send writes the queued statements and checks their results. Their
// parameters live in w.buf, which is free again after.
func (w *writer) send(ctx context.Context) error {
	if len(w.queued) == 0 {
		return nil
	}
	results, err := w.pg.ExecBatch(ctx, w.batch).ReadAll()
	queued := w.queued
	w.batch, w.queued, w.buf = nil, w.queued[:0], w.buf[:0]
	for i, r := range results {
		if i >= len(queued) {
			break
		}
		if r.Err != nil {
			return &queuedError{table: queued[i].table, err: r.Err}
		}
		if queued[i].expect >= 0 && r.CommandTag.RowsAffected() != queued[i].expect {
			return errUpdateMissedRows
		}
	}
	return err
}

// Prepared statements. Parsing and planning a statement costs the
// destination more than writing a few rows with it, and an apply sends
// the same few statements per table again and again. A statement seen a
// second time on a connection is prepared there (once, a round trip) and
// executed by name from then on. Each connection keeps at most
// maxPrepared (a plan holds some memory in its backend); beyond that,
// statements are sent unprepared. A prepared statement outlives a rolled
// back transaction and follows schema changes (PostgreSQL plans it again).

const (
	maxPrepared = 1000
	// preparedKey names the connection's statements in its CustomData.
	preparedKey = "sluice.prepared"
)

type preparedStatements struct {
	names map[string]string // SQL to statement name
	seen  map[string]bool   // SQL sent once, unprepared
}

// prepared returns the name of sql's prepared statement on the writer's
// connection, preparing it on its second use; "" to send it unprepared.
func (w *writer) prepared(ctx context.Context, sql string, oids []uint32) (string, error) {
	data := w.pg.CustomData()
	ps, _ := data[preparedKey].(*preparedStatements)
	if ps == nil {
		ps = &preparedStatements{names: map[string]string{}, seen: map[string]bool{}}
		data[preparedKey] = ps
	}
	if name, ok := ps.names[sql]; ok {
		return name, nil
	}
	if len(ps.names) >= maxPrepared {
		return "", nil
	}
	if !ps.seen[sql] {
		if len(ps.seen) < 4*maxPrepared {
			ps.seen[sql] = true
		}
		return "", nil
	}
	name := fmt.Sprintf("sluice_apply_%d", len(ps.names))
	if _, err := w.pg.Prepare(ctx, name, sql, oids); err != nil {
		return "", err
	}
	delete(ps.seen, sql)
	ps.names[sql] = name
	return name, nil
}
