package apply

import (
	"sort"

	"github.com/sluicedb/sluice/proto"
)

// TableCount is what a worker applied of one table: changes by
// operation and the last one's position.
type TableCount struct {
	Table                            string // source name (schema.table)
	Insert, Update, Delete, Truncate int64
	Last                             proto.Position
}

// countTables adds an applied batch's changes to its tables' counts,
// under their source names (sources: renamed tables' source names).
func (s *WorkerStats) countTables(ch *Changes, sources map[proto.TableID]proto.TableID) {
	s.tablesMu.Lock()
	defer s.tablesMu.Unlock()
	if s.tables == nil {
		s.tables = map[proto.TableID]*TableCount{}
	}
	for _, seg := range ch.Segments {
		src, ok := sources[seg.Table]
		if !ok {
			src = seg.Table
		}
		c := s.tables[src]
		if c == nil {
			c = &TableCount{Table: src.String()}
			s.tables[src] = c
		}
		for i := range seg.Rows {
			r := &seg.Rows[i]
			switch r.Op {
			case proto.OpInsert:
				c.Insert++
			case proto.OpUpdate:
				c.Update++
			case proto.OpDelete:
				c.Delete++
			case proto.OpTruncate:
				c.Truncate++
			}
			if c.Last.Less(r.Pos) {
				c.Last = r.Pos
			}
		}
	}
}

// Tables returns the counts of every table applied so far, by name.
func (s *WorkerStats) Tables() []TableCount {
	s.tablesMu.Lock()
	defer s.tablesMu.Unlock()
	out := make([]TableCount, 0, len(s.tables))
	for _, c := range s.tables {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out
}
