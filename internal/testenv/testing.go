package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// NewPostgres starts a cluster for a test and removes it at cleanup.
func NewPostgres(t testing.TB, opts ...PostgresOptions) *Postgres {
	t.Helper()
	var o PostgresOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	pg, err := StartPostgres(o)
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(pg.Destroy)
	return pg
}

// Conn opens a connection closed at cleanup.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// MustExec runs SQL or fails the test.
func MustExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// CheckFor polls f every interval until it returns nil or total has passed;
// then it fails the test with f's last error. Poll, don't sleep.
func CheckFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}
