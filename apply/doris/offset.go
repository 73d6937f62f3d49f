package doris

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// offsetRow is a table's row in sluice_offsets: the last position applied
// (with the epoch of its writer), and the batch that took it there while
// that batch is precommitted (label, txn) with the position before it.
//
// A batch goes: precommit the table's load (label derived from the task,
// the table and the position it follows), record the row, commit. A crash
// between record and commit leaves the row naming a precommitted load;
// the next reader of the offsets finishes it: commits it if it is still
// precommitted, falls back to the position before it if it was aborted.
// Doris forgets labels after label_keep_max_second; a row whose label is
// gone is decided without it: on a Duplicate table by its largest
// _record_id, on a Unique table by going back (a batch loaded again
// changes nothing there: the sequence column orders it).
type offsetRow struct {
	pos      proto.Position
	epoch    uint64
	gen      uint64 // the table's load plan: labels of a reloaded table differ
	recordID int64  // the last _record_id written (Duplicate tables)
	label    string
	txn      int64
	prevPos  proto.Position
	prevRec  int64
	// weak rows are written with epoch 0, which any owner's row replaces
	// and which replaces none: a renamed table's row under its new name,
	// which the apply group of that name may have written already.
	weak bool
}

func knownKey(task, tblKey string) string { return task + "\x00" + tblKey }

// remember keeps a table's row as this sink last read or wrote it.
func (s *Sink) remember(task, key string, r offsetRow) {
	s.mu.Lock()
	s.known[knownKey(task, key)] = r
	s.mu.Unlock()
}

func parsePos(lsn, idx string) proto.Position {
	l, _ := strconv.ParseUint(lsn, 10, 64)
	i, _ := strconv.ParseUint(idx, 10, 32)
	return proto.Position{LSN: proto.LSN(l), Idx: uint32(i)}
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// readOffsets reads the task's rows, of the given tables (nil: all).
func (s *Sink) readOffsets(ctx context.Context, task string, tbls []string) (map[string]offsetRow, error) {
	stmt := "SELECT `tbl`, `epoch`, `lsn`, `idx`, `gen`, `record_id`, `label`, `txn`, `prev_lsn`, `prev_idx`, `prev_record_id` FROM `sluice_offsets` WHERE `task` = " + sqlString(task)
	if tbls != nil {
		if len(tbls) == 0 {
			return map[string]offsetRow{}, nil
		}
		stmt += " AND `tbl` IN (" + inList(tbls) + ")"
	}
	res, err := s.c.query(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	out := map[string]offsetRow{}
	for i := range res.rows {
		out[res.col(i, "tbl")] = offsetRow{
			pos: parsePos(res.col(i, "lsn"), res.col(i, "idx")), epoch: uint64(atoi64(res.col(i, "epoch"))),
			gen: uint64(atoi64(res.col(i, "gen"))), recordID: atoi64(res.col(i, "record_id")),
			label: res.col(i, "label"), txn: atoi64(res.col(i, "txn")),
			prevPos: parsePos(res.col(i, "prev_lsn"), res.col(i, "prev_idx")), prevRec: atoi64(res.col(i, "prev_record_id")),
		}
	}
	return out, nil
}

// Offsets returns the last applied position of each of the task's
// tables, finishing first what a crash left between record and commit.
func (s *Sink) Offsets(ctx context.Context, task string) (map[string]proto.Position, error) {
	rows, err := s.readOffsets(ctx, task, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]proto.Position{}
	for key, r := range rows {
		r, err := s.resolve(ctx, key, r)
		if err != nil {
			return nil, err
		}
		s.remember(task, key, r)
		if err := s.abortLingering(ctx, task, key, r); err != nil {
			return nil, err
		}
		if !r.pos.IsZero() {
			out[tableOfKey(key).Key()] = r.pos
		}
	}
	return out, nil
}

// resolve decides a row whose batch may not have been committed: it
// returns the row as it stands once that is settled.
func (s *Sink) resolve(ctx context.Context, key string, r offsetRow) (offsetRow, error) {
	if r.label == "" {
		return r, nil
	}
	back := r
	back.pos, back.recordID, back.label, back.txn = r.prevPos, r.prevRec, "", 0
	landed := r
	landed.label, landed.txn = "", 0
	state, err := s.c.loadState(ctx, r.label)
	if err != nil {
		return r, err
	}
	table := tableFromKey(key)
	switch state {
	case stateVisible, stateCommitted:
		return landed, nil
	case statePrecommitted, statePrepare:
		if err := s.c.txnOp(ctx, table, r.txn, r.label, "commit"); err != nil && !isDone(err) {
			return r, fmt.Errorf("finish the batch of %s left precommitted (label %s): %w", key, r.label, err)
		}
		s.log.Info("doris: committed a batch a crash left precommitted", "table", key, "label", r.label)
		return landed, nil
	case stateAborted:
		return back, nil
	}
	// The label is forgotten (or was never used: the crash came before
	// the load). Decide by the data where it can tell.
	info, err := s.table(ctx, table)
	if err != nil {
		return r, err
	}
	if info.model == EngineDuplicate && info.extras {
		res, err := s.c.query(ctx, "SELECT MAX("+quote(colRecordID)+") AS m FROM "+quote(table))
		if err != nil {
			return r, err
		}
		if len(res.rows) > 0 && atoi64(res.col(0, "m")) >= r.recordID {
			return landed, nil
		}
	}
	return back, nil
}

// tblKey is a table's key in Sluice's tables: ["schema","name"], plain
// text that cannot be ambiguous (proto's keys hold a NUL byte).
func tblKey(t proto.TableID) string {
	b, _ := json.Marshal([]string{t.Schema, t.Name})
	return string(b)
}

// tableOfKey reads tblKey back.
func tableOfKey(key string) proto.TableID {
	var parts []string
	if json.Unmarshal([]byte(key), &parts) != nil || len(parts) != 2 {
		return proto.TableID{Name: key}
	}
	return proto.TableID{Schema: parts[0], Name: parts[1]}
}

// tableFromKey is the Doris table of a tblKey.
func tableFromKey(key string) string { return dorisName(tableOfKey(key)) }

func isDone(err error) bool {
	var te *txnError
	return errors.As(err, &te) && te.done()
}

// offsetLine is a row of sluice_offsets in a load.
func offsetLine(task, tbl string, epoch uint64, r offsetRow) map[string]any {
	return map[string]any{
		"task": task, "tbl": tbl, "epoch": epoch,
		"lsn": strconv.FormatUint(uint64(r.pos.LSN), 10), "idx": r.pos.Idx, "gen": r.gen, "record_id": r.recordID,
		"label": r.label, "txn": r.txn,
		"prev_lsn": strconv.FormatUint(uint64(r.prevPos.LSN), 10), "prev_idx": r.prevPos.Idx, "prev_record_id": r.prevRec,
	}
}

// writeOffsets records rows in sluice_offsets (one load) and waits until
// they are visible, then reads them back: a row a higher epoch holds
// fences this writer.
func (s *Sink) writeOffsets(ctx context.Context, task string, epoch uint64, rows map[string]offsetRow) error {
	var lines []map[string]any
	var tbls []string
	for tbl, r := range rows {
		if r.weak {
			lines = append(lines, offsetLine(task, tbl, 0, r))
			continue
		}
		lines = append(lines, offsetLine(task, tbl, epoch, r))
		tbls = append(tbls, tbl)
	}
	if err := s.loadMeta(ctx, "sluice_offsets", "o", lines); err != nil {
		return err
	}
	stored, err := s.readOffsets(ctx, task, tbls)
	if err != nil {
		return err
	}
	for _, tbl := range tbls {
		if st := stored[tbl]; st.epoch > epoch {
			return fmt.Errorf("%w (table %s: epoch %d holds it, this writer has %d)", apply.ErrFenced, tbl, st.epoch, epoch)
		}
	}
	return nil
}

// loadMeta loads rows into one of Sluice's tables, committed at once,
// and waits until they are visible (a Publish Timeout shows them later).
func (s *Sink) loadMeta(ctx context.Context, table, kind string, lines []map[string]any) error {
	body, cols, err := jsonLines(lines)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("sluice_meta_%s_%d", kind, time.Now().UnixNano())
	ans, err := s.load(ctx, loadRequest{table: table, label: label, header: jsonHeader(cols), open: bytesBody(body)})
	if err != nil {
		return err
	}
	if ans.Status == statusPublishTimeout {
		return s.awaitVisible(ctx, label)
	}
	return nil
}

// awaitVisible waits, bounded, until the load of label is visible.
func (s *Sink) awaitVisible(ctx context.Context, label string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		state, err := s.c.loadState(ctx, label)
		if err != nil {
			return err
		}
		if state == stateVisible {
			return nil
		}
		if state == stateAborted || time.Now().After(deadline) {
			return fmt.Errorf("doris: the load of label %s is %s, not visible", label, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// ResetOffsets forgets the task's positions, plans and chunks.
func (s *Sink) ResetOffsets(ctx context.Context, task string) error {
	for _, t := range []string{"sluice_offsets", "sluice_plans", "sluice_chunks"} {
		if err := s.c.exec(ctx, "DELETE FROM "+quote(t)+" WHERE `task` = "+sqlString(task)); err != nil {
			return fmt.Errorf("reset positions: %w", err)
		}
	}
	s.mu.Lock()
	for k := range s.known {
		if strings.HasPrefix(k, task+"\x00") {
			delete(s.known, k)
		}
	}
	s.mu.Unlock()
	return nil
}

// abortLingering aborts the load a crashed writer precommitted after the
// table's stored position without recording it (as the Doris connectors
// abort their lingering transactions on start): its label is the one the
// next batch of the table takes, so it is known without a listing.
func (s *Sink) abortLingering(ctx context.Context, task, key string, r offsetRow) error {
	label := batchLabel(task, tableOfKey(key), r.gen, r.pos)
	state, err := s.c.loadState(ctx, label)
	if err != nil {
		return err
	}
	if state != statePrecommitted {
		return nil
	}
	if err := s.c.txnOp(ctx, tableFromKey(key), 0, label, "abort"); err != nil && !isDone(err) {
		return fmt.Errorf("abort the lingering load %s: %w", label, err)
	}
	s.log.Info("doris: aborted a load a crashed writer left precommitted", "table", key, "label", label)
	return nil
}

// batchLabel is the label of a table's batch that follows pos.
func batchLabel(task string, t proto.TableID, gen uint64, pos proto.Position) string {
	return fmt.Sprintf("sluice_%s_%s_g%d_%d_%d", labelTask(task), labelTag(t), gen, uint64(pos.LSN), pos.Idx)
}

// BatchLabel is the label of a table's batch that follows pos in
// generation gen (for tests that play a crashed writer).
func BatchLabel(task string, t proto.TableID, gen uint64, pos proto.Position) string {
	return batchLabel(task, t, gen, pos)
}
