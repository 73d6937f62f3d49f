package pgvalue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testenv"
)

// The parsers are tested against PostgreSQL itself: it prints values (a
// SELECT's text results, COPY TO in text and binary), pgvalue parses
// them, and what they mean is compared with what PostgreSQL says of the
// same values (their binary send form, extract(), lower(), unnest()...).
// Then the other way: what pgvalue writes is read back by PostgreSQL's
// input functions and COPY FROM and compared with the originals in SQL.
// One cluster serves the package's tests; it starts with the first test
// that needs it.

var cluster struct {
	once sync.Once
	pg   *testenv.Postgres
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster.pg != nil {
		cluster.pg.Destroy()
	}
	os.Exit(code)
}

// clusterSchema is what tests share: a range of text, whose bounds need
// quotes and escapes.
const clusterSchema = `CREATE TYPE textrange AS RANGE (subtype = text, collation = "C")`

// sessionSettings are those whose output pgvalue parses: PostgreSQL's
// defaults, in a time zone with half-hour offsets, daylight saving time
// and local mean time before 1883 (-04:56:02).
const sessionSettings = `SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'America/New_York';
	SET extra_float_digits = 1; SET bytea_output = 'hex'`

// connect opens a connection to the package's cluster, with
// sessionSettings.
func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	cluster.once.Do(func() {
		if cluster.pg, cluster.err = testenv.StartPostgres(testenv.PostgresOptions{}); cluster.err == nil {
			cluster.err = cluster.pg.Exec(context.Background(), "postgres", clusterSchema)
		}
	})
	if cluster.err != nil {
		t.Fatalf("start postgres: %v", cluster.err)
	}
	conn := testenv.Conn(t, cluster.pg.DSN("postgres"))
	testenv.MustExec(t, conn, sessionSettings)
	return conn
}

func withTimeout(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// textRows runs q over the simple protocol, whose results are the text
// forms the output functions print (as pgoutput sends them): a row of
// values each, nil for NULL.
func textRows(t *testing.T, conn *pgx.Conn, q string) [][][]byte {
	t.Helper()
	rows, err := conn.Query(withTimeout(t), q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out [][][]byte
	for rows.Next() {
		out = append(out, cloneRow(rows.RawValues()))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// binaryRows runs q asking for every result in binary format: each
// type's send form, what COPY's binary format holds.
func binaryRows(t *testing.T, conn *pgx.Conn, q string) [][][]byte {
	t.Helper()
	rr := conn.PgConn().ExecParams(withTimeout(t), q, nil, nil, nil, []int16{1})
	var out [][][]byte
	for rr.NextRow() {
		out = append(out, cloneRow(rr.Values()))
	}
	if _, err := rr.Close(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// cloneRow copies a row of values that alias a connection's buffer,
// keeping nil for NULL.
func cloneRow(values [][]byte) [][]byte {
	row := make([][]byte, len(values))
	for i, v := range values {
		if v != nil {
			row[i] = bytes.Clone(v)
		}
	}
	return row
}

// copyOut runs a COPY ... TO STDOUT and returns what it wrote.
func copyOut(t *testing.T, conn *pgx.Conn, sql string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := conn.PgConn().CopyTo(withTimeout(t), &buf, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return buf.Bytes()
}

// copyIn runs a COPY ... FROM STDIN with data.
func copyIn(t *testing.T, conn *pgx.Conn, sql string, data []byte) {
	t.Helper()
	if _, err := conn.PgConn().CopyFrom(withTimeout(t), bytes.NewReader(data), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// scalar is one text value a query gave, by its row's position.
func scalar(t *testing.T, conn *pgx.Conn, q string) string {
	t.Helper()
	rows := textRows(t, conn, q)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: %d rows, want one value", q, len(rows))
	}
	return string(rows[0][0])
}

// sample is a value as PostgreSQL printed it: its text form (COPY TO,
// read with CopyTextReader) and its binary send form (COPY TO in binary,
// read with CopyBinaryReader); nil for NULL.
type sample struct {
	literal   string
	text, bin []byte
}

// samples has PostgreSQL read each literal as a value of typ (its input
// function) and print it back, in the order given.
func samples(t *testing.T, conn *pgx.Conn, typ string, literals []string) []sample {
	t.Helper()
	exprs := make([]string, len(literals))
	for i, l := range literals {
		exprs[i] = "'" + strings.ReplaceAll(l, "'", "''") + "'"
	}
	return samplesOf(t, conn, typ, exprs)
}

// samplesOf is samples of SQL expressions (the literal of each sample is
// its expression).
func samplesOf(t *testing.T, conn *pgx.Conn, typ string, exprs []string) []sample {
	t.Helper()
	values := make([]string, len(exprs))
	for i, e := range exprs {
		values[i] = fmt.Sprintf("(%d, (%s)::%s)", i, e, typ)
	}
	testenv.MustExec(t, conn, "DROP TABLE IF EXISTS samples; CREATE TEMP TABLE samples (n int, v "+typ+")")
	testenv.MustExec(t, conn, "INSERT INTO samples VALUES "+strings.Join(values, ", "))
	query := "(SELECT v FROM samples ORDER BY n)"
	out := make([]sample, len(exprs))
	text := NewCopyTextReader(bytes.NewReader(copyOut(t, conn, "COPY "+query+" TO STDOUT")), 1)
	bin := NewCopyBinaryReader(bytes.NewReader(copyOut(t, conn, "COPY "+query+" TO STDOUT (FORMAT binary)")), 1)
	for i, lit := range exprs {
		out[i].literal = lit
		row, err := text.Next()
		if err != nil {
			t.Fatalf("%s %q: text row: %v", typ, lit, err)
		}
		if row.Kinds[0] != 'n' {
			out[i].text = bytes.Clone(row.Values[0])
		}
		fields, err := bin.Next()
		if err != nil {
			t.Fatalf("%s %q: binary row: %v", typ, lit, err)
		}
		out[i].bin = bytes.Clone(fields[0])
	}
	if _, err := text.Next(); err != io.EOF {
		t.Fatalf("%s: text rows after the last: %v", typ, err)
	}
	if _, err := bin.Next(); err != io.EOF {
		t.Fatalf("%s: binary rows after the last: %v", typ, err)
	}
	return out
}
