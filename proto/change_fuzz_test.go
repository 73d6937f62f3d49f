package proto

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// Change batches arrive from JetStream, where anything with access to the
// task's subjects can publish. DecodeBatch must not panic on any input, and
// what it accepts must re-encode and decode to the same batch.
//
// (change_test.go has an older FuzzDecodeBatch that checks the row count
// only; this one checks every field and the canonical encoding.)
func FuzzDecodeBatchRoundTrip(f *testing.F) {
	for _, seed := range batchFuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			if b != nil {
				t.Fatalf("error %v with a batch", err)
			}
			return
		}
		// What the apply side calls on a batch must not panic either.
		_ = b.MsgID()
		for _, r := range b.Rows {
			_, _ = r.New.Size(), r.Old.Size()
		}
		enc := encodeWhole(b)
		b2, err := DecodeBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v\n%+v", err, b)
		}
		if err := batchesEqual(b, b2); err != nil {
			t.Fatalf("round trip changed the batch: %v\nfirst:  %+v\nsecond: %+v", err, b, b2)
		}
		// The encoding of a decoded batch is canonical: encoding it again
		// gives the same bytes.
		if enc2 := encodeWhole(b2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// encodeWhole is Encode plus the fields Encode leaves to SplitBatch and
// AppendDDLBatch (a part, or a schema change), so that every field
// DecodeBatch reads takes part in the round trip.
func encodeWhole(b *Batch) []byte {
	buf := b.Encode(nil)
	if len(b.Part) > 0 {
		buf = protowire.AppendTag(buf, fBatchPart, protowire.BytesType)
		buf = protowire.AppendBytes(buf, b.Part)
	}
	buf = appendVarint(buf, fBatchPartNo, uint64(b.PartNo))
	buf = appendVarint(buf, fBatchParts, uint64(b.Parts))
	if len(b.DDL) > 0 {
		buf = protowire.AppendTag(buf, fBatchDDL, protowire.BytesType)
		buf = protowire.AppendBytes(buf, b.DDL)
	}
	return buf
}

// batchesEqual compares field by field. The wire form does not tell an
// absent bytes field from an empty one, so nil and empty compare equal
// (bytes.Equal), and an absent tuple is any tuple of no columns.
func batchesEqual(a, b *Batch) error {
	switch {
	case a.Table != b.Table:
		return fmt.Errorf("table %v != %v", a.Table, b.Table)
	case !slices.Equal(a.Columns, b.Columns):
		return fmt.Errorf("columns %+v != %+v", a.Columns, b.Columns)
	case a.ReplicaIdentity != b.ReplicaIdentity:
		return fmt.Errorf("identity %q != %q", a.ReplicaIdentity, b.ReplicaIdentity)
	case !bytes.Equal(a.Part, b.Part) || a.PartNo != b.PartNo || a.Parts != b.Parts:
		return fmt.Errorf("part %x %d/%d != %x %d/%d", a.Part, a.PartNo, a.Parts, b.Part, b.PartNo, b.Parts)
	case !bytes.Equal(a.DDL, b.DDL):
		return fmt.Errorf("ddl %q != %q", a.DDL, b.DDL)
	case len(a.Rows) != len(b.Rows):
		return fmt.Errorf("%d rows != %d", len(a.Rows), len(b.Rows))
	}
	for i := range a.Rows {
		x, y := &a.Rows[i], &b.Rows[i]
		if x.Op != y.Op || x.Pos != y.Pos || x.Xid != y.Xid || x.CommitTimeUS != y.CommitTimeUS {
			return fmt.Errorf("row %d: %+v != %+v", i, x, y)
		}
		if err := tuplesEqual(x.New, y.New); err != nil {
			return fmt.Errorf("row %d new: %v", i, err)
		}
		if err := tuplesEqual(x.Old, y.Old); err != nil {
			return fmt.Errorf("row %d old: %v", i, err)
		}
	}
	return nil
}

func tuplesEqual(a, b Tuple) error {
	if !bytes.Equal(a.Kinds, b.Kinds) {
		return fmt.Errorf("kinds %q != %q", a.Kinds, b.Kinds)
	}
	if len(a.Values) != len(a.Kinds) || len(b.Values) != len(b.Kinds) {
		return fmt.Errorf("values %d, %d for %d kinds", len(a.Values), len(b.Values), len(a.Kinds))
	}
	for i, k := range a.Kinds {
		if k == KindText && !bytes.Equal(a.Values[i], b.Values[i]) {
			return fmt.Errorf("column %d: %q != %q", i, a.Values[i], b.Values[i])
		}
	}
	return nil
}

// batchFuzzSeeds are encodings of real batches: rows of every operation,
// nulls, unchanged-TOAST values, empty and long values, a table without
// key columns, the parts of a split batch, a schema change, and some
// broken ones.
func batchFuzzSeeds(tb testing.TB) [][]byte {
	sample := sampleBatch().Encode(nil)
	wide := &Batch{
		Table: TableID{Schema: "Sales Ü", Name: "line.items*"},
		Columns: []Column{
			{Name: "order_id", TypeOID: 20, TypeMod: -1, Key: true},
			{Name: "line", TypeOID: 23, TypeMod: -1, Key: true},
			{Name: "price", TypeOID: 1700, TypeMod: 1310726},
			{Name: "tags", TypeOID: 1009, TypeMod: -1},
			{Name: "doc", TypeOID: 3802, TypeMod: -1},
		},
		ReplicaIdentity: IdentityFull,
		Rows: []Row{
			{Op: OpInsert, Pos: Position{LSN: 1<<40 | 0x1234, Idx: 0}, Xid: 4294967295, CommitTimeUS: -1,
				New: Tuple{Kinds: []byte{KindText, KindText, KindText, KindText, KindText},
					Values: [][]byte{[]byte("9007199254740993"), []byte("1"), []byte("-0.00"), []byte(`{"a","b c",NULL}`), []byte(`{"k": [1, 2, "\u00fc"]}`)}}},
			{Op: OpUpdate, Pos: Position{LSN: 1<<40 | 0x1234, Idx: 1}, Xid: 4294967295, CommitTimeUS: -1,
				Old: Tuple{Kinds: []byte{KindText, KindText, KindText, KindNull, KindText},
					Values: [][]byte{[]byte("9007199254740993"), []byte("1"), []byte("-0.00"), nil, []byte(`{}`)}},
				New: Tuple{Kinds: []byte{KindText, KindText, KindToast, KindToast, KindNull},
					Values: [][]byte{[]byte("9007199254740993"), []byte("2"), nil, nil, nil}}},
			{Op: OpDelete, Pos: Position{LSN: 1<<40 | 0x2000, Idx: 7}, Xid: 5,
				Old: Tuple{Kinds: []byte{KindText, KindText, KindNull, KindNull, KindNull},
					Values: [][]byte{[]byte("1"), []byte(strings.Repeat("é", 200)), nil, nil, nil}}},
			{Op: OpTruncate, Pos: Position{LSN: 1<<40 | 0x3000}, Xid: 6},
		},
	}
	keyless := &Batch{
		Table:           TableID{Schema: "public", Name: "log"},
		Columns:         []Column{{Name: "at", TypeOID: 1184, TypeMod: -1}, {Name: "msg", TypeOID: 25, TypeMod: -1}},
		ReplicaIdentity: IdentityNothing,
		Rows: []Row{{Op: OpInsert, Pos: Position{LSN: 42}, Xid: 1, CommitTimeUS: 1700000000000000,
			New: Tuple{Kinds: []byte{KindText, KindText}, Values: [][]byte{[]byte("2026-01-01 00:00:00+00"), {}}}}},
	}
	header := AppendBatchHeader(nil, TableID{Schema: "public", Name: "empty"}, []Column{{Name: "id", TypeOID: 23, TypeMod: -1, Key: true}}, IdentityIndex)
	ddl, err := AppendDDLBatch(nil, TableID{Schema: "public", Name: "orders"}, &DDLEvent{
		Pos: Position{LSN: 0x16B374D848, Idx: 3}, Tag: "ALTER TABLE", Query: "ALTER TABLE orders ADD COLUMN note text",
		Old: &TableDef{ID: TableID{Schema: "public", Name: "orders"}, ReplicaIdentity: 'd', Columns: []ColumnDef{{Num: 1, Name: "id", Type: "bigint", NotNull: true}}},
		New: &TableDef{ID: TableID{Schema: "public", Name: "orders"}, ReplicaIdentity: 'd', Columns: []ColumnDef{{Num: 1, Name: "id", Type: "bigint", NotNull: true}, {Num: 2, Name: "note", Type: "text"}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	seeds := [][]byte{sample, wide.Encode(nil), keyless.Encode(nil), header, ddl}
	seeds = append(seeds, SplitBatch(wide.Table, wide.Encode(nil), 64)...)
	seeds = append(seeds,
		nil,
		sample[:len(sample)/2],                   // truncated
		append(slices.Clone(sample), 0x2a, 0x05), // a row field cut short
		[]byte{0x2a, 0x04, 0x32, 0x02, 0x0a, 0x01},             // a tuple with no kinds' body
		[]byte{0x0d, 1, 2, 3, 4, 0x11, 1, 2, 3, 4, 5, 6, 7, 8}, // fixed32 and fixed64 fields, skipped
		[]byte{0x0b, 0x0c}, // a group
		[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	)
	return seeds
}
