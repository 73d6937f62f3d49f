package emu

import (
	"strings"
	"testing"
)

func TestStreamLoadCSVAndJSON(t *testing.T) {
	e := start(t)
	c := newClient(t, e)
	c.exec("", "CREATE DATABASE d")
	c.exec("d", "CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR(20) NULL, price DECIMAL(10, 2), at DATETIMEV2(3), doc JSON, ok BOOLEAN) "+
		"UNIQUE KEY(id) DISTRIBUTED BY HASH(id) BUCKETS 1 PROPERTIES (\"replication_num\" = \"1\")")

	res := c.mustLoad("d", "t", map[string]string{"label": "csv1", "column_separator": "|"},
		"1|alice|1.005|2024-01-02 03:04:05.123456|{\"b\": 1, \"a\": [1, 2]}|true\n2|\\N|\\N|\\N|\\N|0\n")
	if res.NumberLoadedRows != 2 || res.TwoPhaseCommit != "false" || res.TxnID <= 0 || res.Label != "csv1" {
		t.Fatalf("answer %+v", res)
	}
	c.mustLoad("d", "t", map[string]string{"format": "json", "strip_outer_array": "true"},
		`[{"id": 3, "name": "a\"b\\c\u00e9", "price": "7", "ok": false, "doc": null}, {"id": "4", "name": null, "price": 1e1}]`)
	c.mustLoad("d", "t", map[string]string{"format": "json", "read_json_by_line": "true", "columns": "id,name"},
		"{\"id\": 5, \"name\": \"tab\\there\"}\n{\"id\": 6}\n")
	// Enclosed CSV: separators and escapes inside quotes.
	c.mustLoad("d", "t", map[string]string{"column_separator": ",", "enclose": `"`, "escape": `\`, "columns": "id,name"},
		"7,\"x,\\\"y\"\n8,\"\"\n9,\\N\n")
	expectRows(t, c.rows("d", "SELECT id, name, price, at, doc, ok FROM t ORDER BY id"), strings.Join([]string{
		`1|alice|1.01|2024-01-02 03:04:05.123|{"b":1,"a":[1,2]}|1`,
		`2|NULL|NULL|NULL|NULL|0`,
		`3|a"b\cé|7.00|NULL|NULL|0`,
		`4|NULL|10.00|NULL|NULL|NULL`,
		"5|tab\there|NULL|NULL|NULL|NULL",
		`6|NULL|NULL|NULL|NULL|NULL`,
		`7|x,"y|NULL|NULL|NULL|NULL`,
		`8||NULL|NULL|NULL|NULL`,
		`9|NULL|NULL|NULL|NULL|NULL`,
	}, "\n"))
	if s := e.Stats(); s.Loads != 4 || s.Rows != 9 {
		t.Fatalf("stats %+v", s)
	}
}
