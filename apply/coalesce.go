package apply

import (
	"bytes"
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
	// entries are the run's keys in first-change order; index finds a
	// key's entry. (Entries live in one slice, not one allocation each:
	// a run is often tens of thousands of keys.)
	entries []entry
	index   map[string]int32
	emit    func(*Step) error
	// newKey and oldKey hold the encoded keys of the change being added.
	newKey, oldKey []byte
}

// Coalesce folds rows (in position order) by the key columns keyIdx and
// calls emit for each resulting step, in order. oldFull says old tuples
// are whole rows (REPLICA IDENTITY FULL), not just the key.
func Coalesce(rows []proto.Row, keyIdx []int, oldFull bool, emit func(*Step) error) error {
	if step := uniform(rows); step != nil {
		return emit(step)
	}
	c := &coalescer{keyIdx: keyIdx, oldFull: oldFull, entries: make([]entry, 0, len(rows)), index: make(map[string]int32, len(rows)), emit: emit}
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
// before the run (known from the key's first change). The pointer holds
// until the next entry is created.
func (c *coalescer) entry(k []byte, existed bool) *entry {
	if i, ok := c.index[string(k)]; ok {
		return &c.entries[i]
	}
	c.index[string(k)] = int32(len(c.entries))
	c.entries = append(c.entries, entry{existed: existed, present: existed})
	return &c.entries[len(c.entries)-1]
}

// lookup is the key's entry, nil if the run has not changed it.
func (c *coalescer) lookup(k []byte) *entry {
	if i, ok := c.index[string(k)]; ok {
		return &c.entries[i]
	}
	return nil
}

func (c *coalescer) add(r *proto.Row) error {
	switch r.Op {
	case proto.OpInsert:
		k, err := c.key(&c.newKey, r.New)
		if err != nil {
			return err
		}
		e := c.entry(k, false)
		e.present, e.tuple = true, r.New
	case proto.OpDelete:
		k, err := c.key(&c.oldKey, r.Old)
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
	nk, err := c.key(&c.newKey, newRow)
	if err != nil {
		return err
	}
	ok := nk
	if r.Old.Len() > 0 {
		if ok, err = c.key(&c.oldKey, r.Old); err != nil {
			return err
		}
	}
	sameKey := bytes.Equal(ok, nk)
	// What the run already did to the row (nil: nothing; it existed).
	prev := c.lookup(ok)
	if hasToast(newRow) {
		switch {
		case prev != nil && prev.present && !hasToast(prev.tuple):
			newRow = merge(prev.tuple, newRow)
		case c.oldFull && r.Old.Len() > 0 && !hasToast(r.Old):
			// REPLICA IDENTITY FULL sends the whole old row, detoasted.
			newRow = merge(r.Old, newRow)
		case sameKey && prev != nil && prev.present:
			// An earlier partial update of the row: combine the two.
			newRow = merge(prev.tuple, newRow)
		}
	}
	if sameKey {
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

// What an entry becomes in a step.
const (
	skip = iota
	toDelete
	toInsert
	toPartial
	toUpdate
)

func (e *entry) class() int {
	switch {
	case !e.present && e.existed:
		return toDelete
	case !e.present:
		return skip // came and went within the run: nothing to write
	case !e.existed:
		return toInsert
	case hasToast(e.tuple):
		return toPartial
	default:
		return toUpdate
	}
}

func (c *coalescer) flush() error {
	if len(c.entries) == 0 {
		return nil
	}
	// Counted first, so each list is allocated once at its size.
	var n [toUpdate + 1]int
	for i := range c.entries {
		n[c.entries[i].class()]++
	}
	step := &Step{Kind: StepSet}
	lists := [toUpdate + 1]*[]proto.Tuple{toDelete: &step.Deletes, toInsert: &step.Inserts, toPartial: &step.Partials, toUpdate: &step.Updates}
	for cl, l := range lists {
		if l != nil && n[cl] > 0 {
			*l = make([]proto.Tuple, 0, n[cl])
		}
	}
	for i := range c.entries {
		e := &c.entries[i]
		if l := lists[e.class()]; l != nil {
			*l = append(*l, e.tuple)
		}
	}
	clear(c.index)
	c.entries = c.entries[:0]
	if len(step.Deletes)+len(step.Inserts)+len(step.Updates)+len(step.Partials) == 0 {
		return nil
	}
	return c.emit(step)
}

// key encodes the key columns of t into buf, as a map key.
func (c *coalescer) key(buf *[]byte, t proto.Tuple) ([]byte, error) {
	b := (*buf)[:0]
	for _, i := range c.keyIdx {
		if i >= t.Len() || t.Kinds[i] != proto.KindText {
			return nil, fmt.Errorf("a change has no value for key column %d (NULL or missing): the destination's key must be part of the source's replica identity", i+1)
		}
		b = binary.AppendUvarint(b, uint64(len(t.Values[i])))
		b = append(b, t.Values[i]...)
	}
	*buf = b
	return b, nil
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
