package proto

import (
	"bytes"
	"strings"
	"testing"
)

func sampleBatch() *Batch {
	return &Batch{
		Table:           TableID{Schema: "public", Name: "orders"},
		Columns:         []Column{{Name: "id", TypeOID: 20, TypeMod: -1, Key: true}, {Name: "note", TypeOID: 25, TypeMod: -1}, {Name: "amount", TypeOID: 1700, TypeMod: 655366}},
		ReplicaIdentity: IdentityDefault,
		Rows: []Row{
			{Op: OpInsert, Pos: Position{LSN: 0x16B374D848, Idx: 0}, Xid: 77, CommitTimeUS: 1700000000000000,
				New: Tuple{Kinds: []byte{KindText, KindNull, KindText}, Values: [][]byte{[]byte("1"), nil, []byte("12.50")}}},
			{Op: OpUpdate, Pos: Position{LSN: 0x16B374D848, Idx: 1}, Xid: 77,
				New: Tuple{Kinds: []byte{KindText, KindToast, KindText}, Values: [][]byte{[]byte("2"), nil, []byte("")}},
				Old: Tuple{Kinds: []byte{KindText, KindNull, KindNull}, Values: [][]byte{[]byte("1"), nil, nil}}},
			{Op: OpDelete, Pos: Position{LSN: 0x16B374D900, Idx: 0},
				Old: Tuple{Kinds: []byte{KindText, KindNull, KindNull}, Values: [][]byte{[]byte(strings.Repeat("x", 300)), nil, nil}}},
			{Op: OpTruncate, Pos: Position{LSN: 0x16B374DA00, Idx: 0}},
		},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	in := sampleBatch()
	data := in.Encode(nil)
	out, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Table != in.Table || out.ReplicaIdentity != in.ReplicaIdentity || len(out.Columns) != len(in.Columns) || len(out.Rows) != len(in.Rows) {
		t.Fatalf("header mismatch: %+v", out)
	}
	for i := range in.Columns {
		if in.Columns[i] != out.Columns[i] {
			t.Fatalf("column %d: %+v != %+v", i, out.Columns[i], in.Columns[i])
		}
	}
	for i := range in.Rows {
		a, b := in.Rows[i], out.Rows[i]
		if a.Op != b.Op || a.Pos != b.Pos || a.Xid != b.Xid || a.CommitTimeUS != b.CommitTimeUS {
			t.Fatalf("row %d: %+v != %+v", i, b, a)
		}
		for _, pair := range [][2]Tuple{{a.New, b.New}, {a.Old, b.Old}} {
			x, y := pair[0], pair[1]
			if !bytes.Equal(x.Kinds, y.Kinds) {
				t.Fatalf("row %d kinds %q != %q", i, y.Kinds, x.Kinds)
			}
			for j, k := range x.Kinds {
				if k == KindText && !bytes.Equal(x.Values[j], y.Values[j]) {
					t.Fatalf("row %d col %d: %q != %q", i, j, y.Values[j], x.Values[j])
				}
			}
		}
	}
	if in.MsgID() != out.MsgID() || !strings.HasPrefix(in.MsgID(), "public.orders:") {
		t.Fatalf("msg id %q vs %q", in.MsgID(), out.MsgID())
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	data := sampleBatch().Encode(nil)
	for _, cut := range []int{1, 7, len(data) / 2, len(data) - 1} {
		if _, err := DecodeBatch(data[:cut]); err == nil {
			t.Errorf("truncated at %d: no error", cut)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(sampleBatch().Encode(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same rows.
		b2, err := DecodeBatch(b.Encode(nil))
		if err != nil || len(b2.Rows) != len(b.Rows) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestSubjectEscapes(t *testing.T) {
	got := Subject("t1", TableID{Schema: "My Schema", Name: "a.b*>"})
	want := "sluice.t1.My%20Schema.a%2Eb%2A%3E"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if Subject("t1", TableID{Schema: "public", Name: "orders"}) != "sluice.t1.public.orders" {
		t.Fatal("plain names must stay readable")
	}
}

func TestLSN(t *testing.T) {
	l, err := ParseLSN("16/B374D848")
	if err != nil || l.String() != "16/B374D848" {
		t.Fatalf("%v %v", l, err)
	}
	if !(Position{LSN: 1, Idx: 5}).Less(Position{LSN: 2}) || (EndOf(3)).Less(Position{LSN: 3, Idx: 9}) {
		t.Fatal("ordering")
	}
}

func TestSplitBatchReassembles(t *testing.T) {
	in := sampleBatch()
	data := in.Encode(nil)
	parts := SplitBatch(in.Table, data, 50)
	if len(parts) < 3 {
		t.Fatalf("%d parts", len(parts))
	}
	var whole []byte
	for i, p := range parts {
		b, err := DecodeBatch(p)
		if err != nil {
			t.Fatal(err)
		}
		if b.Table != in.Table || int(b.PartNo) != i || int(b.Parts) != len(parts) || len(b.Rows) != 0 {
			t.Fatalf("part %d: %+v", i, b)
		}
		whole = append(whole, b.Part...)
	}
	out, err := DecodeBatch(whole)
	if err != nil || len(out.Rows) != len(in.Rows) || out.MsgID() != in.MsgID() {
		t.Fatalf("reassembled: %v %+v", err, out)
	}
}
