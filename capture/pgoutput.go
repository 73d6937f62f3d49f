package capture

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// A decoder for pgoutput protocol version 1 (PostgreSQL's built-in logical
// decoding output plugin), text format. pglogrepl parses the message
// framing and the rare messages; row messages, the hot path, are decoded
// here without copying values: they alias the WAL message, which the
// caller owns (pglogrepl's TupleData copies every value byte by byte).

// pgEpochUnixMicros is 2000-01-01 in Unix microseconds.
const pgEpochUnixMicros = 946684800000000

var errShort = errors.New("pgoutput: message too short")

// relation is a table as the Relation message described it.
type relation struct {
	id       uint32
	table    proto.TableID
	columns  []proto.Column
	identity byte
	ops      proto.OpSet // synced operations (Config.Operations)
	filter   *relFilter  // the row filter, nil for none (filter.go)
	// bufHint is the size of the table's last batch: its next buffer
	// starts that big instead of growing there again.
	bufHint int
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) byte1() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.err = errShort
	return ""
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// tuple decodes TupleData into t, reusing its slices. Values alias the
// message.
func (r *reader) tuple(t *proto.Tuple) {
	n := int(r.u16())
	if r.err != nil {
		*t = proto.Tuple{}
		return
	}
	if cap(t.Kinds) < n {
		t.Kinds, t.Values = make([]byte, n), make([][]byte, n)
	}
	t.Kinds, t.Values = t.Kinds[:n], t.Values[:n]
	for i := 0; i < n; i++ {
		t.Values[i] = nil
		k := r.byte1()
		switch k {
		case proto.KindNull, proto.KindToast:
		case proto.KindText:
			t.Values[i] = r.bytes(int(r.u32()))
		case 'b':
			r.err = errors.New("pgoutput: binary tuple data; Sluice requests text format")
		default:
			if r.err == nil {
				r.err = fmt.Errorf("pgoutput: unknown tuple data kind %q", k)
			}
		}
		t.Kinds[i] = k
	}
}

type beginMsg struct {
	finalLSN     proto.LSN
	commitTimeUS int64
	xid          uint32
}

func parseBegin(data []byte) (beginMsg, error) {
	r := reader{b: data[1:]}
	m := beginMsg{finalLSN: proto.LSN(r.u64()), commitTimeUS: int64(r.u64()) + pgEpochUnixMicros, xid: r.u32()}
	return m, r.err
}

// parseOrigin reads an Origin message: the origin's commit LSN, then its
// name.
func parseOrigin(data []byte) (string, error) {
	r := reader{b: data[1:]}
	r.u64()
	name := r.str()
	return name, r.err
}

type commitMsg struct {
	commitLSN proto.LSN
	endLSN    proto.LSN
}

func parseCommit(data []byte) (commitMsg, error) {
	r := reader{b: data[1:]}
	r.byte1() // flags, unused
	m := commitMsg{commitLSN: proto.LSN(r.u64()), endLSN: proto.LSN(r.u64())}
	r.u64() // commit time, known from Begin
	return m, r.err
}

func parseRelation(data []byte) (*relation, error) {
	r := reader{b: data[1:]}
	rel := &relation{id: r.u32()}
	rel.table.Schema = r.str()
	rel.table.Name = r.str()
	rel.identity = r.byte1()
	n := int(r.u16())
	if r.err != nil {
		return nil, r.err
	}
	rel.columns = make([]proto.Column, n)
	for i := range rel.columns {
		flags := r.byte1()
		rel.columns[i] = proto.Column{Name: r.str(), TypeOID: r.u32(), TypeMod: int32(r.u32()), Key: flags&1 != 0}
	}
	return rel, r.err
}

// rowMsg is an insert, update or delete.
type rowMsg struct {
	relID uint32
	op    proto.Op
	new   proto.Tuple
	old   proto.Tuple
}

// parseRow decodes a row message into the scratch tuples newT and oldT,
// whose slices it reuses; the returned tuples share them.
func parseRow(data []byte, newT, oldT *proto.Tuple) (rowMsg, error) {
	r := reader{b: data[1:]}
	m := rowMsg{relID: r.u32()}
	switch data[0] {
	case 'I':
		m.op = proto.OpInsert
		if k := r.byte1(); k != 'N' && r.err == nil {
			return m, fmt.Errorf("pgoutput: insert: expected 'N', got %q", k)
		}
		r.tuple(newT)
		m.new = *newT
	case 'U':
		m.op = proto.OpUpdate
		k := r.byte1()
		if k == 'K' || k == 'O' {
			r.tuple(oldT)
			m.old = *oldT
			k = r.byte1()
		}
		if k != 'N' && r.err == nil {
			return m, fmt.Errorf("pgoutput: update: expected 'N', got %q", k)
		}
		r.tuple(newT)
		m.new = *newT
	case 'D':
		m.op = proto.OpDelete
		if k := r.byte1(); k != 'K' && k != 'O' && r.err == nil {
			return m, fmt.Errorf("pgoutput: delete: expected 'K' or 'O', got %q", k)
		}
		r.tuple(oldT)
		m.old = *oldT
	}
	return m, r.err
}

func parseTruncate(data []byte) ([]uint32, error) {
	r := reader{b: data[1:]}
	n := int(r.u32())
	r.byte1() // options (cascade, restart identity): the listed relations are what was truncated
	if r.err != nil {
		return nil, r.err
	}
	if n < 0 || n > len(r.b)/4 {
		return nil, errShort // not n relation ids: do not allocate for them
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = r.u32()
	}
	return ids, r.err
}
