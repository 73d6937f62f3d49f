package proto

import (
	"fmt"
	"math"
)

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// String formats the LSN as PostgreSQL does ("16/B374D848").
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN parses PostgreSQL's "X/Y" form.
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("bad LSN %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// Position orders changes: the commit LSN of the source transaction, then
// the index of the change within it. Positions increase per table, and the
// destination stores the last one applied per (task, table).
type Position struct {
	LSN LSN    `json:"lsn"`
	Idx uint32 `json:"idx"`
}

// EndOf is the position after every change of the transaction that
// committed at lsn: a table copied in a snapshot taken at lsn starts here.
func EndOf(lsn LSN) Position { return Position{LSN: lsn, Idx: math.MaxUint32} }

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.LSN < q.LSN || (p.LSN == q.LSN && p.Idx < q.Idx)
}

// IsZero reports whether p is the zero position (nothing applied yet).
func (p Position) IsZero() bool { return p.LSN == 0 && p.Idx == 0 }

func (p Position) String() string { return fmt.Sprintf("%s#%d", p.LSN, p.Idx) }
