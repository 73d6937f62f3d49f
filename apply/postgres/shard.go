package postgres

import (
	"context"
	"encoding/binary"
	"hash/fnv"

	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// Sharded apply. A single table's changes are one ordered stream, and one
// session applying them keeps one destination backend, and so one core,
// busy. Changes to different keys commute, so a batch's rows are split by
// a hash of their destination primary key into shards, each written by its
// own session in its own transaction together with the shard's position:
// exactly once per shard, so exactly once per row, since a key always
// falls in the same shard. A batch with a change that spans shards (a key
// change from one shard to another, a TRUNCATE), a table without a key or
// with other unique constraints (whose checks would see the shards' rows
// in flight), or a destination that runs foreign-key checks (no replica
// mode) is written in one transaction that advances every shard.

// plan maps each segment onto its destination table and drops the rows
// its shard has already applied (after a crash, one shard can be ahead of
// another).
func (s *Sink) plan(ctx context.Context, ch *apply.Changes) ([]plannedSegment, error) {
	out := make([]plannedSegment, 0, len(ch.Segments))
	if len(ch.Segments) > 1 {
		tables := make([]proto.TableID, len(ch.Segments))
		for i, seg := range ch.Segments {
			tables[i] = seg.Table
		}
		s.preloadMetas(ctx, s.pool, tables)
	}
	for _, seg := range ch.Segments {
		m, err := s.meta(ctx, s.pool, seg.Table)
		if err != nil {
			return nil, err
		}
		plan, err := planSegment(m, seg.Table, seg.Columns)
		if err != nil {
			s.forgetTable(seg.Table)
			return nil, err
		}
		floors := s.shardFloors(seg.Table)
		applied := func(r *proto.Row) bool {
			h, _ := s.shardOf(plan, r)
			return !floors[h].Less(r.Pos)
		}
		// Usually no row is filtered: copy the rows only when one is.
		rows := seg.Rows
		for i := range rows {
			if applied(&rows[i]) {
				kept := append(make([]proto.Row, 0, len(rows)), rows[:i]...)
				for j := i + 1; j < len(rows); j++ {
					if !applied(&rows[j]) {
						kept = append(kept, rows[j])
					}
				}
				rows = kept
				break
			}
		}
		filtered := *seg
		filtered.Rows = rows
		out = append(out, plannedSegment{Segment: &filtered, plan: plan})
	}
	return out, nil
}

// shardOf returns the shard of a row (its new key's, for an update) and
// whether the row stays within it.
func (s *Sink) shardOf(p *segmentPlan, r *proto.Row) (int, bool) {
	if s.shards == 1 || len(p.keyIdx) == 0 {
		return 0, true
	}
	switch r.Op {
	case proto.OpInsert:
		return s.keyShard(p, r.New, r.Old), true
	case proto.OpDelete:
		return s.keyShard(p, r.Old, proto.Tuple{}), true
	case proto.OpUpdate:
		h := s.keyShard(p, r.New, r.Old)
		if r.Old.Len() == 0 {
			return h, true
		}
		return h, s.keyShard(p, r.Old, proto.Tuple{}) == h
	}
	return 0, false // TRUNCATE touches every shard
}

// keyShard hashes the key columns of t (taking a key column left out as
// unchanged TOAST from fallback).
func (s *Sink) keyShard(p *segmentPlan, t, fallback proto.Tuple) int {
	h := fnv.New32a()
	var n [binary.MaxVarintLen64]byte
	for _, i := range p.keyIdx {
		v := t
		if i < t.Len() && t.Kinds[i] == proto.KindToast && i < fallback.Len() {
			v = fallback
		}
		if i >= v.Len() || v.Kinds[i] != proto.KindText {
			h.Write([]byte{0})
			continue
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v.Values[i])))])
		h.Write(v.Values[i])
	}
	return int(h.Sum32() % uint32(s.shards))
}

// minShardedRows is the fewest rows per table, on average, of a batch
// that is split into shards.
const minShardedRows = 256

// partition splits planned segments into shards, or returns nil when the
// batch must be (or is better) written in one transaction.
func (s *Sink) partition(segs []plannedSegment) [][]plannedSegment {
	if s.shards == 1 || !s.replicaMode.Load() {
		return nil
	}
	rows := 0
	for _, seg := range segs {
		rows += len(seg.Rows)
	}
	if rows < minShardedRows*len(segs) {
		// Few rows per table: sharding would double the statements, each
		// costing the destination more than its rows.
		return nil
	}
	shards := make([][]plannedSegment, s.shards)
	var of []int // each row's shard
	for _, seg := range segs {
		if !seg.plan.shardable {
			return nil
		}
		of = of[:0]
		counts := make([]int, s.shards)
		for i := range seg.Rows {
			h, within := s.shardOf(seg.plan, &seg.Rows[i])
			if !within {
				return nil
			}
			of = append(of, h)
			counts[h]++
		}
		split := make([]*apply.Segment, s.shards)
		for i := range seg.Rows {
			h := of[i]
			if split[h] == nil {
				split[h] = &apply.Segment{Table: seg.Table, Columns: seg.Columns, Identity: seg.Identity, Rows: make([]proto.Row, 0, counts[h])}
			}
			split[h].Rows = append(split[h].Rows, seg.Rows[i])
		}
		for h, part := range split {
			if part != nil {
				shards[h] = append(shards[h], plannedSegment{Segment: part, plan: seg.plan})
			}
		}
	}
	return shards
}

// applySharded writes each shard in its own session and transaction, all
// at once. Every shard advances to the batch's positions, those without
// rows too, so the lowest shard position stays close to the others.
func (s *Sink) applySharded(ctx context.Context, ch *apply.Changes, shards [][]plannedSegment) error {
	g, gctx := errgroup.WithContext(ctx)
	for h, segs := range shards {
		positions := make([]shardPosition, 0, len(ch.Positions))
		for k, p := range ch.Positions {
			positions = append(positions, shardPosition{table: ch.Tables[k], shard: h, pos: p})
		}
		// A panic in a shard fails the batch (and cancels the other
		// shards' transactions): each shard's rows and position commit
		// together, so the retried batch skips what did commit.
		g.Go(safe.Go("apply/shard", func() error { return s.applyWithRetry(gctx, ch.Task, ch.Epoch, segs, positions) }))
	}
	return g.Wait()
}
