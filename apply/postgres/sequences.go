package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Sequences in step (apply.SequenceSyncer): the capture unit moves the
// destination's sequences forward during incremental sync, a cutover sets
// them exactly. A sequence's own row (last_value, is_called) is read with
// a SELECT from it, since pg_sequence_last_value hides a value not handed
// out yet; a batch of sequences is one UNION ALL of such SELECTs.

var _ apply.SequenceSyncer = (*Sink)(nil)

// sequenceBatch bounds the sequences of one statement.
const sequenceBatch = 500

// AdvanceSequences moves sequences forward to the given states, never back.
func (s *Sink) AdvanceSequences(ctx context.Context, seqs []proto.SequenceUpdate) ([]proto.TableID, error) {
	var missing []proto.TableID
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		var err error
		missing, err = s.dialect.advanceSequences(ctx, c, seqs) // dialect.go: AdvanceSequences, or Greenplum 6's
		return err
	})
	return missing, err
}

// SetSequences sets sequences to exactly the given states.
func (s *Sink) SetSequences(ctx context.Context, seqs []proto.SequenceUpdate) ([]proto.SequenceResult, error) {
	var out []proto.SequenceResult
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		var err error
		out, err = SetSequences(ctx, c, seqs)
		return err
	})
	return out, err
}

// AdvanceSequences sets each sequence to its state where that is ahead of
// the sequence's own, comparing the values the next nextval would return,
// in the direction of the sequence's increment: two statements per batch
// of sequences (which exist; then read, compare and setval in one), and
// nothing written for a sequence already there or ahead. It returns the
// sequences not found.
func AdvanceSequences(ctx context.Context, conn *pgx.Conn, seqs []proto.SequenceUpdate) ([]proto.TableID, error) {
	return advanceSequencesWith(ctx, conn, seqs, advanceSequencesSQL)
}

// advanceSequencesWith is AdvanceSequences with the statement of a batch
// made by sqlFor (a dialect's).
func advanceSequencesWith(ctx context.Context, conn *pgx.Conn, seqs []proto.SequenceUpdate, sqlFor func([]proto.SequenceUpdate) string) ([]proto.TableID, error) {
	var missing []proto.TableID
	for lo := 0; lo < len(seqs); lo += sequenceBatch {
		present, gone, err := presentSequences(ctx, conn, seqs[lo:min(lo+sequenceBatch, len(seqs))])
		if err != nil {
			return nil, err
		}
		missing = append(missing, gone...)
		if len(present) == 0 {
			continue
		}
		names, values, called := sequenceArgs(present)
		if _, err := conn.Exec(ctx, sqlFor(present), names, values, called); err != nil {
			return nil, fmt.Errorf("advance sequences: %w", err)
		}
	}
	return missing, nil
}

// advanceSequencesSQL reads the batch's sequences, compares each with
// the state wanted ($1 names, $2 last values, $3 is_called, in the
// batch's order), and calls setval only where the wanted state is ahead.
// setval in the select list runs for the rows the WHERE keeps, and only
// for them.
func advanceSequencesSQL(batch []proto.SequenceUpdate) string {
	const next = `(%[1]s.last_value::numeric + CASE WHEN %[1]s.is_called THEN q.seqincrement ELSE 0 END)`
	want, have := fmt.Sprintf(next, "w"), fmt.Sprintf(next, "cur")
	return `WITH cur(i, last_value, is_called) AS (` + readSequencesSQL(batch) + `)
		SELECT w.i, pg_catalog.setval(w.name::pg_catalog.regclass, w.last_value, w.is_called)
		FROM unnest($1::text[], $2::int8[], $3::bool[]) WITH ORDINALITY AS w(name, last_value, is_called, i)
		JOIN cur ON cur.i = w.i
		JOIN pg_catalog.pg_sequence q ON q.seqrelid = w.name::pg_catalog.regclass
		WHERE CASE WHEN q.seqincrement > 0 THEN ` + want + ` > ` + have + ` ELSE ` + want + ` < ` + have + ` END`
}

// readSequencesSQL selects (i, last_value, is_called) of each sequence of
// the batch, i counting from 1 in the batch's order.
func readSequencesSQL(batch []proto.SequenceUpdate) string {
	parts := make([]string, len(batch))
	for i, s := range batch {
		parts[i] = fmt.Sprintf("SELECT %d::int8, last_value, is_called FROM %s", i+1, tableName(s.Name))
	}
	return strings.Join(parts, " UNION ALL ")
}

func sequenceArgs(batch []proto.SequenceUpdate) (names []string, values []int64, called []bool) {
	for _, s := range batch {
		names = append(names, tableName(s.Name))
		values = append(values, s.LastValue)
		called = append(called, s.IsCalled)
	}
	return names, values, called
}

// presentSequences splits a batch into the sequences that exist at the
// destination and the names of those that do not.
func presentSequences(ctx context.Context, conn *pgx.Conn, batch []proto.SequenceUpdate) (present []proto.SequenceUpdate, missing []proto.TableID, err error) {
	names, _, _ := sequenceArgs(batch)
	found := make([]bool, len(batch))
	rows, err := conn.Query(ctx, `
		SELECT l.i FROM unnest($1::text[]) WITH ORDINALITY AS l(name, i)
		JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(l.name) AND c.relkind = 'S'`, names)
	if err != nil {
		return nil, nil, fmt.Errorf("look up sequences: %w", err)
	}
	for rows.Next() {
		var i int
		if err := rows.Scan(&i); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("look up sequences: %w", err)
		}
		found[i-1] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("look up sequences: %w", err)
	}
	for i, s := range batch {
		if found[i] {
			present = append(present, s)
		} else {
			missing = append(missing, s.Name)
		}
	}
	return present, missing, nil
}

// SetSequences sets each sequence to exactly its state and reports what it
// held before and after: per batch, a read, the setvals, a read again.
func SetSequences(ctx context.Context, conn *pgx.Conn, seqs []proto.SequenceUpdate) ([]proto.SequenceResult, error) {
	out := make([]proto.SequenceResult, 0, len(seqs))
	for lo := 0; lo < len(seqs); lo += sequenceBatch {
		batch := seqs[lo:min(lo+sequenceBatch, len(seqs))]
		present, _, err := presentSequences(ctx, conn, batch)
		if err != nil {
			return nil, err
		}
		at := map[proto.TableID]int{} // index in out
		for _, s := range batch {
			at[s.Name] = len(out)
			out = append(out, proto.SequenceResult{Name: s.Name, Missing: true})
		}
		if len(present) == 0 {
			continue
		}
		before, err := readSequences(ctx, conn, present)
		if err != nil {
			return nil, err
		}
		names, values, called := sequenceArgs(present)
		if _, err := conn.Exec(ctx, `
			SELECT pg_catalog.setval(w.name::pg_catalog.regclass, w.last_value, w.is_called)
			FROM unnest($1::text[], $2::int8[], $3::bool[]) AS w(name, last_value, is_called)`, names, values, called); err != nil {
			return nil, fmt.Errorf("set sequences: %w", err)
		}
		after, err := readSequences(ctx, conn, present)
		if err != nil {
			return nil, err
		}
		for i, s := range present {
			r := &out[at[s.Name]]
			r.Missing, r.Before, r.After = false, before[i], after[i]
		}
	}
	return out, nil
}

// readSequences reads the state of each sequence of a batch, in order.
func readSequences(ctx context.Context, conn *pgx.Conn, batch []proto.SequenceUpdate) ([]proto.SequenceState, error) {
	out := make([]proto.SequenceState, len(batch))
	rows, err := conn.Query(ctx, readSequencesSQL(batch))
	if err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var st proto.SequenceState
		if err := rows.Scan(&i, &st.LastValue, &st.IsCalled); err != nil {
			return nil, fmt.Errorf("read sequences: %w", err)
		}
		out[i-1] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	return out, nil
}
