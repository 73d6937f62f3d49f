package throttle

import (
	"context"
	"testing"
	"time"
)

// A lifted limit lets a long wait through at once; no limit never waits.
func TestLiftedLimitReleasesWaiters(t *testing.T) {
	var l Limiter
	if err := l.Wait(context.Background(), 1_000_000, 1<<30); err != nil {
		t.Fatal(err)
	}
	l.Set(10, 0, 0)
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), 1000, 0) }() // 100 s at 10 rows/s
	time.Sleep(300 * time.Millisecond)
	l.Set(0, 0, 0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a wait outlived the lifted limit")
	}
	if r, b, e := l.Limits(); r != 0 || b != 0 || e != 0 {
		t.Fatalf("limits %v %v %v", r, b, e)
	}
}

// A cancelled context ends a wait.
func TestWaitHonoursContext(t *testing.T) {
	var l Limiter
	l.Set(1, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 100, 0); err == nil {
		t.Fatal("a 100 s wait returned without error under a 200 ms deadline")
	}
}
