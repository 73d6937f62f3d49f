package apply

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// Coalescing turns a run of row changes of a keyed table into a few
// set-based writes: every key ends in one final state (deleted, written
// whole, or updated in some columns), so a destination can apply a batch as
// one DELETE, one upsert and a few UPDATEs instead of one statement per
// row. Order survives where it matters: a TRUNCATE, or a key change whose
// new row lacks unchanged TOAST values, is a barrier that splits the run.

// StepKind says what a Step does.
type StepKind int

const (
	// StepSet: delete Deletes, write Upserts whole, update Partials.
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
	// Deletes hold the key values (other columns are meaningless).
	Deletes []proto.Tuple
	// Upserts are complete rows.
	Upserts []proto.Tuple
	// Partials have KindToast in the columns to leave as they are.
	Partials []proto.Tuple
	// Move: the old key (in a tuple) and the new row.
	MoveOld, MoveNew proto.Tuple
}

type finalState int

const (
	stDelete finalState = iota
	stUpsert
	stPartial
)

type entry struct {
	state finalState
	tuple proto.Tuple
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
	c := &coalescer{keyIdx: keyIdx, oldFull: oldFull, entries: map[string]*entry{}, emit: emit}
	for i := range rows {
		if err := c.add(&rows[i]); err != nil {
			return err
		}
	}
	return c.flush()
}

func (c *coalescer) add(r *proto.Row) error {
	switch r.Op {
	case proto.OpInsert:
		k, err := c.key(r.New)
		if err != nil {
			return err
		}
		c.set(k, stUpsert, r.New)
	case proto.OpDelete:
		k, err := c.key(r.Old)
		if err != nil {
			return err
		}
		c.set(k, stDelete, r.Old)
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
	prev := c.entries[ok]
	toast := hasToast(newRow)
	if toast {
		switch {
		case prev != nil && prev.state == stUpsert:
			newRow, toast = merge(prev.tuple, newRow), false
		case c.oldFull && r.Old.Len() > 0 && !hasToast(r.Old):
			// REPLICA IDENTITY FULL sends the whole old row, detoasted.
			newRow, toast = merge(r.Old, newRow), false
		}
	}
	if ok != nk {
		if toast {
			// The unchanged values live only in the destination's row at
			// the old key: flush what came before and move it there.
			if err := c.flush(); err != nil {
				return err
			}
			return c.emit(&Step{Kind: StepMove, MoveOld: r.Old, MoveNew: newRow})
		}
		c.set(ok, stDelete, r.Old)
		c.set(nk, stUpsert, newRow)
		return nil
	}
	switch {
	case !toast:
		c.set(nk, stUpsert, newRow)
	case prev != nil && prev.state == stPartial:
		c.set(nk, stPartial, merge(prev.tuple, newRow))
	default:
		c.set(nk, stPartial, newRow)
	}
	return nil
}

func (c *coalescer) set(k string, st finalState, t proto.Tuple) {
	if e := c.entries[k]; e != nil {
		e.state, e.tuple = st, t
		return
	}
	c.entries[k] = &entry{state: st, tuple: t}
	c.order = append(c.order, k)
}

func (c *coalescer) flush() error {
	if len(c.order) == 0 {
		return nil
	}
	step := &Step{Kind: StepSet}
	for _, k := range c.order {
		e := c.entries[k]
		switch e.state {
		case stDelete:
			step.Deletes = append(step.Deletes, e.tuple)
		case stUpsert:
			step.Upserts = append(step.Upserts, e.tuple)
		case stPartial:
			step.Partials = append(step.Partials, e.tuple)
		}
	}
	c.entries = map[string]*entry{}
	c.order = c.order[:0]
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
