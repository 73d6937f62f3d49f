package pgvalue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/sluicedb/sluice/internal/testenv"
)

// COPY TO's binary format reads as the values' send forms a query
// returns in binary; the stream AppendCopyBinary* write from those values
// is COPY TO's bytes exactly, and COPY FROM loads it as the same values.
func TestCopyBinaryAgainstPostgres(t *testing.T) {
	conn := connect(t)
	want, out := copied(t, conn, binaryRows, "(FORMAT binary)")
	ncols := len(want[0])

	r := NewCopyBinaryReader(iotest.HalfReader(bytes.NewReader(out)), ncols)
	written := AppendCopyBinaryHeader(nil)
	for i, w := range want {
		row, err := r.Next()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		for c, v := range w {
			if (v == nil) != (row[c] == nil) || !bytes.Equal(row[c], v) {
				t.Errorf("row %d column %d: % x, PostgreSQL sends % x", i, c, row[c][:min(len(row[c]), 40)], v[:min(len(v), 40)])
			}
		}
		written = AppendCopyBinaryRow(written, w)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last row: %v", err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("again after the last row: %v", err)
	}
	written = AppendCopyBinaryTrailer(written)
	if !bytes.Equal(written, out) {
		t.Errorf("AppendCopyBinary* wrote %d bytes that differ from COPY TO's %d", len(written), len(out))
	}

	loadBack(t, conn, "COPY loaded FROM STDIN (FORMAT binary)", written)
}

// Headers with an extension area and flags: the reader accepts what COPY
// FROM accepts, and refuses what it refuses.
func TestCopyBinaryHeaders(t *testing.T) {
	conn := connect(t)
	testenv.MustExec(t, conn, "DROP TABLE IF EXISTS one; CREATE TEMP TABLE one (v int4)")
	header := func(flags uint32, ext []byte) []byte {
		h := append([]byte(copyBinarySignature), binary.BigEndian.AppendUint32(nil, flags)...)
		h = binary.BigEndian.AppendUint32(h, uint32(len(ext)))
		return append(h, ext...)
	}
	row := AppendCopyBinaryRow(nil, [][]byte{{0, 0, 0, 7}})
	trailer := AppendCopyBinaryTrailer(nil)
	cases := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"plain", concat(AppendCopyBinaryHeader(nil), row, trailer), true},
		{"an extension area", concat(header(0, []byte("extra")), row, trailer), true},
		{"a flag a reader may ignore", concat(header(1<<15|1, nil), row, trailer), true},
		{"OIDs", concat(header(1<<16, nil), row, trailer), false},
		{"a critical flag", concat(header(1<<20, nil), row, trailer), false},
		{"another signature", concat([]byte("PGCOPY\n\xff\r\n\x01\x00\x00\x00\x00\x00\x00\x00\x00"), row, trailer), false},
		{"a short header", []byte("PGCOPY\n"), false},
		{"data after the trailer", concat(AppendCopyBinaryHeader(nil), row, trailer, row), false},
		{"another width", concat(AppendCopyBinaryHeader(nil), AppendCopyBinaryRow(nil, [][]byte{{0, 0, 0, 7}, nil}), trailer), false},
		{"a length below -1", concat(AppendCopyBinaryHeader(nil), []byte{0, 1, 0xff, 0xff, 0xff, 0xfe}, trailer), false},
		{"a field cut short", concat(AppendCopyBinaryHeader(nil), []byte{0, 1, 0, 0, 0, 4, 0, 0}), false},
	}
	for _, c := range cases {
		var err error
		r := NewCopyBinaryReader(bytes.NewReader(c.data), 1)
		for err == nil {
			_, err = r.Next()
		}
		if err == io.EOF {
			err = nil
		}
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrCopyFormat) {
			t.Errorf("%s: reader says %v", c.name, err)
		}
		_, perr := conn.PgConn().CopyFrom(withTimeout(t), bytes.NewReader(c.data), "COPY one FROM STDIN (FORMAT binary)")
		if (perr == nil) != c.ok {
			t.Errorf("%s: COPY FROM says %v", c.name, perr)
		}
	}
	if got := scalar(t, conn, "SELECT string_agg(v::text, ',') FROM one"); got != "7,7,7" {
		t.Errorf("COPY FROM loaded %s", got)
	}
	// COPY FROM takes the end of the data for the trailer; the reader
	// does not, so that a cut stream is not taken for a whole one.
	r := NewCopyBinaryReader(bytes.NewReader(concat(AppendCopyBinaryHeader(nil), row)), 1)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrCopyFormat) {
		t.Errorf("no trailer: %v", err)
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Reading a row allocates nothing once the reader's memory has grown to
// the rows' size.
func TestCopyBinaryReaderAllocations(t *testing.T) {
	row := AppendCopyBinaryRow(nil, [][]byte{[]byte("some text"), nil, {0, 0, 0, 1}, bytes.Repeat([]byte{'x'}, 300)})
	r := NewCopyBinaryReader(io.MultiReader(bytes.NewReader(AppendCopyBinaryHeader(nil)), &endless{data: row}), 4)
	allocs := testing.AllocsPerRun(10000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations a row", allocs)
	}
}
