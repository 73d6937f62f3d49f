package testenv

import (
	"context"
	"strings"
	"testing"
)

// A failed comparison of small tables names the rows that differ.
func TestCompareTableNamesDifferingRows(t *testing.T) {
	pg := NewPostgres(t)
	conn := Conn(t, pg.DSN("postgres"))
	MustExec(t, conn, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a VALUES (1, 'same'), (2, 'old'); INSERT INTO b VALUES (1, 'same'), (2, 'new')`)
	err := CompareTable(context.Background(), conn, conn, "a", "b")
	if err == nil {
		t.Fatal("different tables compared equal")
	}
	for _, want := range []string{`only at the source: ["(2,old)"]`, `only at the destination: ["(2,new)"]`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %s", err, want)
		}
	}
	if err := CompareTable(context.Background(), conn, conn, "a", "(SELECT * FROM a)"); err != nil {
		t.Errorf("equal contents: %v", err)
	}
}
