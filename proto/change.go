package proto

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Op is the kind of a change.
type Op uint8

const (
	OpInsert   Op = 1
	OpUpdate   Op = 2
	OpDelete   Op = 3
	OpTruncate Op = 4
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpTruncate:
		return "truncate"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Value kinds in a Tuple, as pgoutput names them.
const (
	KindNull  byte = 'n'
	KindToast byte = 'u' // unchanged TOAST value: keep what the destination has
	KindText  byte = 't'
)

// Replica identities (pg_class.relreplident).
const (
	IdentityDefault = 'd'
	IdentityFull    = 'f'
	IdentityIndex   = 'i'
	IdentityNothing = 'n'
)

// Column describes a column of a relation in the change stream.
type Column struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	Key     bool
}

// Tuple holds one row's values in PostgreSQL's text form. Kinds has one
// entry per column; Values[i] is meaningful only when Kinds[i] is KindText.
// After DecodeBatch, Values alias the message buffer.
type Tuple struct {
	Kinds  []byte
	Values [][]byte
}

// Len is the number of columns, zero for an absent tuple.
func (t Tuple) Len() int { return len(t.Kinds) }

// Size approximates the bytes the tuple occupies.
func (t Tuple) Size() int {
	n := len(t.Kinds)
	for i, k := range t.Kinds {
		if k == KindText {
			n += len(t.Values[i])
		}
	}
	return n
}

// Row is one change.
type Row struct {
	Op           Op
	Pos          Position
	Xid          uint32
	CommitTimeUS int64
	New          Tuple
	Old          Tuple
}

// Batch is the rows of one table, in position order, carried by one
// JetStream message.
type Batch struct {
	Table           TableID
	Columns         []Column
	ReplicaIdentity byte
	Rows            []Row
	// Part, PartNo and Parts: this message is one part of a batch too large
	// for one message (see SplitBatch); Rows is then empty.
	Part   []byte
	PartNo uint32
	Parts  uint32
	// DDL, when set, makes this message a schema change of Table (an
	// EncodeDDL DDLEvent) instead of rows.
	DDL []byte
	// Members, in a pack (pack.go), are the batches of several tables.
	Members []Batch
}

// IsBoundary reports whether the message is a transaction boundary
// marker: a heartbeat-subject batch without rows, which the capture
// publishes where every row committed before it is in the stream and
// none after (capture.publishBoundary).
func (b *Batch) IsBoundary() bool {
	return b.Table == HeartbeatTable && len(b.Rows) == 0 && b.Parts == 0 && len(b.DDL) == 0
}

// MsgID identifies the batch for JetStream's duplicate detection: the table
// and the first and last positions. Republishing the same rows gives the
// same id; a batch cut differently gets a different id and its repeated
// rows are skipped by position at the destination.
func (b *Batch) MsgID() string {
	if len(b.Rows) == 0 {
		return ""
	}
	return BatchMsgID(b.Table, b.Rows[0].Pos, b.Rows[len(b.Rows)-1].Pos)
}

// BatchMsgID is the message id of a batch of t's rows from first to last.
func BatchMsgID(t TableID, first, last Position) string {
	return fmt.Sprintf("%s.%s:%X.%d:%X.%d", t.Schema, t.Name, uint64(first.LSN), first.Idx, uint64(last.LSN), last.Idx)
}

// Field numbers, as in change.proto.
const (
	fBatchSchema   = 1
	fBatchTable    = 2
	fBatchColumns  = 3
	fBatchIdentity = 4
	fBatchRows     = 5
	fBatchPart     = 6
	fBatchPartNo   = 7
	fBatchParts    = 8
	fBatchDDL      = 9
	fBatchMembers  = 10

	fColName    = 1
	fColTypeOID = 2
	fColTypeMod = 3
	fColKey     = 4

	fRowOp     = 1
	fRowLSN    = 2
	fRowIdx    = 3
	fRowXid    = 4
	fRowTimeUS = 5
	fRowNew    = 6
	fRowOld    = 7

	fTupleKinds  = 1
	fTupleValues = 2
)

// Encode appends the batch's wire form to buf.
func (b *Batch) Encode(buf []byte) []byte {
	buf = AppendBatchHeader(buf, b.Table, b.Columns, b.ReplicaIdentity)
	for i := range b.Rows {
		buf = AppendRow(buf, &b.Rows[i])
	}
	return buf
}

// AppendBatchHeader appends a batch's table description. Followed by rows
// from AppendRow it forms a Batch message: capture encodes each row as it
// is decoded and keeps only bytes, never the row, while a batch fills.
func AppendBatchHeader(buf []byte, t TableID, cols []Column, identity byte) []byte {
	buf = appendString(buf, fBatchSchema, t.Schema)
	buf = appendString(buf, fBatchTable, t.Name)
	for i := range cols {
		c := &cols[i]
		buf = protowire.AppendTag(buf, fBatchColumns, protowire.BytesType)
		buf = appendLenPrefixed(buf, func(cb []byte) []byte {
			cb = appendString(cb, fColName, c.Name)
			cb = appendVarint(cb, fColTypeOID, uint64(c.TypeOID))
			cb = appendVarint(cb, fColTypeMod, uint64(int64(c.TypeMod)))
			if c.Key {
				cb = appendVarint(cb, fColKey, 1)
			}
			return cb
		})
	}
	return appendVarint(buf, fBatchIdentity, uint64(identity))
}

// AppendDDLBatch appends a message carrying a schema change of t.
func AppendDDLBatch(buf []byte, t TableID, ev *DDLEvent) ([]byte, error) {
	body, err := EncodeDDL(ev)
	if err != nil {
		return nil, err
	}
	return appendDDLBody(buf, t, body), nil
}

// appendDDLBody encodes a batch of t whose DDL field is body.
func appendDDLBody(buf []byte, t TableID, body []byte) []byte {
	buf = appendString(buf, fBatchSchema, t.Schema)
	buf = appendString(buf, fBatchTable, t.Name)
	buf = protowire.AppendTag(buf, fBatchDDL, protowire.BytesType)
	return protowire.AppendBytes(buf, body)
}

// SplitBatch cuts an encoded batch into messages of at most about max
// bytes, each naming the table (so it is routed like the whole) and
// carrying one part.
func SplitBatch(t TableID, encoded []byte, max int) [][]byte {
	n := (len(encoded) + max - 1) / max
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		part := encoded[i*max : min((i+1)*max, len(encoded))]
		var m []byte
		m = appendString(m, fBatchSchema, t.Schema)
		m = appendString(m, fBatchTable, t.Name)
		m = protowire.AppendTag(m, fBatchPart, protowire.BytesType)
		m = protowire.AppendBytes(m, part)
		m = appendVarint(m, fBatchPartNo, uint64(i))
		m = appendVarint(m, fBatchParts, uint64(n))
		out = append(out, m)
	}
	return out
}

// AppendRow appends one row of a batch. The lengths of the row and its
// tuples are computed first, so each is written once, in place (capture
// encodes every row it decodes: moving each body to close a length's
// gap was a large part of its time).
func AppendRow(buf []byte, r *Row) []byte {
	newSize, oldSize := r.New.encodedSize(), r.Old.encodedSize()
	buf = protowire.AppendTag(buf, fBatchRows, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(r.encodedSize(newSize, oldSize)))
	return r.encodeSized(buf, newSize, oldSize)
}

// encodeSized encodes the row whose tuples encode to newSize and oldSize
// bytes.
func (r *Row) encodeSized(buf []byte, newSize, oldSize int) []byte {
	buf = appendVarint(buf, fRowOp, uint64(r.Op))
	buf = appendVarint(buf, fRowLSN, uint64(r.Pos.LSN))
	buf = appendVarint(buf, fRowIdx, uint64(r.Pos.Idx))
	buf = appendVarint(buf, fRowXid, uint64(r.Xid))
	buf = appendVarint(buf, fRowTimeUS, uint64(r.CommitTimeUS))
	if r.New.Len() > 0 {
		buf = protowire.AppendTag(buf, fRowNew, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(newSize))
		buf = r.New.encode(buf)
	}
	if r.Old.Len() > 0 {
		buf = protowire.AppendTag(buf, fRowOld, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(oldSize))
		buf = r.Old.encode(buf)
	}
	return buf
}

// encodedSize is the length of the row's encoding, its tuples encoding
// to newSize and oldSize bytes.
func (r *Row) encodedSize(newSize, oldSize int) int {
	n := varintFieldSize(fRowOp, uint64(r.Op)) + varintFieldSize(fRowLSN, uint64(r.Pos.LSN)) +
		varintFieldSize(fRowIdx, uint64(r.Pos.Idx)) + varintFieldSize(fRowXid, uint64(r.Xid)) +
		varintFieldSize(fRowTimeUS, uint64(r.CommitTimeUS))
	if r.New.Len() > 0 {
		n += protowire.SizeTag(fRowNew) + protowire.SizeBytes(newSize)
	}
	if r.Old.Len() > 0 {
		n += protowire.SizeTag(fRowOld) + protowire.SizeBytes(oldSize)
	}
	return n
}

// varintFieldSize is what appendVarint writes for the field.
func varintFieldSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// encodedSize is the length of the tuple's encoding.
func (t Tuple) encodedSize() int {
	if len(t.Kinds) == 0 {
		return 0
	}
	n := protowire.SizeTag(fTupleKinds) + protowire.SizeBytes(len(t.Kinds))
	for i, k := range t.Kinds {
		if k == KindText {
			n += protowire.SizeTag(fTupleValues) + protowire.SizeBytes(len(t.Values[i]))
		}
	}
	return n
}

func (t Tuple) encode(buf []byte) []byte {
	buf = protowire.AppendTag(buf, fTupleKinds, protowire.BytesType)
	buf = protowire.AppendBytes(buf, t.Kinds)
	for i, k := range t.Kinds {
		if k == KindText {
			buf = protowire.AppendTag(buf, fTupleValues, protowire.BytesType)
			buf = protowire.AppendBytes(buf, t.Values[i])
		}
	}
	return buf
}

// appendLenPrefixed writes a length-delimited field body produced by f
// without encoding it twice: it reserves the largest varint the body can
// need, then closes the gap.
func appendLenPrefixed(buf []byte, f func([]byte) []byte) []byte {
	const reserve = 5 // bodies stay under 4 GiB
	start := len(buf)
	buf = append(buf, make([]byte, reserve)...)
	buf = f(buf)
	n := len(buf) - start - reserve
	var lenBuf [reserve]byte
	l := protowire.AppendVarint(lenBuf[:0], uint64(n))
	copy(buf[start:], l)
	if len(l) < reserve {
		copy(buf[start+len(l):], buf[start+reserve:])
		buf = buf[:len(buf)-(reserve-len(l))]
	}
	return buf
}

func appendString(buf []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return buf
	}
	buf = protowire.AppendTag(buf, num, protowire.BytesType)
	return protowire.AppendString(buf, s)
}

func appendVarint(buf []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return buf
	}
	buf = protowire.AppendTag(buf, num, protowire.VarintType)
	return protowire.AppendVarint(buf, v)
}

// ErrMalformed reports a message that is not a valid Batch.
var ErrMalformed = errors.New("malformed change batch")

// DecodeBatch parses a message. The returned rows' values alias data, which
// must not change while the batch is in use.
func DecodeBatch(data []byte) (*Batch, error) {
	b := &Batch{}
	var members [][]byte
	// The rows and their new values are allocated once for the batch:
	// counted first, then carved out of one slice each (the values when
	// the columns, which come first, are known).
	nrows := countRows(data)
	var slab [][]byte
	err := walk(data, func(num protowire.Number, typ protowire.Type, v uint64, body []byte) error {
		switch num {
		case fBatchSchema:
			b.Table.Schema = string(body)
		case fBatchTable:
			b.Table.Name = string(body)
		case fBatchColumns:
			var c Column
			if err := walk(body, func(num protowire.Number, _ protowire.Type, v uint64, body []byte) error {
				switch num {
				case fColName:
					c.Name = string(body)
				case fColTypeOID:
					c.TypeOID = uint32(v)
				case fColTypeMod:
					c.TypeMod = int32(int64(v))
				case fColKey:
					c.Key = v != 0
				}
				return nil
			}); err != nil {
				return err
			}
			b.Columns = append(b.Columns, c)
		case fBatchIdentity:
			b.ReplicaIdentity = byte(v)
		case fBatchRows:
			if b.Rows == nil {
				b.Rows = make([]Row, 0, nrows)
				slab = make([][]byte, nrows*len(b.Columns))
			}
			b.Rows = append(b.Rows, Row{})
			return b.Rows[len(b.Rows)-1].decode(body, &slab)
		case fBatchPart:
			b.Part = body
		case fBatchPartNo:
			b.PartNo = uint32(v)
		case fBatchParts:
			b.Parts = uint32(v)
		case fBatchDDL:
			b.DDL = body
		case fBatchMembers:
			members = append(members, body)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if members != nil {
		if err := b.decodeMembers(members); err != nil {
			return nil, err
		}
		return b, nil
	}
	for i := range b.Rows {
		r := &b.Rows[i]
		if r.New.Len() != 0 && r.New.Len() != len(b.Columns) || r.Old.Len() != 0 && r.Old.Len() != len(b.Columns) {
			return nil, fmt.Errorf("%w: row %d has a tuple of the wrong width", ErrMalformed, i)
		}
	}
	return b, nil
}

// countRows counts the rows of an encoded batch, reading only its
// fields' tags and lengths.
func countRows(data []byte) int {
	n := 0
	for len(data) > 0 {
		num, typ, l := protowire.ConsumeTag(data)
		if l < 0 {
			return n
		}
		data = data[l:]
		l = protowire.ConsumeFieldValue(num, typ, data)
		if l < 0 {
			return n
		}
		data = data[l:]
		if num == fBatchRows && typ == protowire.BytesType {
			n++
		}
	}
	return n
}

// decode reads a row; its new values take their slice from slab while
// it has room.
func (r *Row) decode(data []byte, slab *[][]byte) error {
	return walk(data, func(num protowire.Number, _ protowire.Type, v uint64, body []byte) error {
		switch num {
		case fRowOp:
			r.Op = Op(v)
		case fRowLSN:
			r.Pos.LSN = LSN(v)
		case fRowIdx:
			r.Pos.Idx = uint32(v)
		case fRowXid:
			r.Xid = uint32(v)
		case fRowTimeUS:
			r.CommitTimeUS = int64(v)
		case fRowNew:
			return r.New.decode(body, slab)
		case fRowOld:
			return r.Old.decode(body, nil)
		}
		return nil
	})
}

func (t *Tuple) decode(data []byte, slab *[][]byte) error {
	next := 0
	err := walk(data, func(num protowire.Number, _ protowire.Type, _ uint64, body []byte) error {
		switch num {
		case fTupleKinds:
			// A second kinds field starts the values over (protobuf's
			// last-one-wins), so no text column is left without one.
			t.Kinds = body
			if n := len(body); slab != nil && len(*slab) >= n {
				t.Values = (*slab)[:n:n]
				clear(t.Values)
				*slab = (*slab)[n:]
			} else {
				t.Values = make([][]byte, n)
			}
			next = 0
		case fTupleValues:
			for next < len(t.Kinds) && t.Kinds[next] != KindText {
				next++
			}
			if next >= len(t.Kinds) {
				return fmt.Errorf("%w: more values than text columns", ErrMalformed)
			}
			t.Values[next] = body
			next++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for ; next < len(t.Kinds); next++ {
		if t.Kinds[next] == KindText {
			return fmt.Errorf("%w: a text column has no value", ErrMalformed)
		}
	}
	return nil
}

// walk calls f for each field of a protobuf message: v for varints, body
// for length-delimited fields. Other wire types are skipped.
func walk(data []byte, f func(num protowire.Number, typ protowire.Type, v uint64, body []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		data = data[n:]
		var v uint64
		var body []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(data)
		case protowire.BytesType:
			body, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
			typ = -1
		}
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		data = data[n:]
		if typ < 0 {
			continue
		}
		if err := f(num, typ, v, body); err != nil {
			return err
		}
	}
	return nil
}
