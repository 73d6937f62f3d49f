package emu

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestUniqueMergeAndSequence(t *testing.T) {
	e := start(t)
	c := newClient(t, e)
	c.exec("", "CREATE DATABASE d")
	c.exec("d", "CREATE TABLE s (id BIGINT NOT NULL, v VARCHAR(10)) UNIQUE KEY(id) DISTRIBUTED BY HASH(id) BUCKETS 1 "+
		`PROPERTIES ("function_column.sequence_type" = "LARGEINT")`)
	if r := c.load("d", "s", nil, "1\ta\n"); r.Status != "Fail" || !strings.Contains(r.Message, "has sequence column, need to specify the sequence column") {
		t.Fatalf("load without sequence: %+v", r)
	}
	h := map[string]string{"columns": "id,v,seq,op", "function_column.sequence_col": "seq", "merge_type": "MERGE", "delete": "op=1"}
	big := "170141183460469231731687303715884105727" // 2^127-1
	// In one load the later of two equal keys wins when sequences tie.
	c.mustLoad("d", "s", h, "1\ta\t10\t0\n1\tb\t10\t0\n2\tx\t"+big+"\t0\n3\tq\t5\t0\n")
	c.mustLoad("d", "s", h, "1\told\t9\t0\n2\tlower\t1\t0\n") // lower sequences lose
	c.mustLoad("d", "s", h, "3\t\\N\t7\t1\n")                 // delete with a higher sequence
	c.mustLoad("d", "s", h, "3\tback\t6\t0\n")                // the tombstone holds off older rows
	expectRows(t, c.rows("d", "SELECT * FROM s ORDER BY id"), "1|b\n2|x")
	c.mustLoad("d", "s", h, "3\tnew\t8\t0\n")
	expectRows(t, c.rows("d", "SELECT * FROM s ORDER BY id"), "1|b\n2|x\n3|new")
	// SQL DELETE keeps the tombstone's sequence too.
	c.exec("d", "DELETE FROM s WHERE id = 3")
	c.mustLoad("d", "s", h, "3\tstale\t8\t0\n")
	expectRows(t, c.rows("d", "SELECT * FROM s ORDER BY id"), "1|b\n2|x\n3|stale")

	// A sequence mapped to a real column needs no header.
	c.exec("d", "CREATE TABLE m (id INT NOT NULL, ver BIGINT, v STRING) UNIQUE KEY(id) DISTRIBUTED BY HASH(id) BUCKETS AUTO "+
		`PROPERTIES ("function_column.sequence_col" = "ver")`)
	c.mustLoad("d", "m", nil, "1\t5\tfive\n1\t3\tthree\n")
	expectRows(t, c.rows("d", "SELECT * FROM m"), "1|5|five")
}

func TestPartialColumnsAndDuplicate(t *testing.T) {
	e := start(t)
	c := newClient(t, e)
	c.exec("", "CREATE DATABASE d")
	c.exec("d", "CREATE TABLE p (id INT NOT NULL, a VARCHAR(5) DEFAULT 'def', b INT) UNIQUE KEY(id) DISTRIBUTED BY HASH(id) BUCKETS 1")
	c.mustLoad("d", "p", nil, "1\tx\t10\n")
	c.mustLoad("d", "p", map[string]string{"partial_columns": "true", "columns": "id,b"}, "1\t11\n2\t20\n")
	expectRows(t, c.rows("d", "SELECT * FROM p ORDER BY id"), "1|x|11\n2|def|20")
	// A full-row load resets the columns it does not carry.
	c.mustLoad("d", "p", map[string]string{"columns": "id,b"}, "1\t12\n")
	expectRows(t, c.rows("d", "SELECT * FROM p WHERE id = 1"), "1|def|12")

	c.exec("d", "CREATE TABLE dup (k INT, v STRING) DUPLICATE KEY(k) DISTRIBUTED BY RANDOM BUCKETS 1")
	c.mustLoad("d", "dup", nil, "1\ta\n1\ta\n")
	c.mustLoad("d", "dup", nil, "1\tb\n")
	expectRows(t, c.rows("d", "SELECT k, v, count(*) FROM dup GROUP BY k, v ORDER BY v"), "1|a|2\n1|b|1")
	if r := c.load("d", "dup", map[string]string{"merge_type": "DELETE"}, "1\ta\n"); r.Status != "Fail" {
		t.Fatalf("delete on duplicate: %+v", r)
	}
	c.exec("d", "INSERT INTO dup (k, v) VALUES (2, 'it''s'), (3, NULL)")
	c.exec("d", "DELETE FROM dup WHERE v = 'a'")
	expectRows(t, c.rows("d", "SELECT k, v FROM dup ORDER BY k"), "1|b\n2|it's\n3|NULL")
	c.exec("d", "TRUNCATE TABLE dup")
	expectRows(t, c.rows("d", "SELECT count(*) FROM dup"), "0")
}

func TestTypeLimitsFilterRows(t *testing.T) {
	e := start(t)
	c := newClient(t, e)
	c.exec("", "CREATE DATABASE d")
	c.exec("d", "CREATE TABLE t (id INT NOT NULL, s VARCHAR(4), n DECIMAL(5, 2)) DUPLICATE KEY(id) DISTRIBUTED BY HASH(id) BUCKETS 1")
	body := "1\tabcd\t123.456\n2\té\t1\n3\tééé\t1\n4\tx\t1234.5\n"
	r := c.load("d", "t", map[string]string{"strict_mode": "true", "label": "bad"}, body)
	if r.Status != "Fail" || r.Message != "[DATA_QUALITY_ERROR]too many filtered rows" || r.NumberFilteredRows != 2 || r.ErrorURL == "" {
		t.Fatalf("got %+v", r)
	}
	resp, err := http.Get(r.ErrorURL)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(log), "Reason: column(s) the length of input is too long than schema") ||
		!strings.Contains(string(log), "src line [3\tééé\t1]") || !strings.Contains(string(log), "column(n)") {
		t.Fatalf("error log:\n%s", log)
	}
	expectRows(t, c.rows("d", "SELECT count(*) FROM t"), "0")
	if st := c.loadState("d", "bad"); st != "ABORTED" {
		t.Fatalf("state %s", st)
	}
	// Within max_filter_ratio the good rows load; DECIMAL rounds half up.
	r = c.mustLoad("d", "t", map[string]string{"strict_mode": "true", "max_filter_ratio": "0.5"}, body)
	if r.NumberLoadedRows != 2 || r.NumberFilteredRows != 2 || r.ErrorURL == "" {
		t.Fatalf("got %+v", r)
	}
	expectRows(t, c.rows("d", "SELECT * FROM t ORDER BY id"), "1|abcd|123.46\n2|é|1.00")
	// Without strict mode a value that does not convert becomes NULL.
	c.mustLoad("d", "t", nil, "5\tok\tabc\n")
	expectRows(t, c.rows("d", "SELECT n FROM t WHERE id = 5"), "NULL")
}
