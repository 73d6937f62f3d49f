package kafka

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
	"github.com/sluicedb/sluice/verify/rowside"
)

// A table's rows in Kafka are what its topic's messages leave when
// replayed in order, as a consumer that keeps a table from them holds
// them: per row key the last message wins, a delete or a tombstone
// (a message without a value) takes the key away, and a truncate empties
// the table in its partition (it is written to every partition, in
// order with each partition's changes). A row is keyed by the verified
// key's values (the primary key, else the replica identity's index) as
// the message's row holds them, which is what the sink's message keys
// hold too; the message key itself stands in only where the row does
// not have the key (a tombstone, a delete's row before under another
// replica identity). A keyless table is a multiset: a row written adds a
// copy, a delete takes one away.

// tableFold is what a table's topic has said of its rows so far.
type tableFold struct {
	t     *proto.VerifyTable
	parts map[int32]*partitionFold
}

// partitionFold is what one partition's messages have left.
type partitionFold struct {
	rows map[string]*foldedRow
	// gone holds the position of each key's last delete: a key whose
	// changes went to two partitions (a partition_key of non-key columns
	// that changed) is alive only if its latest message is not a delete.
	gone map[string]proto.Position
	// ids finds the row of a message key (its bytes, as the sink writes
	// them): the row of a delete whose row before lacks the verified key
	// (another replica identity), or of a tombstone whose key lacks it.
	ids map[string]string
}

// foldedRow is a row as the fold holds it: its values, the position of
// the message that wrote it, and for a keyless table how many copies.
type foldedRow struct {
	values []any
	pos    proto.Position
	count  int64
}

func newTableFold(t *proto.VerifyTable) *tableFold {
	return &tableFold{t: t, parts: map[int32]*partitionFold{}}
}

func (f *tableFold) partition(p int32) *partitionFold {
	pf := f.parts[p]
	if pf == nil {
		pf = &partitionFold{rows: map[string]*foldedRow{}, gone: map[string]proto.Position{}, ids: map[string]string{}}
		f.parts[p] = pf
	}
	return pf
}

// apply folds one message of partition p: a change read from its value,
// or a tombstone (value nil) of its key.
func (f *tableFold) apply(p int32, key []byte, tombstone bool, ch rowChange) {
	if ch.kind == changeTruncate && !tombstone {
		delete(f.parts, p)
		return
	}
	pf := f.partition(p)
	if tombstone {
		f.tombstone(pf, key)
		return
	}
	switch ch.kind {
	case changeUpsert:
		if f.t.Keyless() {
			if ch.before != nil {
				f.removeCopy(pf, ch.before)
			}
			f.addCopy(pf, ch.after, ch.pos)
			return
		}
		id := f.keyID(ch.after)
		if id == "" {
			return // a row without its key: nothing a consumer could keep
		}
		values := slices.Clone(ch.after)
		if prev := pf.rows[id]; prev != nil {
			// An unchanged value the message does not carry is the one
			// the row had.
			for i, v := range values {
				if v == rowside.Unknown || v == absent {
					values[i] = prev.values[i]
				}
			}
		}
		pf.rows[id] = &foldedRow{values: values, pos: ch.pos}
		delete(pf.gone, id)
		pf.ids[string(key)] = id
	case changeDelete:
		if f.t.Keyless() {
			f.removeCopy(pf, ch.before)
			return
		}
		id := f.keyID(ch.before)
		if id == "" {
			id = pf.ids[string(key)]
		}
		if id == "" {
			return
		}
		delete(pf.rows, id)
		delete(pf.ids, string(key))
		pf.gone[id] = ch.pos
	}
}

// tombstone takes the message key's row away: a compacted topic keeps
// nothing of the key.
func (f *tableFold) tombstone(pf *partitionFold, key []byte) {
	var members map[string]json.RawMessage
	if json.Unmarshal(key, &members) != nil {
		return
	}
	image := jsonImage(f.t, members, absent)
	if f.t.Keyless() {
		delete(pf.rows, rowID(f.t, image))
		return
	}
	id := f.keyID(image)
	if id == "" {
		id = pf.ids[string(key)]
	}
	delete(pf.rows, id)
	delete(pf.ids, string(key))
}

func (f *tableFold) addCopy(pf *partitionFold, image []any, pos proto.Position) {
	if image == nil {
		return
	}
	id := rowID(f.t, image)
	r := pf.rows[id]
	if r == nil {
		r = &foldedRow{values: image}
		pf.rows[id] = r
	}
	r.count++
	r.pos = pos
}

func (f *tableFold) removeCopy(pf *partitionFold, image []any) {
	if image == nil {
		return
	}
	id := rowID(f.t, image)
	if r := pf.rows[id]; r != nil {
		if r.count--; r.count <= 0 {
			delete(pf.rows, id)
		}
	}
}

// keyID is a row's verified key in canonical form ("" when the image
// does not know it).
func (f *tableFold) keyID(image []any) string {
	if image == nil {
		return ""
	}
	key := make([]string, len(f.t.Key))
	for i, k := range f.t.Key {
		v := image[k]
		if v == nil || v == absent || v == rowside.Unknown {
			return ""
		}
		key[i] = *rowside.Text(f.t.Types[k], v)
	}
	return pgverify.KeyString(key)
}

// rowID is a keyless row's identity: all its values in canonical form.
func rowID(t *proto.VerifyTable, image []any) string {
	var b bytes.Buffer
	for i, v := range image {
		if v == absent {
			v = nil
		}
		if text := rowside.Text(t.Types[i], v); text != nil {
			b.WriteString("\x01v")
			b.WriteString(*text)
		} else {
			b.WriteString("\x01n")
		}
	}
	return b.String()
}

// rows is the table as the fold holds it. A key found in more than one
// partition is the row of its latest message, a delete included.
func (f *tableFold) rows() [][]any {
	var out [][]any
	parts := slices.Sorted(maps.Keys(f.parts))
	if f.t.Keyless() {
		counts := map[string]*foldedRow{}
		for _, p := range parts {
			for id, r := range f.parts[p].rows {
				if c := counts[id]; c != nil {
					c.count += r.count
				} else {
					counts[id] = &foldedRow{values: r.values, count: r.count}
				}
			}
		}
		for _, r := range counts {
			for range r.count {
				out = append(out, present(r.values))
			}
		}
		return out
	}
	latest := map[string]*foldedRow{}
	for _, p := range parts {
		for id, r := range f.parts[p].rows {
			if cur := latest[id]; cur == nil || cur.pos.Less(r.pos) {
				latest[id] = r
			}
		}
	}
	if len(parts) > 1 {
		for _, p := range parts {
			for id, pos := range f.parts[p].gone {
				if cur := latest[id]; cur != nil && cur.pos.Less(pos) {
					delete(latest, id)
				}
			}
		}
	}
	for _, r := range latest {
		out = append(out, present(r.values))
	}
	return out
}

// present is a row's values with the columns its messages never had as
// NULL, as a consumer whose schema grew reads them.
func present(values []any) []any {
	out := slices.Clone(values)
	for i, v := range out {
		if v == absent {
			out[i] = nil
		}
	}
	return out
}
