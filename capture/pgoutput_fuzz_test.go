package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// The pgoutput decoder reads whatever the replication connection delivers
// (the source server, or anything between it and Sluice). It must not
// panic on any message, in any order: with no relation described yet, and
// after realistic Begin and Relation messages, so that the row decoding is
// reached. A row it accepts must also make a batch that proto.DecodeBatch
// reads back as the same row, as the apply side will.
//
// fuzzSession mirrors sessionState.handle (capture.go) with the
// publishing and the catalog lookups left out.
func FuzzPgoutput(f *testing.F) {
	items := pgRelation(16384, "public", "items", proto.IdentityDefault,
		pgCol{"id", 23, -1, true}, pgCol{"note", 25, -1, false}, pgCol{"big", 25, -1, false}, pgCol{"n", 1700, 655366, false})
	full := pgRelation(16390, "Sales", "Line Items", proto.IdentityFull,
		pgCol{"a", 20, -1, true}, pgCol{"b", 1043, 36, true})
	begin := pgBegin(0x16B374D848, 1700000000000000-pgEpochUnixMicros, 771)
	commit := pgCommit(0x16B374D848, 0x16B374D900)
	insert := pgInsert(16384, pgTuple{pgText("1"), pgText("one"), pgText("xxxxxxxxxxxxxxxxxxxx"), pgText("1.50")})
	insertNulls := pgInsert(16384, pgTuple{pgText("2"), pgNull, pgNull, pgNull})
	update := pgUpdate(16384, 0, nil, pgTuple{pgText("1"), pgText("uno"), pgToast, pgText("1.50")})
	updateKey := pgUpdate(16384, 'K', pgTuple{pgText("2"), pgNull, pgNull, pgNull}, pgTuple{pgText("20"), pgNull, pgText("small"), pgNull})
	updateOld := pgUpdate(16390, 'O', pgTuple{pgText("1"), pgText("x")}, pgTuple{pgText("1"), pgText("y")})
	del := pgDelete(16384, 'K', pgTuple{pgText("3"), pgNull, pgNull, pgNull})
	delOld := pgDelete(16390, 'O', pgTuple{pgText("1"), pgText("y")})
	truncate := pgTruncate(2, 16384, 16390)
	ddlLog := pgRelation(16400, proto.ReservedSchema, "ddl_log", proto.IdentityDefault,
		pgCol{"task", 25, -1, true}, pgCol{"id", 20, -1, true}, pgCol{"tag", 25, -1, false}, pgCol{"query", 25, -1, false},
		pgCol{"old_shape", 3802, -1, false}, pgCol{"new_shape", 3802, -1, false})
	ddlRow := pgInsert(16400, pgTuple{pgText("t1"), pgText("1"), pgText("ALTER TABLE"), pgText("ALTER TABLE items ADD c int"),
		pgText(`{"schema":"public","name":"items","columns":[{"num":1,"name":"id","type":"integer"}],"identity":"d"}`),
		pgText(`{"schema":"public","name":"items","columns":[{"num":1,"name":"id","type":"integer"},{"num":2,"name":"c","type":"integer"}],"identity":"d"}`)})
	origin := append([]byte{'O'}, be64(0x16B374D000)...)
	origin = append(origin, "node_a\x00"...)
	typ := append(append([]byte{'Y'}, be32(16500)...), "public\x00mood\x00"...)
	for _, pair := range [][2][]byte{
		{items, insert},
		{begin, insert},
		{insert, insertNulls},
		{update, updateKey},
		{full, updateOld},
		{del, delOld},
		{truncate, commit},
		{ddlLog, ddlRow},
		{ddlRow, commit},
		{origin, typ},
		{begin, truncate},
		{items, nil},
		{nil, nil},
		{{'I'}, {'R'}},
		{pgTruncate(0xFFFFFFFF), nil},
	} {
		f.Add(pair[0], pair[1])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fresh := newFuzzSession()
		_ = fresh.handle(t, first)
		_ = fresh.handle(t, second)

		seeded := newFuzzSession()
		for _, m := range [][]byte{begin, items, full, ddlLog} {
			if err := seeded.handle(t, m); err != nil {
				t.Fatalf("seed message: %v", err)
			}
		}
		_ = seeded.handle(t, first)
		_ = seeded.handle(t, second)
	})
}

// fuzzSession is the decoding half of a capture session.
type fuzzSession struct {
	relations  map[uint32]*relation
	inTx       bool
	begin      beginMsg
	idx        uint32
	lastCommit proto.LSN
	newT, oldT proto.Tuple
}

func newFuzzSession() *fuzzSession { return &fuzzSession{relations: map[uint32]*relation{}} }

func (s *fuzzSession) handle(t *testing.T, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case 'B':
		b, err := parseBegin(data)
		if err != nil {
			return err
		}
		s.inTx, s.begin, s.idx = true, b, 0
	case 'C':
		cm, err := parseCommit(data)
		if err != nil {
			return err
		}
		s.inTx, s.lastCommit = false, cm.endLSN
	case 'R':
		rel, err := parseRelation(data)
		if err != nil {
			return err
		}
		rel.ops = proto.AllOps
		s.relations[rel.id] = rel
	case 'I', 'U', 'D':
		m, err := parseRow(data, &s.newT, &s.oldT)
		if err != nil {
			return err
		}
		for _, tup := range []proto.Tuple{m.new, m.old} {
			if len(tup.Values) != len(tup.Kinds) {
				t.Fatalf("tuple of %d kinds has %d values", len(tup.Kinds), len(tup.Values))
			}
		}
		rel := s.relations[m.relID]
		if rel == nil {
			return fmt.Errorf("unknown relation %d", m.relID)
		}
		if rel.table == DDLLogTable {
			if m.op != proto.OpInsert {
				return nil
			}
			if !s.inTx {
				return fmt.Errorf("change outside a transaction")
			}
			s.idx++
			_, _, err := ddlEvent(rel.columns, m.new, proto.Position{LSN: s.begin.finalLSN, Idx: s.idx})
			return err
		}
		return s.addRow(t, rel, proto.Row{Op: m.op, New: m.new, Old: m.old})
	case 'T':
		ids, err := parseTruncate(data)
		if err != nil {
			return err
		}
		if n := binary.BigEndian.Uint32(data[1:]); uint64(len(ids)) != uint64(n) {
			t.Fatalf("truncate of %d relations gave %d", n, len(ids))
		}
		for _, id := range ids {
			rel := s.relations[id]
			if rel == nil {
				return fmt.Errorf("truncate of unknown relation %d", id)
			}
			if err := s.addRow(t, rel, proto.Row{Op: proto.OpTruncate}); err != nil {
				return err
			}
		}
	}
	return nil
}

// addRow makes the checks of sessionState.addRow, then encodes the row as
// it does and decodes the batch as the apply side does.
func (s *fuzzSession) addRow(t *testing.T, rel *relation, row proto.Row) error {
	if !s.inTx {
		return fmt.Errorf("change outside a transaction")
	}
	row.Pos = proto.Position{LSN: s.begin.finalLSN, Idx: s.idx}
	row.Xid = s.begin.xid
	row.CommitTimeUS = s.begin.commitTimeUS
	s.idx++
	if (row.New.Len() > 0 && row.New.Len() != len(rel.columns)) || (row.Old.Len() > 0 && row.Old.Len() != len(rel.columns)) {
		return fmt.Errorf("row of %s has a different width than its relation", rel.table)
	}
	buf := proto.AppendBatchHeader(nil, rel.table, rel.columns, rel.identity)
	buf = proto.AppendRow(buf, &row)
	b, err := proto.DecodeBatch(buf)
	if err != nil {
		t.Fatalf("captured row does not decode: %v", err)
	}
	if b.Table != rel.table || len(b.Columns) != len(rel.columns) || b.ReplicaIdentity != rel.identity || len(b.Rows) != 1 {
		t.Fatalf("batch header %+v for relation %+v", b, rel)
	}
	for i, c := range rel.columns {
		if b.Columns[i] != c {
			t.Fatalf("column %d: %+v != %+v", i, b.Columns[i], c)
		}
	}
	got := b.Rows[0]
	if got.Op != row.Op || got.Pos != row.Pos || got.Xid != row.Xid || got.CommitTimeUS != row.CommitTimeUS {
		t.Fatalf("row %+v became %+v", row, got)
	}
	for _, pair := range [][2]proto.Tuple{{row.New, got.New}, {row.Old, got.Old}} {
		a, b := pair[0], pair[1]
		if !bytes.Equal(a.Kinds, b.Kinds) {
			t.Fatalf("kinds %q became %q", a.Kinds, b.Kinds)
		}
		for i, k := range a.Kinds {
			if k == proto.KindText && !bytes.Equal(a.Values[i], b.Values[i]) {
				t.Fatalf("column %d: %q became %q", i, a.Values[i], b.Values[i])
			}
		}
	}
	return nil
}

// Builders of pgoutput protocol version 1 messages, as PostgreSQL writes
// them (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).

type pgCol struct {
	name    string
	typeOID uint32
	typeMod int32
	key     bool
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func pgRelation(id uint32, schema, name string, identity byte, cols ...pgCol) []byte {
	b := append([]byte{'R'}, be32(id)...)
	b = append(b, schema+"\x00"+name+"\x00"...)
	b = append(b, identity)
	b = append(b, be16(uint16(len(cols)))...)
	for _, c := range cols {
		flags := byte(0)
		if c.key {
			flags = 1
		}
		b = append(b, flags)
		b = append(b, c.name+"\x00"...)
		b = append(b, be32(c.typeOID)...)
		b = append(b, be32(uint32(c.typeMod))...)
	}
	return b
}

func pgBegin(finalLSN uint64, commitTimePG int64, xid uint32) []byte {
	b := append([]byte{'B'}, be64(finalLSN)...)
	b = append(b, be64(uint64(commitTimePG))...)
	return append(b, be32(xid)...)
}

func pgCommit(commitLSN, endLSN uint64) []byte {
	b := append([]byte{'C', 0}, be64(commitLSN)...)
	b = append(b, be64(endLSN)...)
	return append(b, be64(1700000000000000-pgEpochUnixMicros)...)
}

// pgValue is one column of TupleData: 'n', 'u', or 't' with its text.
type pgValue struct {
	kind byte
	text string
}

var (
	pgNull  = pgValue{kind: 'n'}
	pgToast = pgValue{kind: 'u'}
)

func pgText(s string) pgValue { return pgValue{kind: 't', text: s} }

type pgTuple []pgValue

func (t pgTuple) appendTo(b []byte) []byte {
	b = append(b, be16(uint16(len(t)))...)
	for _, v := range t {
		b = append(b, v.kind)
		if v.kind == 't' {
			b = append(b, be32(uint32(len(v.text)))...)
			b = append(b, v.text...)
		}
	}
	return b
}

func pgInsert(rel uint32, newT pgTuple) []byte {
	b := append(append([]byte{'I'}, be32(rel)...), 'N')
	return newT.appendTo(b)
}

// pgUpdate: oldKind 'K' (key changed) or 'O' (REPLICA IDENTITY FULL) with
// the old tuple, 0 for none.
func pgUpdate(rel uint32, oldKind byte, oldT, newT pgTuple) []byte {
	b := append([]byte{'U'}, be32(rel)...)
	if oldKind != 0 {
		b = oldT.appendTo(append(b, oldKind))
	}
	return newT.appendTo(append(b, 'N'))
}

func pgDelete(rel uint32, oldKind byte, oldT pgTuple) []byte {
	b := append(append([]byte{'D'}, be32(rel)...), oldKind)
	return oldT.appendTo(b)
}

func pgTruncate(n uint32, rels ...uint32) []byte {
	b := append([]byte{'T'}, be32(n)...)
	b = append(b, 0) // options
	for _, r := range rels {
		b = append(b, be32(r)...)
	}
	return b
}
