package apply

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// Coalescing turns a run of row changes of a keyed table into a few
// set-based writes. Each key ends in one final state, and whether the row
// existed at the destination before the run is known from the first
// change of the key (an insert means it did not: the destination mirrors
// the source). So a run becomes: delete the rows that went away, insert
// (COPY) the rows that are new, update the rows that changed, and update
// some columns of rows whose unchanged TOAST values must stay. Order
// survives where it matters: a TRUNCATE, or a key change whose new row
// lacks unchanged TOAST values, is a barrier that splits the run.

// StepKind says what a Step does.
type StepKind int

const (
	// StepSet: delete Deletes, then insert Inserts, update Updates and
	// Partials.
	StepSet StepKind = iota
	// StepTruncate empties the table.
	StepTruncate
	// StepMove changes a row's key when the new row has unchanged TOAST
	// values: the destination copies those from the row at the old key,
	// writes the new row and deletes the old one.
	StepMove
)

// Step is one write of a coalesced run.
type Step struct {
	Kind StepKind
	// Deletes hold the key values of rows to remove (other columns are
	// meaningless).
	Deletes []proto.Tuple
	// Inserts are complete rows whose key did not exist before the run.
	Inserts []proto.Tuple
	// Updates are complete rows whose key existed before the run.
	Updates []proto.Tuple
	// Partials have KindToast in the columns to leave as they are; their
	// key existed before the run.
	Partials []proto.Tuple
	// Move: the old key (in a tuple) and the new row.
	MoveOld, MoveNew proto.Tuple
}

// entry is what the run has done to one key.
type entry struct {
	existed bool // the row was there before the run
	present bool // the row is there after it
	tuple   proto.Tuple
}

type coalescer struct {
	keyIdx  []int
	oldFull bool
	entries map[string]*entry
	order   []string
	emit    func(*Step) error
	keyBuf  []byte
}

// Coalesce folds rows (in position order) by the key columns keyIdx and
// calls emit for each resulting step, in order. oldFull says old tuples
// are whole rows (REPLICA IDENTITY FULL), not just the key.
func Coalesce(rows []proto.Row, keyIdx []int, oldFull bool, emit func(*Step) error) error {
	if step := uniform(rows); step != nil {
		return emit(step)
	}
	c := &coalescer{keyIdx: keyIdx, oldFull: oldFull, entries: map[string]*entry{}, emit: emit}
	for i := range rows {
		if err := c.add(&rows[i]); err != nil {
			return err
		}
	}
	return c.flush()
}

// uniform is the fast path of runs of only inserts or only deletes (bulk
// loads and purges): their keys are distinct, since a key cannot be
// inserted, or deleted, twice without the opposite change in between, so
// there is nothing to fold.
func uniform(rows []proto.Row) *Step {
	if len(rows) == 0 {
		return nil
	}
	op := rows[0].Op
	if op != proto.OpInsert && op != proto.OpDelete {
		return nil
	}
	for i := range rows {
		if rows[i].Op != op {
			return nil
		}
	}
	tuples := make([]proto.Tuple, len(rows))
	for i := range rows {
		if op == proto.OpInsert {
			tuples[i] = rows[i].New
		} else {
			tuples[i] = rows[i].Old
		}
	}
	if op == proto.OpInsert {
		return &Step{Kind: StepSet, Inserts: tuples}
	}
	return &Step{Kind: StepSet, Deletes: tuples}
}

// entry returns the key's entry, creating it with whether the row existed
// before the run (known from the key's first change).
func (c *coalescer) entry(k string, existed bool) *entry {
	if e := c.entries[k]; e != nil {
		return e
	}
	e := &entry{existed: existed, present: existed}
	c.entries[k] = e
	c.order = append(c.order, k)
	return e
}

func (c *coalescer) add(r *proto.Row) error {
	switch r.Op {
	case proto.OpInsert:
		k, err := c.key(r.New)
		if err != nil {
			return err
		}
		e := c.entry(k, false)
		e.present, e.tuple = true, r.New
	case proto.OpDelete:
		k, err := c.key(r.Old)
		if err != nil {
			return err
		}
		e := c.entry(k, true)
		e.present, e.tuple = false, r.Old
	case proto.OpTruncate:
		if err := c.flush(); err != nil {
			return err
		}
		return c.emit(&Step{Kind: StepTruncate})
	case proto.OpUpdate:
		return c.update(r)
	default:
		return fmt.Errorf("unknown change op %d", r.Op)
	}
	return nil
}

func (c *coalescer) update(r *proto.Row) error {
	newRow := r.New
	// A key column is never left out as unchanged TOAST in practice (keys
	// are small), but if it were, the old tuple has it.
	for _, i := range c.keyIdx {
		if newRow.Kinds[i] == proto.KindToast && r.Old.Len() > 0 {
			newRow = merge(r.Old, newRow)
			break
		}
	}
	nk, err := c.key(newRow)
	if err != nil {
		return err
	}
	ok := nk
	if r.Old.Len() > 0 {
		if ok, err = c.key(r.Old); err != nil {
			return err
		}
	}
	// What the run already did to the row (nil: nothing; it existed).
	prev := c.entries[ok]
	if hasToast(newRow) {
		switch {
		case prev != nil && prev.present && !hasToast(prev.tuple):
			newRow = merge(prev.tuple, newRow)
		case c.oldFull && r.Old.Len() > 0 && !hasToast(r.Old):
			// REPLICA IDENTITY FULL sends the whole old row, detoasted.
			newRow = merge(r.Old, newRow)
		case ok == nk && prev != nil && prev.present:
			// An earlier partial update of the row: combine the two.
			newRow = merge(prev.tuple, newRow)
		}
	}
	if ok == nk {
		e := c.entry(ok, true)
		e.present, e.tuple = true, newRow
		return nil
	}
	if hasToast(newRow) {
		// The unchanged values live only in the destination's row at the
		// old key: flush what came before and move it there.
		if err := c.flush(); err != nil {
			return err
		}
		return c.emit(&Step{Kind: StepMove, MoveOld: r.Old, MoveNew: newRow})
	}
	old := c.entry(ok, true)
	old.present, old.tuple = false, r.Old
	// The new key was free at the source: either it never existed, or an
	// earlier change of this run removed it.
	e := c.entry(nk, false)
	e.present, e.tuple = true, newRow
	return nil
}

func (c *coalescer) flush() error {
	if len(c.order) == 0 {
		return nil
	}
	step := &Step{Kind: StepSet}
	for _, k := range c.order {
		e := c.entries[k]
		switch {
		case !e.present && e.existed:
			step.Deletes = append(step.Deletes, e.tuple)
		case !e.present:
			// Came and went within the run: nothing to write.
		case !e.existed:
			step.Inserts = append(step.Inserts, e.tuple)
		case hasToast(e.tuple):
			step.Partials = append(step.Partials, e.tuple)
		default:
			step.Updates = append(step.Updates, e.tuple)
		}
	}
	c.entries = map[string]*entry{}
	c.order = c.order[:0]
	if len(step.Deletes)+len(step.Inserts)+len(step.Updates)+len(step.Partials) == 0 {
		return nil
	}
	return c.emit(step)
}

// key encodes the key columns of t as a map key.
func (c *coalescer) key(t proto.Tuple) (string, error) {
	b := c.keyBuf[:0]
	for _, i := range c.keyIdx {
		if i >= t.Len() || t.Kinds[i] != proto.KindText {
			return "", fmt.Errorf("a change has no value for key column %d (NULL or missing): the destination's key must be part of the source's replica identity", i+1)
		}
		b = binary.AppendUvarint(b, uint64(len(t.Values[i])))
		b = append(b, t.Values[i]...)
	}
	c.keyBuf = b
	return string(b), nil
}

func hasToast(t proto.Tuple) bool {
	for _, k := range t.Kinds {
		if k == proto.KindToast {
			return true
		}
	}
	return false
}

// merge returns over with its unchanged-TOAST columns taken from base.
func merge(base, over proto.Tuple) proto.Tuple {
	out := proto.Tuple{Kinds: make([]byte, len(over.Kinds)), Values: make([][]byte, len(over.Kinds))}
	for i, k := range over.Kinds {
		if k == proto.KindToast && i < base.Len() {
			out.Kinds[i], out.Values[i] = base.Kinds[i], base.Values[i]
		} else {
			out.Kinds[i], out.Values[i] = k, over.Values[i]
		}
	}
	return out
}
