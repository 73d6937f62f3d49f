package testenv

import (
	"context"
	"testing"
)

func TestPostgresStartsLogical(t *testing.T) {
	pg := NewPostgres(t)
	conn := Conn(t, pg.DSN("postgres"))
	var level string
	if err := conn.QueryRow(context.Background(), "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
	if err := pg.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	conn2 := Conn(t, pg.DSN("postgres"))
	if err := conn2.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
