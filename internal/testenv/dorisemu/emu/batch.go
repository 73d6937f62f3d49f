package emu

import (
	"errors"
	"fmt"
	"math/big"
)

// batch is a load's converted rows, in file order, ready to stage: one
// value per staged column, then the delete sign (Unique tables), then the
// sequence value (when the load feeds it).
type batch struct {
	cols    []Column // visible columns the load writes, in table order
	unique  bool
	seqType *Type // non-nil when rows carry a sequence value
	partial bool
	rows    [][]*string
}

func (b *batch) width() int {
	n := len(b.cols)
	if b.unique {
		n++
	}
	if b.seqType != nil {
		n++
	}
	return n
}

// buildBatch converts records to a batch; rows Doris would filter come
// back as error-log lines instead ("Reason: ... src line [...]").
func buildBatch(t *Table, s *loadSpec, recs []record) (*batch, []string) {
	b := &batch{unique: t.Model == ModelUnique, partial: s.partial}
	var srcIdx []int
	for i, c := range t.Columns {
		if s.tableCols[i] >= 0 {
			b.cols = append(b.cols, c)
			srcIdx = append(srcIdx, s.tableCols[i])
		}
	}
	if s.seqCol >= 0 {
		b.seqType = t.SeqType
	}
	var filtered []string
	reject := func(r record, why string) {
		filtered = append(filtered, fmt.Sprintf("Reason: %s. src line [%s]; ", why, r.src))
	}
rows:
	for _, r := range recs {
		if r.bad != "" {
			reject(r, r.bad)
			continue
		}
		row := make([]*string, 0, b.width())
		for i, c := range b.cols {
			raw := r.vals[srcIdx[i]]
			if raw == nil {
				if !c.Nullable {
					reject(r, fmt.Sprintf("column(%s) values is null while columns is not nullable", c.Name))
					continue rows
				}
				row = append(row, nil)
				continue
			}
			v, err := c.Type.Convert(*raw)
			if err != nil {
				// Doris's strict mode: without it a value that does not
				// convert becomes NULL in a nullable column; a value too
				// long is filtered either way.
				if s.strict || !c.Nullable || errors.Is(err, errTooLong) {
					reject(r, fmt.Sprintf("column(%s) %v", c.Name, err))
					continue rows
				}
				row = append(row, nil)
				continue
			}
			row = append(row, &v)
		}
		if b.unique {
			del := "0"
			switch {
			case s.merge == mergeDelete:
				del = "1"
			case s.merge == mergeMerge && s.delCol >= 0:
				if dv := r.vals[s.delCol]; dv != nil && sameValue(*dv, s.delValue) {
					del = "1"
				}
			}
			row = append(row, &del)
		}
		if b.seqType != nil {
			raw := r.vals[s.seqCol]
			if raw == nil {
				row = append(row, nil)
			} else {
				v, err := b.seqType.Convert(*raw)
				if err != nil {
					reject(r, fmt.Sprintf("column(%s) %v", colSequence, err))
					continue rows
				}
				row = append(row, &v)
			}
		}
		b.rows = append(b.rows, row)
	}
	return b, filtered
}

// sameValue compares a delete-condition value: as numbers when both are
// numbers (so 1 matches 1.0), else as text.
func sameValue(a, b string) bool {
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	if ok1 && ok2 {
		return x.Cmp(y) == 0
	}
	return a == b
}
