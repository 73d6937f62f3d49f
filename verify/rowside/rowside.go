// Package rowside reads the destination's side of a verification (sluice
// verify) for destinations that can only hand their rows to Go: a Kafka
// topic folded by key, a Doris table read over its protocol. A Loader
// gives the table's rows as Go values; rowside puts each value in the
// canonical text pgverify's SQL computes at the source for the column's
// type (text.go), prints the row's record as PostgreSQL's record_out
// does, and hashes it with md5 as pgverify's legacy hash does, so the
// checksums, rows and hashes it answers are the ones the source computes.
//
// Its ServerVersion is 0, which makes verify hash with md5 at both ends
// (VerifyTable.LegacyHash), and its key collations are "C", so that text
// keys range in byte order at both ends.
package rowside

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// Loader reads the destination table's rows as they are now: each row's
// values by compared column (VerifyTable.Columns' order), as Go values
// Text takes.
type Loader func(ctx context.Context, t *proto.VerifyTable) ([][]any, error)

// Reader is a destination's side of a verification, over a Loader
// (apply.VerifyReader). A verification reads a table's ranges many times
// (checksums level after level, then the differing leaves' rows): one
// load serves them all. A re-check must see what the destination holds
// after waiting for the task, so RowsByKey always loads again, and so
// does every whole-table Rows of a keyless table after the first (its
// re-checks). Use one Reader per table verification.
type Reader struct {
	load Loader
	mu   sync.Mutex
	snap *snapshot
}

// New returns a Reader of the rows load gives.
func New(load Loader) *Reader { return &Reader{load: load} }

var _ apply.VerifyReader = (*Reader)(nil)

// snapshot is one load of a table, in canonical form.
type snapshot struct {
	table string
	// rows are in key order (keyless: as loaded); byKey indexes them by
	// pgverify.KeyString of their key.
	rows    []row
	byKey   map[string]int
	compare []keyCompare
	// wholeServed: a whole-table Rows of a keyless table has used it.
	wholeServed bool
}

type row struct {
	key    []string
	hash   int64
	values []*string
}

// ServerVersion is 0: a destination read in Go hashes with md5, and
// verify then hashes with md5 at the source too.
func (r *Reader) ServerVersion(context.Context) (int, error) { return 0, nil }

// KeyCollations are "C" for the text key columns ("" for the others):
// ranges order text byte by byte here, and unless the source's key
// collations are the same, verify orders the source's ranges that way.
func (r *Reader) KeyCollations(_ context.Context, t *proto.VerifyTable) ([]string, error) {
	if err := check(t); err != nil {
		return nil, err
	}
	out := make([]string, len(t.Key))
	for i, k := range t.Key {
		switch t.Types[k] {
		case "text", "varchar", "bpchar", "name", "citext":
			out[i] = "C"
		}
	}
	return out, nil
}

func check(t *proto.VerifyTable) error {
	if len(t.Types) != len(t.Columns) {
		return fmt.Errorf("%s: the source's column types are not known (VerifyTable.Types)", t.Dest)
	}
	return nil
}

// Checksums returns each range's row count and hash sum.
func (r *Reader) Checksums(ctx context.Context, t *proto.VerifyTable, _ bool, ranges []proto.KeyRange) ([]proto.RangeSum, error) {
	snap, err := r.snapshot(ctx, t, false)
	if err != nil {
		return nil, err
	}
	out := make([]proto.RangeSum, len(ranges))
	for i, kr := range ranges {
		sum := new(big.Int)
		for _, row := range snap.inRange(t, kr) {
			sum.Add(sum, big.NewInt(row.hash))
			out[i].Rows++
		}
		out[i].Sum = sum.String()
	}
	return out, nil
}

// Rows returns a range's rows in key order; for a keyless table, each
// distinct row once, with its count.
func (r *Reader) Rows(ctx context.Context, t *proto.VerifyTable, _ bool, kr proto.KeyRange) ([]proto.VerifyRow, error) {
	if !t.Keyless() {
		snap, err := r.snapshot(ctx, t, false)
		if err != nil {
			return nil, err
		}
		var out []proto.VerifyRow
		for _, row := range snap.inRange(t, kr) {
			out = append(out, row.verifyRow())
		}
		return out, nil
	}
	r.mu.Lock()
	reload := r.snap != nil && r.snap.table == tableID(t) && r.snap.wholeServed
	r.mu.Unlock()
	snap, err := r.snapshot(ctx, t, reload)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	snap.wholeServed = true
	r.mu.Unlock()
	byHash := map[int64]*proto.VerifyRow{}
	for _, row := range snap.rows {
		if v := byHash[row.hash]; v != nil {
			v.Count++
			continue
		}
		v := row.verifyRow()
		v.Key = nil
		byHash[row.hash] = &v
	}
	out := make([]proto.VerifyRow, 0, len(byHash))
	for _, h := range slices.Sorted(maps.Keys(byHash)) {
		out = append(out, *byHash[h])
	}
	return out, nil
}

// RowsByKey reads the rows of keys (a key not found is left out), from a
// new load: it re-checks what the destination holds now.
func (r *Reader) RowsByKey(ctx context.Context, t *proto.VerifyTable, keys [][]string) ([]proto.VerifyRow, error) {
	if t.Keyless() {
		return nil, errors.New("a keyless table has no keys")
	}
	snap, err := r.snapshot(ctx, t, true)
	if err != nil {
		return nil, err
	}
	var out []proto.VerifyRow
	for _, k := range keys {
		if i, ok := snap.byKey[pgverify.KeyString(k)]; ok {
			out = append(out, snap.rows[i].verifyRow())
		}
	}
	return out, nil
}

func (row *row) verifyRow() proto.VerifyRow {
	return proto.VerifyRow{Key: row.key, Hash: strconv.FormatInt(row.hash, 10), Values: row.values, Count: 1}
}

// tableID names a table as compared: its destination name and columns.
func tableID(t *proto.VerifyTable) string {
	return t.Dest.Key() + "\x00" + strings.Join(t.DestColumns, "\x00")
}

// snapshot returns the table's last load, or loads it (always when
// fresh).
func (r *Reader) snapshot(ctx context.Context, t *proto.VerifyTable, fresh bool) (*snapshot, error) {
	if err := check(t); err != nil {
		return nil, err
	}
	if !t.LegacyHash {
		return nil, fmt.Errorf("%s: rows read in Go are hashed with md5, and the table is compared with another hash", t.Dest)
	}
	id := tableID(t)
	r.mu.Lock()
	snap := r.snap
	r.mu.Unlock()
	if snap != nil && snap.table == id && !fresh {
		return snap, nil
	}
	loaded, err := r.load(ctx, t)
	if err != nil {
		return nil, err
	}
	snap, err = canonicalize(t, loaded)
	if err != nil {
		return nil, err
	}
	snap.table = id
	r.mu.Lock()
	r.snap = snap
	r.mu.Unlock()
	return snap, nil
}

// canonicalize puts loaded rows in canonical form, hashed, in key order.
func canonicalize(t *proto.VerifyTable, loaded [][]any) (*snapshot, error) {
	snap := &snapshot{rows: make([]row, 0, len(loaded)), byKey: make(map[string]int, len(loaded))}
	for _, k := range t.Key {
		snap.compare = append(snap.compare, compareFor(t.Types[k]))
	}
	items := make([]*string, len(t.Columns))
	for _, values := range loaded {
		if len(values) != len(t.Columns) {
			return nil, fmt.Errorf("%s: a row of %d values for %d columns", t.Dest, len(values), len(t.Columns))
		}
		out := row{values: make([]*string, len(values))}
		for i, v := range values {
			out.values[i], items[i] = texts(t.Types[i], v)
		}
		out.hash = legacyHash(recordText(items))
		if !t.Keyless() {
			out.key = make([]string, len(t.Key))
			for i, k := range t.Key {
				if out.values[k] == nil {
					return nil, fmt.Errorf("%s: a row without a value for key column %s", t.Dest, t.DestColumns[k])
				}
				out.key[i] = *out.values[k]
			}
		}
		snap.rows = append(snap.rows, out)
	}
	if t.Keyless() {
		return snap, nil
	}
	slices.SortStableFunc(snap.rows, func(a, b row) int { return compareKeys(snap.compare, a.key, b.key) })
	for i := range snap.rows {
		snap.byKey[pgverify.KeyString(snap.rows[i].key)] = i
	}
	return snap, nil
}

// inRange is the rows of a range (a keyless table's: all of them).
func (s *snapshot) inRange(t *proto.VerifyTable, kr proto.KeyRange) []row {
	if t.Keyless() {
		return s.rows
	}
	from, to := 0, len(s.rows)
	if kr.From != nil {
		from, _ = slices.BinarySearchFunc(s.rows, kr.From, func(r row, k []string) int { return compareKeys(s.compare, r.key, k) })
	}
	if kr.To != nil {
		to, _ = slices.BinarySearchFunc(s.rows, kr.To, func(r row, k []string) int { return compareKeys(s.compare, r.key, k) })
	}
	if to < from {
		return nil
	}
	return s.rows[from:to]
}
