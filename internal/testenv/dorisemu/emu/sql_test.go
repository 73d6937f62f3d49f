package emu

import (
	"strings"
	"testing"
)

func TestDDLRoundTrip(t *testing.T) {
	e := start(t)
	c := newClient(t, e)
	c.exec("information_schema", "CREATE DATABASE IF NOT EXISTS `d`")
	c.exec("d", "CREATE DATABASE IF NOT EXISTS d")
	ddl := "CREATE TABLE IF NOT EXISTS `d`.`orders` (\n" +
		"  `id` BIGINT NOT NULL COMMENT 'the key',\n" +
		"  `note` VARCHAR(400) NULL DEFAULT 'n/a',\n" +
		"  `amount` DECIMALV3(10,2),\n" +
		"  `at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n" +
		"  `doc` JSONB, `big` LARGEINT, `day` DATE\n" +
		") UNIQUE KEY(`id`) COMMENT 'orders' DISTRIBUTED BY HASH(`id`) BUCKETS 4\n" +
		"PROPERTIES (\"replication_num\" = \"1\", \"function_column.sequence_type\" = \"LARGEINT\")"
	c.exec("d", ddl)
	rows, err := c.query("d", "SHOW CREATE TABLE orders")
	if err != nil {
		t.Fatal(err)
	}
	shown := *rows[0][1]
	for _, want := range []string{"UNIQUE KEY(`id`)", "`note` VARCHAR(400) NULL DEFAULT \"n/a\"", "`amount` DECIMAL(10, 2) NULL",
		"`at` DATETIMEV2(6) NOT NULL DEFAULT CURRENT_TIMESTAMP", `"enable_unique_key_merge_on_write" = "true"`,
		`"light_schema_change" = "true"`, `"function_column.sequence_type" = "LARGEINT"`, "COMMENT 'orders'", "BUCKETS 4"} {
		if !strings.Contains(shown, want) {
			t.Errorf("SHOW CREATE TABLE lacks %q:\n%s", want, shown)
		}
	}
	// What SHOW CREATE TABLE prints creates the same table again.
	c.exec("d", "DROP TABLE orders")
	c.exec("d", shown)
	again, _ := c.query("d", "SHOW CREATE TABLE orders")
	if *again[0][1] != shown {
		t.Fatalf("round trip:\n%s\nvs\n%s", *again[0][1], shown)
	}
	expectRows(t, c.rows("d", "DESC orders"), strings.Join([]string{
		"id|BIGINT|NO|true|NULL|", "note|VARCHAR(400)|YES|false|n/a|", "amount|DECIMAL(10, 2)|YES|false|NULL|",
		"at|DATETIMEV2(6)|NO|false|CURRENT_TIMESTAMP|", "doc|JSON|YES|false|NULL|", "big|LARGEINT|YES|false|NULL|",
		"day|DATEV2|YES|false|NULL|"}, "\n"))
	expectRows(t, c.rows("d", "SHOW TABLES"), "orders")
	expectRows(t, c.rows("information_schema", "SHOW DATABASES"), "information_schema\nd")
	expectRows(t, c.rows("d", "SELECT @@version_comment"), VersionComment)
	expectRows(t, c.rows("d", "SELECT version() AS v"), "5.7.99")

	for stmt, want := range map[string]string{
		"CREATE TABLE bad (v INT, k INT) UNIQUE KEY(k) DISTRIBUTED BY HASH(k)": "Key columns should be a ordered prefix of the schema",
		"CREATE TABLE bad (k VARCHAR(70000)) DUPLICATE KEY(k)":                 "65533",
		"CREATE TABLE bad (k DECIMAL(40, 2)) DUPLICATE KEY(k)":                 "Precision of decimal must between 1 and 38",
		"CREATE TABLE orders (k INT) DUPLICATE KEY(k)":                         "Table 'orders' already exists",
		"SELECT * FROM nope": "errCode = 2, detailMessage = Table [nope] does not exist in database [d].",
		"DROP TABLE nope":    "errCode = 2, detailMessage = Unknown table 'nope'",
		"SELEC 1":            "errCode = 2, detailMessage = Syntax error",
		"SELECT 1; SELECT 2": "Syntax error",
	} {
		_, err := c.query("d", stmt)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", stmt, err, want)
		}
	}
	c.exec("d", "DROP TABLE IF EXISTS nope")
	c.exec("d", "DROP DATABASE d")
	expectRows(t, c.rows("information_schema", "SHOW DATABASES"), "information_schema")
}

func TestAlterThenLoad(t *testing.T) {
	e := start(t)
	c := newClient(t, e)
	setupKV(t, c)
	c.mustLoad("d", "kv", nil, "1\ta\n")
	c.exec("d", "ALTER TABLE kv ADD COLUMN n INT NULL DEFAULT \"7\" AFTER k")
	expectRows(t, c.rows("d", "SELECT * FROM kv"), "1|7|a")
	c.mustLoad("d", "kv", nil, "2\t8\tb\n")
	c.exec("d", "ALTER TABLE kv DROP COLUMN v")
	c.mustLoad("d", "kv", map[string]string{"format": "json"}, `{"k": 3, "n": 9}`)
	expectRows(t, c.rows("d", "SELECT * FROM kv ORDER BY k"), "1|7\n2|8\n3|9")
	c.exec("d", "ALTER TABLE kv MODIFY COLUMN n BIGINT NULL")
	if _, err := c.query("d", "ALTER TABLE kv MODIFY COLUMN n INT NULL"); err == nil || !strings.Contains(err.Error(), "Can not change BIGINT to INT") {
		t.Fatalf("narrowing: %v", err)
	}
	if _, err := c.query("d", "ALTER TABLE kv DROP COLUMN k"); err == nil || !strings.Contains(err.Error(), "key column") {
		t.Fatalf("drop key: %v", err)
	}
	c.exec("d", "ALTER TABLE kv RENAME kv2")
	expectRows(t, c.rows("d", "SELECT count(*) FROM kv2"), "3")
	expectRows(t, c.rows("d", "DESC kv2"), "k|INT|NO|true|NULL|\nn|BIGINT|YES|false|NULL|")
	// A load precommitted before a column is dropped still commits.
	c.exec("d", "ALTER TABLE kv2 ADD COLUMN w VARCHAR(3)")
	pre := c.mustLoad("d", "kv2", map[string]string{"two_phase_commit": "true", "label": "p"}, "4\t1\tzz\n")
	c.exec("d", "ALTER TABLE kv2 DROP COLUMN w")
	if st, msg := c.txn2PC("d", map[string]string{"txn_operation": "commit", "label": "p"}); st != "Success" {
		t.Fatalf("commit after drop column %d: %s", pre.TxnID, msg)
	}
	expectRows(t, c.rows("d", "SELECT * FROM kv2 WHERE k = 4"), "4|1")
}
