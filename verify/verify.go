// Package verify compares a task's tables at the source and the
// destination (sluice verify): checksums of key ranges at both ends,
// splitting only ranges that differ, down to rows compared by key (a
// keyless table as a multiset of rows); then every differing row is
// re-checked once the task has applied the source's changes up to where
// it was read, so that a row in flight is never reported; and, on
// request, the destination is repaired row by row and checked again.
package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// Options tune a comparison.
type Options struct {
	// LeafRows: a differing range of at most this many rows (at both
	// ends) is compared row by row; a bigger one is split in Fanout.
	LeafRows int64
	Fanout   int
	// MaxListed bounds the differences listed per table (the rest are
	// counted).
	MaxListed int
	// WaitApplied waits until the destination has every change the
	// source made up to an LSN (nil: the task is not running, and what
	// the destination holds is what it will hold).
	WaitApplied func(ctx context.Context, lsn proto.LSN) error
	// SettleFor bounds how long rows that keep changing at the source are
	// re-checked (rounds wait longer and longer, up to a second, between
	// them); those still changing then are counted as unsettled.
	SettleFor time.Duration
	// Repair makes differing rows match the source (the destination must
	// be an apply.Repairer); Task names the task for it.
	Repair bool
	Task   string
	// Range, when set, is the only part of the table compared (a round of
	// continuous verification compares a slice of the key space, see
	// Window): the first level starts from it instead of the whole table.
	// RangeRows estimates its rows, so that a big range of a key that
	// splits cheaply is cut at once, as a big table is. A keyless table
	// is compared whole.
	Range     *proto.KeyRange
	RangeRows int64
}

func (o *Options) defaults() {
	if o.LeafRows <= 0 {
		o.LeafRows = 1000
	}
	if o.Fanout < 2 {
		o.Fanout = 16
	}
	if o.MaxListed <= 0 {
		o.MaxListed = 10000
	}
	if o.SettleFor <= 0 {
		o.SettleFor = time.Minute
	}
}

// Table verifies one table.
func Table(ctx context.Context, src *pgverify.Side, dst apply.VerifyReader, repairer apply.Repairer, t *proto.VerifyTable, opts Options) proto.VerifyTableResult {
	opts.defaults()
	start := time.Now()
	c := &comparer{src: src, dst: dst, t: t, opts: opts, res: proto.VerifyTableResult{Table: t.Source.String(), Dest: t.Dest.String()}}
	err := c.run(ctx)
	if err == nil && opts.Repair && len(c.diffs) > 0 {
		err = c.repair(ctx, repairer)
	}
	if err != nil {
		c.res.Error = err.Error()
	}
	c.list()
	c.res.DurationMS = time.Since(start).Milliseconds()
	return c.res
}

type comparer struct {
	src       *pgverify.Side
	dst       apply.VerifyReader
	t         *proto.VerifyTable
	opts      Options
	byteOrder bool
	res       proto.VerifyTableResult
	// candidates are the keys (pgverify.KeyString) the ranges found
	// differing, with their keys; diffs the differences confirmed.
	candidates map[string][]string
	diffs      map[string]proto.VerifyDifference
	// keyless: the hashes found differing, with the rows' values; and
	// the confirmed ones, with how many copies the destination lacks
	// (negative: has too many).
	hashes map[string][]*string
	fixes  map[string]proto.VerifyRow
}

func (c *comparer) run(ctx context.Context) error {
	c.candidates, c.diffs, c.hashes, c.fixes = map[string][]string{}, map[string]proto.VerifyDifference{}, map[string][]*string{}, map[string]proto.VerifyRow{}
	sv, err := c.src.ServerVersion(ctx)
	if err != nil {
		return err
	}
	dv, err := c.dst.ServerVersion(ctx)
	if err != nil {
		return err
	}
	c.t.LegacyHash = min(sv, dv) < pgverify.HashedSince
	if c.byteOrder, err = byteOrder(ctx, c.src, c.dst, c.t); err != nil {
		return err
	}
	first, err := c.firstLevel(ctx)
	if err != nil {
		return err
	}
	if err := c.ranges(ctx, first); err != nil {
		return err
	}
	if c.t.Keyless() {
		return c.settleKeyless(ctx)
	}
	return c.settle(ctx)
}

// byteOrder reports whether the table's ranges order text keys
// byte-wise: ranges must hold the same keys at both ends, and the two
// ends' collations differ.
func byteOrder(ctx context.Context, src *pgverify.Side, dst apply.VerifyReader, t *proto.VerifyTable) (bool, error) {
	if t.Keyless() {
		return false, nil
	}
	a, err := src.KeyCollations(ctx, t)
	if err != nil {
		return false, err
	}
	b, err := dst.KeyCollations(ctx, t)
	if err != nil {
		return false, err
	}
	return !slices.Equal(a, b), nil
}

// firstLevel is the ranges checksummed first: the whole table (or
// Options.Range), or, for a big one whose key splits cheaply, ranges of
// about LeafRows*Fanout rows (at most 4,096), whose differing ones split
// once more into leaves. An equal table costs one pass either way; one
// with scattered differences is not read whole level after level.
func (c *comparer) firstLevel(ctx context.Context) ([]proto.KeyRange, error) {
	if c.t.Keyless() {
		return []proto.KeyRange{{}}, nil
	}
	whole := proto.KeyRange{}
	if c.opts.Range != nil {
		whole = *c.opts.Range
	}
	if cheap, err := c.src.CheapSplit(ctx, c.t); err != nil || !cheap {
		return []proto.KeyRange{whole}, err
	}
	rows := c.opts.RangeRows
	if c.opts.Range == nil {
		var err error
		if rows, err = c.src.EstimatedRows(ctx, c.t); err != nil {
			return nil, err
		}
	}
	if rows <= c.opts.LeafRows*int64(c.opts.Fanout) {
		return []proto.KeyRange{whole}, nil
	}
	n := int(min(max(rows/(c.opts.LeafRows*int64(c.opts.Fanout)), int64(c.opts.Fanout)), 4096))
	cuts, err := c.src.Split(ctx, c.t, c.byteOrder, whole, rows, n)
	if err != nil {
		return nil, err
	}
	return cutRange(whole, cuts), nil
}

// cutRange is r cut at cuts (in key order).
func cutRange(r proto.KeyRange, cuts [][]string) []proto.KeyRange {
	out := make([]proto.KeyRange, 0, len(cuts)+1)
	from := r.From
	for _, cut := range cuts {
		out = append(out, proto.KeyRange{From: from, To: cut})
		from = cut
	}
	return append(out, proto.KeyRange{From: from, To: r.To})
}

// ranges compares ranges by checksum, then the differing ones row by
// row or split, level by level.
func (c *comparer) ranges(ctx context.Context, level []proto.KeyRange) error {
	for len(level) > 0 {
		src, dst, err := c.checksums(ctx, level)
		if err != nil {
			return err
		}
		var next []proto.KeyRange
		for i, r := range level {
			if src[i] == dst[i] {
				c.res.Rows += src[i].Rows
				continue
			}
			// Half again as many rows as a leaf holds is still a leaf: a
			// split by key width leaves parts a little over or under.
			if c.t.Keyless() || max(src[i].Rows, dst[i].Rows) <= c.opts.LeafRows*3/2 {
				if err := c.leaf(ctx, r); err != nil {
					return err
				}
				continue
			}
			cuts, err := c.src.Split(ctx, c.t, c.byteOrder, r, src[i].Rows, c.opts.Fanout)
			if err != nil {
				return err
			}
			if len(cuts) == 0 {
				// The source has too few rows to split by (the destination
				// holds many extra ones): compare the rows.
				if err := c.leaf(ctx, r); err != nil {
					return err
				}
				continue
			}
			next = append(next, cutRange(r, cuts)...)
		}
		level = next
	}
	return nil
}

// atBothEnds runs read at the source and the destination at once.
func atBothEnds[T any](ctx context.Context, read func(context.Context, apply.VerifyReader) (T, error), src, dst apply.VerifyReader) (atSrc, atDst T, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		atSrc, err = read(gctx, src)
		return err
	})
	g.Go(func() (err error) {
		atDst, err = read(gctx, dst)
		return err
	})
	err = g.Wait()
	return atSrc, atDst, err
}

// checksums reads a level's range checksums at both ends at once.
func (c *comparer) checksums(ctx context.Context, level []proto.KeyRange) (src, dst []proto.RangeSum, err error) {
	src, dst, err = atBothEnds(ctx, func(ctx context.Context, end apply.VerifyReader) ([]proto.RangeSum, error) {
		return end.Checksums(ctx, c.t, c.byteOrder, level)
	}, c.src, c.dst)
	if err != nil {
		return nil, nil, err
	}
	c.res.Ranges += int64(len(level))
	for i := range level {
		c.res.BytesRead += int64(16 + len(src[i].Sum) + len(dst[i].Sum)) // two counts and two sums
	}
	return src, dst, nil
}

// leaf compares a range's rows: the keys (or, keyless, the rows) that
// differ become candidates.
func (c *comparer) leaf(ctx context.Context, r proto.KeyRange) error {
	src, dst, err := atBothEnds(ctx, func(ctx context.Context, end apply.VerifyReader) ([]proto.VerifyRow, error) {
		return end.Rows(ctx, c.t, c.byteOrder, r)
	}, c.src, c.dst)
	if err != nil {
		return err
	}
	c.res.BytesRead += rowBytes(src) + rowBytes(dst)
	if c.t.Keyless() {
		for _, r := range src {
			c.res.Rows += r.Count
		}
		for h, d := range multisetDiff(src, dst) {
			c.hashes[h] = d.values
		}
		return nil
	}
	srcByKey, dstByKey := byKey(src), byKey(dst)
	for _, row := range src {
		c.res.Rows++
		if d, ok := dstByKey[pgverify.KeyString(row.Key)]; !ok || d.Hash != row.Hash {
			c.candidates[pgverify.KeyString(row.Key)] = row.Key
		}
	}
	for _, row := range dst {
		if _, ok := srcByKey[pgverify.KeyString(row.Key)]; !ok {
			c.candidates[pgverify.KeyString(row.Key)] = row.Key
		}
	}
	return nil
}

func rowBytes(rows []proto.VerifyRow) int64 {
	var n int64
	for _, r := range rows {
		n += int64(len(r.Hash))
		for _, k := range r.Key {
			n += int64(len(k))
		}
		for _, v := range r.Values {
			if v != nil {
				n += int64(len(*v))
			}
		}
	}
	return n
}

func byKey(rows []proto.VerifyRow) map[string]*proto.VerifyRow {
	out := make(map[string]*proto.VerifyRow, len(rows))
	for i := range rows {
		out[pgverify.KeyString(rows[i].Key)] = &rows[i]
	}
	return out
}

// settle re-checks the candidate keys until each is equal or shown to
// differ: a round reads the source's rows (with their versions), waits
// until the destination has applied the source up to that read, reads
// the destination's rows, then the source's again. A row the destination
// holds as the source had it at either read is settled; one that
// differs while the source row kept its version across the round
// differs for real; one whose source row changed meanwhile goes to the
// next round.
func (c *comparer) settle(ctx context.Context) error {
	pending := c.candidates
	deadline := time.Now().Add(c.opts.SettleFor)
	for round := 0; len(pending) > 0; round++ {
		if round > 0 {
			if time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, backoff(round)); err != nil {
				return err
			}
		}
		keys := keysOf(pending)
		first, err := c.src.ReadKeys(ctx, c.t, keys)
		if err != nil {
			return err
		}
		if c.opts.WaitApplied != nil {
			if err := c.opts.WaitApplied(ctx, first.LSN); err != nil {
				return err
			}
		}
		dst, err := c.dst.RowsByKey(ctx, c.t, keys)
		if err != nil {
			return err
		}
		second, err := c.src.ReadKeys(ctx, c.t, keys)
		if err != nil {
			return err
		}
		c.res.BytesRead += rowBytes(first.Rows) + rowBytes(dst) + rowBytes(second.Rows)
		before, srcRows, dstRows := byKey(first.Rows), byKey(second.Rows), byKey(dst)
		next := map[string][]string{}
		for k, key := range pending {
			s, d := srcRows[k], dstRows[k]
			switch {
			case sameRow(s, d), sameRow(before[k], d):
				continue // equal
			case c.opts.WaitApplied != nil && first.Versions[k] != second.Versions[k]:
				next[k] = key // changed at the source during the round
				continue
			}
			c.diffs[k] = c.difference(key, s, d)
		}
		pending = next
	}
	c.res.Unsettled = int64(len(pending))
	return nil
}

// sameRow: both are absent, or both have one hash.
func sameRow(a, b *proto.VerifyRow) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Hash == b.Hash
}

// backoff is the pause before re-check round n: 100 ms, doubling, at
// most a second.
func backoff(n int) time.Duration {
	return min(time.Second, 100*time.Millisecond<<min(n-1, 4))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func keysOf(m map[string][]string) [][]string {
	out := make([][]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// difference says how the destination's row d differs from the
// source's s.
func (c *comparer) difference(key []string, s, d *proto.VerifyRow) proto.VerifyDifference {
	out := proto.VerifyDifference{Key: map[string]string{}}
	for i, k := range c.t.Key {
		out.Key[c.t.Columns[k]] = key[i]
	}
	switch {
	case d == nil:
		out.Kind = proto.DiffMissing
	case s == nil:
		out.Kind = proto.DiffExtra
	default:
		out.Kind = proto.DiffChanged
		for i, col := range c.t.Columns {
			if !sameValue(s.Values[i], d.Values[i]) {
				out.Columns = append(out.Columns, col)
			}
		}
	}
	return out
}

func sameValue(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// multisetEntry is a row's count at each end.
type multisetEntry struct {
	src, dst int64
	values   []*string
}

// multisetDiff returns the rows whose counts differ, by hash.
func multisetDiff(src, dst []proto.VerifyRow) map[string]*multisetEntry {
	m := map[string]*multisetEntry{}
	for _, r := range src {
		m[r.Hash] = &multisetEntry{src: r.Count, values: r.Values}
	}
	for _, r := range dst {
		e := m[r.Hash]
		if e == nil {
			e = &multisetEntry{values: r.Values}
			m[r.Hash] = e
		}
		e.dst = r.Count
	}
	for h, e := range m {
		if e.src == e.dst {
			delete(m, h)
		}
	}
	return m
}

// settleKeyless re-checks a keyless table's differing rows the same way,
// by whole-table multisets: a row's difference is confirmed when its
// count at the source was the same before and after the round.
func (c *comparer) settleKeyless(ctx context.Context) error {
	pending := len(c.hashes)
	deadline := time.Now().Add(c.opts.SettleFor)
	for round := 0; pending > 0; round++ {
		if round > 0 {
			if time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, backoff(round)); err != nil {
				return err
			}
		}
		first, err := c.src.Rows(ctx, c.t, false, proto.KeyRange{})
		if err != nil {
			return err
		}
		if c.opts.WaitApplied != nil {
			lsn, err := c.src.CurrentLSN(ctx)
			if err != nil {
				return err
			}
			if err := c.opts.WaitApplied(ctx, lsn); err != nil {
				return err
			}
		}
		dst, err := c.dst.Rows(ctx, c.t, false, proto.KeyRange{})
		if err != nil {
			return err
		}
		second, err := c.src.Rows(ctx, c.t, false, proto.KeyRange{})
		if err != nil {
			return err
		}
		c.res.BytesRead += rowBytes(first) + rowBytes(dst) + rowBytes(second)
		before := map[string]int64{}
		for _, r := range first {
			before[r.Hash] = r.Count
		}
		pending = 0
		c.diffs, c.fixes = map[string]proto.VerifyDifference{}, map[string]proto.VerifyRow{}
		for h, e := range multisetDiff(second, dst) {
			if c.opts.WaitApplied != nil && before[h] != e.src {
				pending++
				continue
			}
			d := proto.VerifyDifference{Kind: proto.DiffMissing, Key: map[string]string{}, Count: e.src - e.dst}
			if e.dst > e.src {
				d.Kind, d.Count = proto.DiffExtra, e.dst-e.src
			}
			for i, col := range c.t.Columns {
				if v := e.values[i]; v != nil {
					d.Key[col] = *v
				} else {
					d.Key[col] = "NULL"
				}
			}
			c.diffs[h] = d
			c.fixes[h] = proto.VerifyRow{Hash: h, Values: e.values, Count: e.src - e.dst}
		}
	}
	c.res.Unsettled = int64(pending)
	return nil
}

// list puts the confirmed differences in the result, in key order, up
// to MaxListed.
func (c *comparer) list() {
	for _, k := range slices.Sorted(maps.Keys(c.diffs)) {
		if len(c.res.Differences) >= c.opts.MaxListed {
			c.res.More++
			continue
		}
		c.res.Differences = append(c.res.Differences, c.diffs[k])
	}
}

// repair writes the source's rows over the differing keys, then checks
// those keys again: what still differs is what is listed.
func (c *comparer) repair(ctx context.Context, r apply.Repairer) error {
	if r == nil {
		return fmt.Errorf("this destination cannot be repaired by sluice verify")
	}
	if c.t.Keyless() {
		rows := make([]proto.VerifyRow, 0, len(c.fixes))
		for _, h := range slices.Sorted(maps.Keys(c.fixes)) {
			rows = append(rows, c.fixes[h])
		}
		n, err := r.RepairKeyless(ctx, c.opts.Task, c.t, rows)
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		c.res.Repaired = int64(n)
		found := c.diffs
		if err := c.settleKeyless(ctx); err != nil {
			return err
		}
		c.res.Remaining = int64(len(c.diffs))
		c.diffs = found
		return nil
	}
	keys := make(map[string][]string, len(c.diffs))
	for k := range c.diffs {
		keys[k] = c.candidates[k]
	}
	n, err := r.Repair(ctx, c.opts.Task, c.t, keysOf(keys), func(ctx context.Context) (*apply.SourceRows, error) {
		read, err := c.src.ReadKeys(ctx, c.t, keysOf(keys))
		if err != nil {
			return nil, err
		}
		return &apply.SourceRows{Rows: read.Raw, LSN: read.LSN}, nil
	})
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	c.res.Repaired = int64(n)
	found := c.diffs
	c.diffs = map[string]proto.VerifyDifference{}
	c.candidates = keys
	if err := c.settle(ctx); err != nil {
		return err
	}
	// The differences found are listed; those still there after the
	// repair are counted.
	c.res.Remaining = int64(len(c.diffs))
	c.diffs = found
	return nil
}
