package proto

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Packs. A transaction spread over many tables leaves a few rows in each
// table's batch; one message per table would make the stream, its
// consumers and the apply pay per message for a handful of rows. The
// capture therefore packs the small batches of the tables one apply group
// reads into one message on the group's pack subject, which that group's
// consumer (and no other) filters besides its tables' subjects. A pack is
// a Batch of PackTable(group) whose members are whole encoded Batches,
// each of one table; a table's rows are in one message either way, so
// every table's changes stay in order in the stream.
//
// A pack also carries one row that no column describes: a Sluice from
// before packs decodes it as a malformed batch and stops, instead of
// taking the pack for an empty batch and acknowledging its rows unseen.

// packPrefix starts the table name of a pack, in the reserved schema.
const packPrefix = "pack-"

// PackTable names the pack of an apply group.
func PackTable(group int) TableID {
	return TableID{Schema: ReservedSchema, Name: fmt.Sprintf("%s%d", packPrefix, group)}
}

// PackSubject is the subject of an apply group's packs.
func PackSubject(task string, group int) string { return Subject(task, PackTable(group)) }

// IsPackSubject reports whether subject is one of the task's pack subjects.
func IsPackSubject(task, subject string) bool {
	return strings.HasPrefix(subject, Subject(task, TableID{Schema: ReservedSchema, Name: packPrefix}))
}

// packGuard is the row of every pack that older decoders refuse: a tuple
// of one column in a batch of none.
var packGuard = Row{New: Tuple{Kinds: []byte{KindNull}}}

// AppendPackHeader starts a pack of subject's group: the pack's name, then
// its guard row. Members follow, each added with AppendPackMember.
func AppendPackHeader(buf []byte, t TableID) []byte {
	buf = appendString(buf, fBatchSchema, t.Schema)
	buf = appendString(buf, fBatchTable, t.Name)
	return AppendRow(buf, &packGuard)
}

// AppendPackMember adds one table's encoded batch (AppendBatchHeader and
// AppendRow) to a pack.
func AppendPackMember(buf, member []byte) []byte {
	buf = protowire.AppendTag(buf, fBatchMembers, protowire.BytesType)
	return protowire.AppendBytes(buf, member)
}

// decodeMembers decodes the members of a pack into b.Members.
func (b *Batch) decodeMembers(members [][]byte) error {
	if len(b.Columns) != 0 || len(b.Rows) != 1 || b.Parts != 0 || len(b.DDL) != 0 {
		return fmt.Errorf("%w: a pack holds only members", ErrMalformed)
	}
	b.Rows = nil // the guard
	b.Members = make([]Batch, len(members))
	for i, m := range members {
		mb, err := DecodeBatch(m)
		if err != nil {
			return fmt.Errorf("pack member %d: %w", i, err)
		}
		if len(mb.Members) > 0 || mb.Parts > 0 || len(mb.DDL) > 0 {
			return fmt.Errorf("%w: pack member %d is not a batch of rows", ErrMalformed, i)
		}
		b.Members[i] = *mb
	}
	return nil
}
