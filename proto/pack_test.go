package proto

import (
	"errors"
	"testing"
)

func TestPackRoundTrip(t *testing.T) {
	cols := []Column{{Name: "id", TypeOID: 23, TypeMod: -1, Key: true}}
	var members [][]byte
	for _, name := range []string{"a", "b"} {
		b := &Batch{Table: TableID{Schema: "public", Name: name}, Columns: cols, ReplicaIdentity: IdentityDefault}
		for i := range 3 {
			b.Rows = append(b.Rows, Row{Op: OpInsert, Pos: Position{LSN: 10, Idx: uint32(i)}, New: Tuple{Kinds: []byte{KindText}, Values: [][]byte{[]byte(name)}}})
		}
		members = append(members, b.Encode(nil))
	}
	buf := AppendPackHeader(nil, PackTable(2))
	for _, m := range members {
		buf = AppendPackMember(buf, m)
	}
	got, err := DecodeBatch(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Table != PackTable(2) || len(got.Rows) != 0 || len(got.Members) != 2 {
		t.Fatalf("pack decoded as %s with %d rows and %d members", got.Table, len(got.Rows), len(got.Members))
	}
	for i, name := range []string{"a", "b"} {
		m := got.Members[i]
		if m.Table.Name != name || len(m.Rows) != 3 || string(m.Rows[2].New.Values[0]) != name || m.Rows[2].Pos.Idx != 2 {
			t.Errorf("member %d: %+v", i, m)
		}
	}
	if !IsPackSubject("t1", PackSubject("t1", 7)) || IsPackSubject("t1", Subject("t1", TableID{Schema: "public", Name: "pack-1"})) {
		t.Error("IsPackSubject")
	}
}

// A decoder from before packs skips the members field; it must then find
// the pack malformed rather than empty, or it would acknowledge the
// members' rows unapplied.
func TestPackRefusedWithoutMembers(t *testing.T) {
	_, err := DecodeBatch(AppendPackHeader(nil, PackTable(0)))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("a pack read without its members: err %v, want ErrMalformed", err)
	}
}
