package emu

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Rows go through a staging table in MariaDB: a load writes its batch
// there (so a precommitted 2PC load holds no memory), and publishing
// applies the staged rows to the base table in one MariaDB transaction,
// in file order, with the model's upsert rules.

const stageChunk = 500

func stageName(id int64) string { return fmt.Sprintf("stage_%d", id) }

func (e *Emulator) stage(ctx context.Context, tx *txn, b *batch) error {
	name := quoteIdent(sysSchema) + "." + quoteIdent(stageName(tx.id))
	defs := []string{"`__ord` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"}
	var cols []string
	for _, c := range b.cols {
		defs = append(defs, quoteIdent(c.Name)+" "+c.Type.mariaType(false)+" NULL")
		cols = append(cols, quoteIdent(c.Name))
	}
	if b.unique {
		defs = append(defs, quoteIdent(colDeleteSign)+" TINYINT NOT NULL")
		cols = append(cols, quoteIdent(colDeleteSign))
	}
	if b.seqType != nil {
		defs = append(defs, quoteIdent(colSequence)+" "+b.seqType.mariaType(false)+" NULL")
		cols = append(cols, quoteIdent(colSequence))
	}
	if _, err := e.maria.db.ExecContext(ctx, "CREATE TABLE "+name+" ("+strings.Join(defs, ", ")+
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"); err != nil {
		return err
	}
	tx.stage = name
	tx.batch = b
	placeholder := "(" + strings.TrimSuffix(strings.Repeat("?,", b.width()), ",") + ")"
	for start := 0; start < len(b.rows); start += stageChunk {
		end := min(start+stageChunk, len(b.rows))
		args := make([]any, 0, (end-start)*b.width())
		ph := make([]string, 0, end-start)
		for _, row := range b.rows[start:end] {
			for _, v := range row {
				if v == nil {
					args = append(args, nil)
				} else {
					args = append(args, *v)
				}
			}
			ph = append(ph, placeholder)
		}
		if _, err := e.maria.db.ExecContext(ctx, "INSERT INTO "+name+" ("+strings.Join(cols, ", ")+") VALUES "+
			strings.Join(ph, ", "), args...); err != nil {
			return translateMaria(err)
		}
	}
	b.rows = nil // staged; memory is MariaDB's now
	return nil
}

func (e *Emulator) dropStage(tx *txn) {
	if tx.stage != "" {
		_, _ = e.maria.db.Exec("DROP TABLE IF EXISTS " + tx.stage)
		tx.stage = ""
	}
}

// publish applies a staged transaction to its table. The caller holds
// e.pub, so publishes happen one at a time, in commit order; committed
// loads still waiting for a delayed publish on the same table go first.
func (e *Emulator) publish(ctx context.Context, tx *txn) error {
	for _, p := range e.txns.pendingFor(tx.table) {
		if p != tx {
			if err := e.applyStaged(ctx, p); err != nil {
				return err
			}
			e.txns.set(p, TxnVisible, "")
		}
	}
	return e.applyStaged(ctx, tx)
}

func (e *Emulator) applyStaged(ctx context.Context, tx *txn) error {
	if tx.stage == "" {
		return nil
	}
	e.cat.mu.RLock()
	t := *tx.table
	t.Columns = append([]Column(nil), tx.table.Columns...)
	e.cat.mu.RUnlock()
	if t.dropped {
		return errorf("Table %s has been dropped", t.Name)
	}
	b := tx.batch
	// Columns dropped since the load are skipped.
	var cols []string
	given := map[string]bool{}
	for _, c := range b.cols {
		if _, cur := t.Column(c.Name); cur != nil {
			cols = append(cols, quoteIdent(cur.Name))
			given[strings.ToLower(cur.Name)] = true
		}
	}
	if b.unique {
		cols = append(cols, quoteIdent(colDeleteSign))
	}
	if b.seqType != nil && t.SeqType != nil {
		cols = append(cols, quoteIdent(colSequence))
	}
	// Columns are qualified: the staged rows and the base table share
	// names, which MariaDB would call ambiguous in the update clause.
	src := make([]string, len(cols))
	for i, c := range cols {
		src[i] = "`s`." + c
	}
	stmt := "INSERT INTO " + t.base() + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(src, ", ") +
		" FROM " + tx.stage + " AS `s` ORDER BY `s`.`__ord`"
	if b.unique {
		stmt += " ON DUPLICATE KEY UPDATE " + strings.Join(upsertAssignments(&t, b, given), ", ")
	}
	conn, err := e.maria.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "START TRANSACTION"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return translateMaria(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	e.dropStage(tx)
	return nil
}

// upsertAssignments is the ON DUPLICATE KEY UPDATE list that gives a
// merge-on-write Unique table Doris's semantics. MariaDB applies the
// assignments left to right, each seeing the ones before, so every
// condition reads the stored sequence and delete sign first and those two
// are assigned last. A row replaces the stored one only when its sequence
// is >= the stored one (no sequence: always); a non-partial row resets
// columns it does not carry to their defaults; a partial row keeps them,
// unless the stored row is a delete tombstone, which it revives as new.
func upsertAssignments(t *Table, b *batch, given map[string]bool) []string {
	q := func(name string) string { return t.base() + "." + quoteIdent(name) }
	seq, del := q(colSequence), q(colDeleteSign)
	vseq, vdel := "VALUES("+quoteIdent(colSequence)+")", "VALUES("+quoteIdent(colDeleteSign)+")"
	cond := "TRUE"
	if b.seqType != nil && t.SeqType != nil {
		cond = "(" + seq + " IS NULL OR " + vseq + " >= " + seq + ")"
	}
	var out []string
	for _, c := range t.Columns {
		if c.Key || given[strings.ToLower(c.Name)] {
			continue
		}
		col := q(c.Name)
		if b.partial {
			out = append(out, fmt.Sprintf("%s = IF(%s AND %s = 1, DEFAULT(%s), %s)", col, cond, del, col, col))
		} else {
			out = append(out, fmt.Sprintf("%s = IF(%s, DEFAULT(%s), %s)", col, cond, col, col))
		}
	}
	for _, c := range t.Columns {
		if c.Key || !given[strings.ToLower(c.Name)] {
			continue
		}
		col := q(c.Name)
		out = append(out, fmt.Sprintf("%s = IF(%s, VALUES(%s), %s)", col, cond, quoteIdent(c.Name), col))
	}
	out = append(out, fmt.Sprintf("%s = IF(%s, %s, %s)", del, cond, vdel, del))
	if b.seqType != nil && t.SeqType != nil {
		out = append(out, fmt.Sprintf("%s = IF(%s, %s, %s)", seq, cond, vseq, seq))
	}
	return out
}

// commit publishes a precommitted 2PC transaction (Doris's
// commitTransaction2PC), answering with Doris's messages.
func (e *Emulator) commit(ctx context.Context, tx *txn) error {
	e.pub.Lock()
	defer e.pub.Unlock()
	status, reason := e.txns.snapshot(tx)
	switch status {
	case TxnPrecommitted:
	case TxnAborted:
		return errorf("transaction [%d] is already aborted. abort reason: %s", tx.id, reason)
	case TxnPrepare:
		return errorf("transaction [%d] is prepare, not pre-committed.", tx.id)
	case TxnCommitted:
		return errorf("transaction [%d] is already committed, not pre-committed.", tx.id)
	case TxnVisible:
		return errorf("transaction [%d] is already visible, not pre-committed.", tx.id)
	}
	if err := e.publish(ctx, tx); err != nil {
		e.dropStage(tx)
		e.txns.set(tx, TxnAborted, err.Error())
		e.stats.aborts.Add(1)
		return err
	}
	e.txns.set(tx, TxnVisible, "")
	e.stats.commits.Add(1)
	return nil
}

// abort discards a transaction that is not yet committed.
func (e *Emulator) abort(tx *txn, reason string) error {
	e.pub.Lock()
	defer e.pub.Unlock()
	status, old := e.txns.snapshot(tx)
	switch status {
	case TxnCommitted, TxnVisible:
		return errorf("transaction [%d] is already %s, could not abort.", tx.id, status)
	case TxnAborted:
		return errorf("transaction [%d] is already aborted, abort reason: %s", tx.id, old)
	}
	e.dropStage(tx)
	e.txns.set(tx, TxnAborted, reason)
	e.stats.aborts.Add(1)
	return nil
}

// sweep does the timed work: aborting 2PC transactions precommitted for
// longer than PrecommitTimeout, publishing delayed loads that are due and
// forgetting labels older than LabelKeep.
func (e *Emulator) sweep() {
	now := time.Now()
	expired, due := e.txns.due(now, e.opts.PrecommitTimeout)
	for _, tx := range expired {
		_ = e.abort(tx, "timeout by txn manager")
	}
	if len(due) > 0 {
		e.pub.Lock()
		for _, tx := range due {
			if s, _ := e.txns.snapshot(tx); s != TxnCommitted {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := e.applyStaged(ctx, tx); err == nil {
				e.txns.set(tx, TxnVisible, "")
			}
			cancel()
		}
		e.pub.Unlock()
	}
	e.txns.forget(now, e.opts.LabelKeep)
}
