package doris

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/jsonstr"
	"github.com/sluicedb/sluice/proto"
)

// errMoved: the table's position at the destination is not where this
// sink last left it (another owner moved it): the unit restarts and reads
// the positions again.
var errMoved = errors.New("doris: the table's position moved under this writer; reading positions again")

// pending is one table's batch in an Apply: its load, precommitted, and
// the offsets row it will record.
type pending struct {
	table string
	key   string // tblKey
	label string
	txn   int64
	row   offsetRow
}

// Apply writes a batch: per table one Stream Load, precommitted; then the
// tables' new positions in sluice_offsets; then the commits. A writer
// whose epoch is lower than a table's stored one is fenced before its
// loads become visible.
func (s *Sink) Apply(ctx context.Context, ch *apply.Changes) error {
	bySource := map[string][]*apply.Segment{}
	var order []string
	for _, seg := range ch.Segments {
		k := seg.Table.Key()
		if _, ok := bySource[k]; !ok {
			order = append(order, k)
		}
		bySource[k] = append(bySource[k], seg)
	}
	for k := range ch.Positions {
		if _, ok := bySource[k]; !ok {
			order = append(order, k)
		}
	}
	var batch []*pending
	abortAll := func() {
		for _, p := range batch {
			if p.txn > 0 {
				if err := s.c.txnOp(context.WithoutCancel(ctx), p.table, p.txn, p.label, "abort"); err != nil && !isDone(err) {
					s.log.Warn("doris: abort of a precommitted batch failed; Doris aborts it at its precommit timeout", "label", p.label, "err", err)
				}
			}
		}
	}
	for _, k := range order {
		t, ok := ch.Tables[k]
		if !ok {
			if segs := bySource[k]; len(segs) > 0 {
				t = segs[0].Table
			}
		}
		p, err := s.loadTable(ctx, ch, t, bySource[k])
		if err != nil {
			abortAll()
			return err
		}
		if p != nil {
			batch = append(batch, p)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	rows := map[string]offsetRow{}
	for _, p := range batch {
		rows[p.key] = p.row
	}
	if err := s.writeOffsets(ctx, ch.Task, ch.Epoch, rows); err != nil {
		abortAll()
		return err
	}
	for _, p := range batch {
		if p.txn > 0 {
			if err := s.c.txnOp(ctx, p.table, p.txn, p.label, "commit"); err != nil && !isDone(err) {
				// Recorded: the next reader of the offsets commits it.
				return fmt.Errorf("commit the batch of %s: %w", p.table, err)
			}
		}
		landed := p.row
		landed.label, landed.txn = "", 0
		s.remember(ch.Task, p.key, landed)
	}
	return nil
}

// position returns what the sink knows of a table's stored row, reading
// it when it knows nothing; a stored epoch above epoch fences.
func (s *Sink) position(ctx context.Context, task, key string, epoch uint64) (offsetRow, error) {
	s.mu.Lock()
	r, ok := s.known[knownKey(task, key)]
	s.mu.Unlock()
	if !ok {
		rows, err := s.readOffsets(ctx, task, []string{key})
		if err != nil {
			return r, err
		}
		if r, err = s.resolve(ctx, key, rows[key]); err != nil {
			return r, err
		}
		s.remember(task, key, r)
	}
	if r.epoch > epoch {
		return r, fmt.Errorf("%w (table %s: epoch %d holds it, this writer has %d)", apply.ErrFenced, key, r.epoch, epoch)
	}
	return r, nil
}

// loadTable precommits one table's rows of the batch (nil: nothing of it
// is above its position).
func (s *Sink) loadTable(ctx context.Context, ch *apply.Changes, t proto.TableID, segs []*apply.Segment) (*pending, error) {
	key := tblKey(t)
	prev, err := s.position(ctx, ch.Task, key, ch.Epoch)
	if err != nil {
		return nil, err
	}
	newPos, ok := ch.Positions[t.Key()]
	if !ok || !prev.pos.Less(newPos) {
		return nil, nil
	}
	name := dorisName(t)
	p := &pending{table: name, key: key}
	p.row = offsetRow{pos: newPos, epoch: ch.Epoch, gen: prev.gen, recordID: prev.recordID, prevPos: prev.pos, prevRec: prev.recordID}
	var body []byte
	var cols []string
	var info *tableInfo
	for _, seg := range segs {
		rows := seg.Rows
		// A TRUNCATE empties the table: what came before it in the
		// batch is gone with it. One at or below the position was
		// applied before (a replay): truncating again would lose rows.
		if last := lastTruncate(rows, prev.pos); last >= 0 {
			if err := s.c.exec(ctx, "TRUNCATE TABLE "+quote(name)); err != nil {
				return nil, fmt.Errorf("truncate %s: %w", name, err)
			}
			body = body[:0]
			rows = rows[last+1:]
		}
		if len(rows) == 0 {
			continue
		}
		if info == nil {
			if info, err = s.table(ctx, name); err != nil {
				return nil, err
			}
		}
		enc, err := newRowEncoder(info, seg.Columns)
		if err != nil {
			return nil, err
		}
		enc.fullOld = seg.Identity == proto.IdentityFull
		// The columns may differ between segments (the source's changed
		// without DDL sync): the load names them all, and a line without
		// one of them leaves it NULL, as the source no longer sends it.
		for _, c := range enc.loadCols {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
		for i := range rows {
			r := &rows[i]
			if !prev.pos.Less(r.Pos) {
				continue
			}
			if body, err = enc.appendRow(body, r, &p.row.recordID); err != nil {
				return nil, fmt.Errorf("doris: %s at %s: %w", name, r.Pos, err)
			}
		}
	}
	if len(body) == 0 {
		return p, nil
	}
	p.label = batchLabel(ch.Task, t, prev.gen, prev.pos)
	p.row.label = p.label
	header := jsonHeader(cols)
	header["two_phase_commit"] = "true"
	if info.model == EngineUnique {
		header["merge_type"] = "MERGE"
		header["delete"] = loadOp + "=1"
		if info.hasSeq {
			header["function_column.sequence_col"] = loadSeq
		}
	}
	for attempt := 0; ; attempt++ {
		ans, err := s.load(ctx, loadRequest{table: name, label: p.label, header: header, open: bytesBody(body)})
		var le *labelError
		switch {
		case err == nil:
			p.txn = ans.TxnID
			p.row.txn = ans.TxnID
			return p, nil
		case errors.As(err, &le) && attempt < 2:
			if le.job != "FINISHED" {
				// A load of this label is precommitted (a crashed or
				// fenced writer's): abort it and load ours.
				if err := s.c.txnOp(ctx, name, 0, p.label, "abort"); err != nil && !isDone(err) {
					return nil, err
				}
				continue
			}
			// The position this batch follows was already extended.
			stored, err := s.readOffsets(ctx, ch.Task, []string{key})
			if err != nil {
				return nil, err
			}
			if st := stored[key]; st.epoch > ch.Epoch {
				return nil, fmt.Errorf("%w (table %s: epoch %d holds it)", apply.ErrFenced, name, st.epoch)
			} else if st.pos != prev.pos {
				s.mu.Lock()
				delete(s.known, knownKey(ch.Task, key))
				s.mu.Unlock()
				return nil, errMoved
			}
			// A label of an earlier task of this name: tell ours apart.
			p.label = fmt.Sprintf("%s_e%d", p.label, ch.Epoch)
			p.row.label = p.label
		default:
			return nil, err
		}
	}
}

// lastTruncate is the index of the last TRUNCATE above pos in rows, -1
// for none.
func lastTruncate(rows []proto.Row, pos proto.Position) int {
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Op == proto.OpTruncate && pos.Less(rows[i].Pos) {
			return i
		}
	}
	return -1
}

// labelError: the label is taken; job is the existing load's
// ExistingJobStatus (RUNNING, PRECOMMITTED or FINISHED).
type labelError struct {
	label, job, msg string
}

func (e *labelError) Error() string {
	return fmt.Sprintf("doris: label %s already exists (%s): %s", e.label, e.job, e.msg)
}

// load sends a Stream Load and sorts its answer: loaded (Success; with
// Publish Timeout loaded and visible later), the label taken (a
// labelError), or failed. Too many versions (-235) is not a failure:
// the load waits and goes again, while the apply worker gathers a bigger
// next batch.
func (s *Sink) load(ctx context.Context, lr loadRequest) (*loadAnswer, error) {
	wait := time.Second
	for {
		ans, err := s.c.streamLoad(ctx, lr)
		if err != nil {
			return nil, err
		}
		if ans.Status == statusSuccess || ans.Status == statusPublishTimeout {
			return ans, nil
		}
		if job, ok := ans.labelExists(); ok {
			if job == "" {
				job = "RUNNING"
			}
			return nil, &labelError{label: lr.label, job: job, msg: ans.Message}
		}
		le := &LoadError{Table: lr.table, Label: lr.label, Status: ans.Status, Message: ans.Message}
		if !le.TooManyVersions() {
			return nil, le
		}
		s.log.Warn("doris: too many versions; loading less often", "table", lr.table, "wait", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// jsonHeader is the Stream Load header of JSON lines with cols.
func jsonHeader(cols []string) map[string]string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c)
	}
	return map[string]string{
		"format": "json", "read_json_by_line": "true", "columns": strings.Join(q, ","),
		// Strict: a value that does not fit its column fails the load
		// (with Doris's error log in the task's error) rather than
		// loading as NULL.
		"strict_mode": "true", "max_filter_ratio": "0",
	}
}

func bytesBody(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// jsonLines encodes rows of Sluice's own tables.
func jsonLines(lines []map[string]any) ([]byte, []string, error) {
	colSet := map[string]bool{}
	var buf bytes.Buffer
	for _, l := range lines {
		for k := range l {
			colSet[k] = true
		}
		b, err := json.Marshal(l)
		if err != nil {
			return nil, nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	cols := make([]string, 0, len(colSet))
	for k := range colSet {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return buf.Bytes(), cols, nil
}

// rowEncoder writes changes of one table as JSON lines for its model.
type rowEncoder struct {
	info     *tableInfo
	src      []int // index in the change's columns of each written column
	names    []string
	fields   [][]byte // each written column's `"name":`, encoded once
	kinds    []valueKind
	prec     []int // fraction digits of DATETIME columns
	isKey    []bool
	loadCols []string
	// fullOld: updates carry the whole old row (REPLICA IDENTITY FULL).
	// A Duplicate table then gets it as a deleted row before the new
	// one, so a reader folding a table without a key knows which row
	// changed.
	fullOld bool
}

func newRowEncoder(info *tableInfo, cols []proto.Column) (*rowEncoder, error) {
	e := &rowEncoder{info: info}
	for i, c := range cols {
		typ, ok := info.types[c.Name]
		if !ok {
			continue // a column the Doris table does not have (DDL not synced)
		}
		e.src = append(e.src, i)
		e.names = append(e.names, c.Name)
		e.fields = append(e.fields, fieldPrefix(c.Name))
		e.kinds = append(e.kinds, kindOf(typ))
		e.prec = append(e.prec, datetimePrecision(typ))
		e.isKey = append(e.isKey, slices.Contains(info.keys, c.Name))
	}
	for _, k := range info.keys {
		if info.model == EngineUnique && !slices.Contains(e.names, k) {
			return nil, fmt.Errorf("doris: %s: the changes carry no column %s of its unique key", info.name, k)
		}
	}
	e.loadCols = slices.Clone(e.names)
	if info.model == EngineUnique {
		e.loadCols = append(e.loadCols, loadOp)
		if info.hasSeq {
			e.loadCols = append(e.loadCols, loadSeq)
		}
	} else if info.extras {
		e.loadCols = append(e.loadCols, colIsDeleted, colVersion, colRecordID)
	}
	return e, nil
}

// fieldPrefix is `"name":` of a JSON object's field.
func fieldPrefix(name string) []byte { return append(jsonstr.Append(nil, name), ':') }

// The fields every line of a model ends with, encoded once.
var (
	fieldOp        = fieldPrefix(loadOp)
	fieldSeq       = fieldPrefix(loadSeq)
	fieldIsDeleted = fieldPrefix(colIsDeleted)
	fieldVersion   = fieldPrefix(colVersion)
	fieldRecordID  = fieldPrefix(colRecordID)
)

// appendSequence appends a position as the sequence column holds it:
// LSN·2³² + idx (96 bits; positions of LSNs below 2³¹ fit 63).
func appendSequence(dst []byte, p proto.Position) []byte {
	if uint64(p.LSN) < 1<<31 {
		return strconv.AppendUint(dst, uint64(p.LSN)<<32|uint64(p.Idx), 10)
	}
	n := new(big.Int).Lsh(new(big.Int).SetUint64(uint64(p.LSN)), 32)
	return n.Add(n, new(big.Int).SetUint64(uint64(p.Idx))).Append(dst, 10)
}

// appendRow appends r's line; an update first writes its old row as
// deleted where a reader needs it: on a Unique table when the key moved,
// on a Duplicate one when the update carries the whole old row.
func (e *rowEncoder) appendRow(dst []byte, r *proto.Row, recordID *int64) ([]byte, error) {
	img := r.New
	deleted := r.Op == proto.OpDelete
	if deleted {
		img = r.Old
	}
	if r.Op == proto.OpUpdate && r.Old.Len() > 0 &&
		((e.info.model == EngineDuplicate && e.fullOld) || (e.info.model == EngineUnique && e.keyMoved(r))) {
		var err error
		if dst, err = e.appendImage(dst, r, r.Old, true, recordID); err != nil {
			return nil, err
		}
	}
	return e.appendImage(dst, r, img, deleted, recordID)
}

func (e *rowEncoder) keyMoved(r *proto.Row) bool {
	for j, i := range e.src {
		if !e.isKey[j] || i >= r.Old.Len() || r.Old.Kinds[i] != proto.KindText {
			continue
		}
		if !bytes.Equal(r.Old.Values[i], r.New.Values[i]) {
			return true
		}
	}
	return false
}

func (e *rowEncoder) appendImage(dst []byte, r *proto.Row, img proto.Tuple, deleted bool, recordID *int64) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	field := func(prefix []byte) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, prefix...)
	}
	for j, i := range e.src {
		if i >= img.Len() {
			if deleted && !e.isKey[j] {
				continue // a delete's image may carry only the key
			}
			return nil, fmt.Errorf("the change has no value of %s", e.names[j])
		}
		kind, val := img.Kinds[i], img.Values[i]
		if kind == proto.KindToast {
			// Unchanged TOAST: the old row carries it under REPLICA
			// IDENTITY FULL (which Doris tables need, as the guide says).
			if i < r.Old.Len() && r.Old.Kinds[i] != proto.KindToast {
				kind, val = r.Old.Kinds[i], r.Old.Values[i]
			} else {
				return nil, fmt.Errorf("column %s is an unchanged TOAST value the change does not carry: set REPLICA IDENTITY FULL on the source table", e.names[j])
			}
		}
		field(e.fields[j])
		if kind != proto.KindText {
			dst = append(dst, "null"...)
			continue
		}
		out, null := convert(e.kinds[j], e.prec[j], val)
		if null {
			dst = append(dst, "null"...)
			continue
		}
		dst = jsonstr.Append(dst, out)
	}
	switch {
	case e.info.model == EngineUnique:
		field(fieldOp)
		if deleted {
			dst = append(dst, '1')
		} else {
			dst = append(dst, '0')
		}
		if e.info.hasSeq {
			field(fieldSeq)
			dst = appendSequence(dst, r.Pos)
		}
	case e.info.extras:
		*recordID++
		field(fieldIsDeleted)
		if deleted {
			dst = append(dst, '1')
		} else {
			dst = append(dst, '0')
		}
		field(fieldVersion)
		dst = strconv.AppendInt(dst, r.CommitTimeUS/1e6, 10)
		field(fieldRecordID)
		dst = strconv.AppendInt(dst, *recordID, 10)
	}
	return append(dst, '}', '\n'), nil
}
