package scheduler

import (
	"slices"
	"strings"
)

// rebalance makes at most budget moves that only improve balance. Pools take
// turns, one move each per round, so a busy pool does not starve the others
// of the budget.
func (r *run) rebalance(budget int) {
	var names []string
	for name, p := range r.pools {
		if len(p.eligible) > 1 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	// A pool that found no move will find none later in this call either:
	// only its own moves change it.
	settled := make(map[string]bool, len(names))
	for budget > 0 {
		progressed := false
		for _, name := range names {
			if budget == 0 || settled[name] {
				continue
			}
			if r.rebalanceStep(r.pools[name]) {
				budget--
				progressed = true
			} else {
				settled[name] = true
			}
		}
		if !progressed {
			return
		}
	}
}

// rebalanceStep makes the first balancing move it finds in the pool, if any:
// from the fullest node that has a unit worth moving, that unit (apply units
// before the capture, then the highest unit), to the best other node for it.
func (r *run) rebalanceStep(p *poolView) bool {
	for _, src := range byFillDesc(p.eligible) {
		for _, u := range r.movable(src) {
			dst := r.bestNode(u, src)
			if dst == nil || !narrows(src, dst, u.Load) {
				continue
			}
			r.unassign(u, src)
			r.assign(u, dst)
			r.record(Move{Unit: u.ID, From: src.ID, To: dst.ID, Reason: "rebalance onto " + dst.ID})
			return true
		}
	}
	return false
}

// narrows reports whether moving load u from src to dst strictly narrows the
// fill gap between them, |Ls/Ss - Ld/Sd|. That holds exactly when
// (2Ls-u)/Ss > (2Ld+u)/Sd, which is also exactly when the move lowers
// Σ L²/S: since every move lowers that sum, repeated calls converge and a
// balanced placement stays put. With equal sizes it reads Ls - Ld > u:
// the fuller node exceeds the emptier one by more than the unit's load.
func narrows(src, dst *nodeView, u int) bool {
	return (2*int64(src.load)-int64(u))*dst.size > (2*int64(dst.load)+int64(u))*src.size
}

// byFillDesc returns the nodes ordered by fill L/S, fullest first, ties by
// ID.
func byFillDesc(nodes []*nodeView) []*nodeView {
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b *nodeView) int {
		fa, fb := int64(a.load)*b.size, int64(b.load)*a.size
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// movable lists the units on n that a rebalance may move, most movable
// first: apply units, then copies (a moved copy redoes the chunk it was
// in), then captures (moving a capture reconnects a replication slot and
// restarts a full sync in progress), each kind from the highest unit down.
// Units already moved in this call are left alone.
func (r *run) movable(n *nodeView) []Unit {
	var applies, copies, captures []Unit
	for i := len(r.units) - 1; i >= 0; i-- {
		u := r.units[i]
		if r.where[u.ID] != n || r.moved[u.ID] {
			continue
		}
		switch u.ID.Kind {
		case KindCapture:
			captures = append(captures, u)
		case KindCopy:
			copies = append(copies, u)
		default:
			applies = append(applies, u)
		}
	}
	return append(append(applies, copies...), captures...)
}
