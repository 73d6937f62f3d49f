package pgvalue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// copiedSchema is a table whose values put COPY's text format to work:
// every control character, backslashes, the strings \N and \., empty
// strings beside NULLs, non-ASCII text, a row longer than the reader's
// buffer, and values of other types whose text has tabs or backslashes.
const copiedSchema = `
DROP TABLE IF EXISTS copied, loaded;
CREATE TEMP TABLE copied (n int, t text, b bytea, a text[], j jsonb, f float8, d timestamptz, r textrange);
INSERT INTO copied VALUES
	(1, E'tab\there\nnewline\\backslash\rcr', '\x00ff5c', ARRAY[E'a\tb', 'c\d', NULL, ''], '{"k": "v\\\"w\u0001"}', 'NaN', '2024-05-01 10:00:00.5+02', '[a,b)'),
	(2, '', '', '{}', '""', '-0', '-infinity', 'empty'),
	(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(4, '\N', '\x5c4e', '{"\\N"}', '"\\\\N"', '1e-300', '1883-11-18 12:00:00+00', E'["\t","\\\\N")'),
	(5, '\.', '\x5c2e', ARRAY['\.'], '[]', '1', '0001-01-01 00:00:00+00 BC', '(,)'),
	(6, 'ünïcödé 🚀 中文', convert_to('ünï', 'UTF8'), ARRAY['ü'], '{"é": 1}', '3.14', 'infinity', '[é,ü]'),
	(7, (SELECT string_agg(chr(c), '') FROM generate_series(1, 127) c), (SELECT string_agg(set_byte('\x00', 0, c), '') FROM generate_series(0, 255) c),
		ARRAY[(SELECT string_agg(chr(c), '') FROM generate_series(1, 31) c)], NULL, NULL, NULL, NULL),
	(8, repeat(E'long\\\t', 100000), NULL, NULL, NULL, NULL, NULL, NULL),
	(9, E'\\', NULL, ARRAY[E'\\'], NULL, NULL, NULL, E'[\\\\,\\\\]'),
	(10, E'ends in a newline\n', NULL, NULL, NULL, NULL, NULL, NULL),
	(11, E'\\\n', NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TEMP TABLE loaded (LIKE copied);
`

// COPY TO's text format parses to the values a query returns, NULLs and
// empty strings apart; the rows AppendCopyTextRow writes from those
// values are COPY TO's bytes exactly, and COPY FROM loads them as the
// same values.
func TestCopyTextAgainstPostgres(t *testing.T) {
	conn := connect(t)
	want, out := copied(t, conn, textRows, "")
	ncols := len(want[0])

	// iotest.HalfReader hands the reader its data in pieces: rows span
	// reads, as they do from a network stream.
	r := NewCopyTextReader(iotest.HalfReader(bytes.NewReader(out)), ncols)
	var written []byte
	for i, w := range want {
		row, err := r.Next()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		for c, v := range w {
			switch {
			case v == nil && row.Kinds[c] != proto.KindNull:
				t.Errorf("row %s column %d: %q, PostgreSQL says NULL", w[0], c, short(row.Values[c]))
			case v != nil && (row.Kinds[c] != proto.KindText || !bytes.Equal(row.Values[c], v)):
				t.Errorf("row %s column %d: %c %q, PostgreSQL says %q", w[0], c, row.Kinds[c], short(row.Values[c]), short(v))
			}
		}
		written, err = AppendCopyTextRow(written, tupleOf(w))
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last row: %v", err)
	}
	if !bytes.Equal(written, out) {
		t.Errorf("AppendCopyTextRow wrote %d bytes that differ from COPY TO's %d", len(written), len(out))
	}

	loadBack(t, conn, "COPY loaded FROM STDIN", written)
}

// copied creates copiedSchema's tables, and returns the rows of copied as
// rowsOf reads them and as COPY TO writes them with options.
func copied(t *testing.T, conn *pgx.Conn, rowsOf func(*testing.T, *pgx.Conn, string) [][][]byte, options string) (rows [][][]byte, out []byte) {
	t.Helper()
	testenv.MustExec(t, conn, copiedSchema)
	const query = "SELECT * FROM copied ORDER BY n"
	return rowsOf(t, conn, query), copyOut(t, conn, "COPY ("+query+") TO STDOUT "+options)
}

// loadBack loads data into the table loaded with sql, a COPY FROM, and
// checks that it then holds what copied holds.
func loadBack(t *testing.T, conn *pgx.Conn, sql string, data []byte) {
	t.Helper()
	copyIn(t, conn, sql, data)
	differ := textRows(t, conn, "SELECT n FROM copied c FULL JOIN loaded l USING (n) WHERE c::text IS DISTINCT FROM l::text")
	if len(differ) > 0 || scalar(t, conn, "SELECT count(*) FROM loaded") != scalar(t, conn, "SELECT count(*) FROM copied") {
		t.Errorf("rows %q load back different", differ)
	}
}

// tupleOf is a row of text values as a Tuple, nil for NULL.
func tupleOf(values [][]byte) proto.Tuple {
	t := proto.Tuple{Kinds: make([]byte, len(values)), Values: values}
	for i, v := range values {
		t.Kinds[i] = proto.KindText
		if v == nil {
			t.Kinds[i] = proto.KindNull
		}
	}
	return t
}

// short cuts a value for a failure message.
func short(v []byte) string {
	if len(v) > 60 {
		return string(v[:60]) + fmt.Sprintf("...(%d bytes)", len(v))
	}
	return string(v)
}

// The escapes COPY FROM reads but COPY TO never writes (hex and octal,
// any other character after a backslash, a backslash before a tab or a
// newline, the end-of-data line \.) read as COPY FROM reads them.
func TestCopyTextReadsWhatCopyFromReads(t *testing.T) {
	conn := connect(t)
	data := strings.Join([]string{
		`\x41\x4a\x4G\x\xg\xA`,
		`\101\1012\0411\7`,
		`\q\N\z\"\'\ `,
		`\\N`,
		`\N`,
		"a\\\tb",
		"line\\\ncontinues",
		`\b\f\n\r\t\v`,
		`\303\251\xc3\xa9`,
		``,
		`\.`,
		`not read`,
	}, "\n") + "\n"
	testenv.MustExec(t, conn, "DROP TABLE IF EXISTS read_in; CREATE TEMP TABLE read_in (n serial, v text)")
	copyIn(t, conn, "COPY read_in (v) FROM STDIN", []byte(data))
	want := textRows(t, conn, "SELECT v FROM read_in ORDER BY n")
	r := NewCopyTextReader(strings.NewReader(data), 1)
	for i, w := range want {
		row, err := r.Next()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if (w[0] == nil) != (row.Kinds[0] == proto.KindNull) || !bytes.Equal(row.Values[0], w[0]) {
			t.Errorf("row %d: %c %q, COPY FROM read %q", i, row.Kinds[0], row.Values[0], w[0])
		}
	}
	if row, err := r.Next(); err != io.EOF {
		t.Errorf("after the rows COPY FROM read: %v %q", err, row.Values)
	}
}

// Data that ends inside a row, or rows of another width: errors, as COPY
// FROM has them.
func TestCopyTextReaderErrors(t *testing.T) {
	conn := connect(t)
	testenv.MustExec(t, conn, "DROP TABLE IF EXISTS two; CREATE TEMP TABLE two (a text, b text)")
	for _, data := range []string{"a\tb\nc\n", "a\tb\tc\n", "a\tb\na\\\tb\n", "a\tb\nno newline\tat the end"} {
		r := NewCopyTextReader(strings.NewReader(data), 2)
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, ErrCopyFormat) {
			t.Errorf("%q: %v, want ErrCopyFormat", data, err)
		}
		if data == "a\tb\nno newline\tat the end" {
			continue // COPY FROM reads a last line without its newline; a stream cut there is what the reader refuses
		}
		if _, err := conn.PgConn().CopyFrom(withTimeout(t), strings.NewReader(data), "COPY two FROM STDIN"); err == nil {
			t.Errorf("COPY FROM reads %q", data)
		}
	}
	r := NewCopyTextReader(iotest.ErrReader(io.ErrClosedPipe), 1)
	if _, err := r.Next(); err != io.ErrClosedPipe {
		t.Errorf("a failing reader: %v", err)
	}
	if _, err := AppendCopyTextRow(nil, proto.Tuple{Kinds: []byte{proto.KindText, proto.KindToast}, Values: [][]byte{{'a'}, nil}}); !errors.Is(err, ErrUnchangedToast) {
		t.Errorf("an unchanged TOAST value: %v", err)
	}
}

// Reading a row allocates nothing once the reader's memory has grown to
// the rows' size: memory stays bounded by the longest row, whatever the
// number of rows.
func TestCopyTextReaderAllocations(t *testing.T) {
	line := "1\tsome text\t\\N\t{a,b}\twith\\ttab and \\\\ backslash\t2024-05-01 10:00:00+00\n"
	r := NewCopyTextReader(&endless{data: []byte(line)}, 6)
	allocs := testing.AllocsPerRun(10000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations a row", allocs)
	}
}

// endless reads data again and again.
type endless struct {
	data []byte
	off  int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.data[e.off:])
	e.off = (e.off + n) % len(e.data)
	return n, nil
}

func BenchmarkCopyTextReader(b *testing.B) {
	line := "123456\tsome text of a row\t\\N\t{a,\"b c\"}\twith\\ttab and \\\\ backslash\t2024-05-01 10:00:00.123456+00\n"
	data := []byte(strings.Repeat(line, 1000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewCopyTextReader(bytes.NewReader(data), 6)
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
