package sinktest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// clock is a time the suite moves by hand, so spacing is checked without
// waiting.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// heartbeat is the source's heartbeat row at lsn.
func heartbeat(lsn uint64) proto.Row {
	return proto.Row{Op: proto.OpUpdate, Pos: at(lsn, 0), CommitTimeUS: 1714557600e6 + int64(lsn),
		New: tuple("task", "2024-05-01 10:00:00+00")}
}

// beat writes hb through s, which must be a HeartbeatWriter.
func beat(t *testing.T, s Sink, task string, hb proto.Row) {
	t.Helper()
	w, ok := s.(apply.HeartbeatWriter)
	if !ok {
		t.Fatalf("the destination claims Heartbeats, its sink %T is no apply.HeartbeatWriter", s)
	}
	must(t, w.WriteHeartbeat(t.Context(), task, 1, hb))
}

func wantHeartbeats(t *testing.T, d Destination, task string, want ...proto.Position) {
	t.Helper()
	if got := d.Heartbeats(t, task); !slices.Equal(got, want) {
		t.Fatalf("heartbeats of %s: %v, want %v", task, got, want)
	}
}

// newClock is the suite's clock for a heartbeat case, and the interval
// its sinks space heartbeats by.
func newClock() (*clock, time.Duration) {
	return &clock{now: time.Unix(1714557600, 0)}, 10 * time.Second
}

// The task's heartbeat writer writes the source's heartbeats where
// readers see them, at most one per interval; other units write none.
func heartbeats(t *testing.T, d Destination) {
	c, every := newClock()
	other := d.OpenHeartbeats(t, "beats.apply.1", false, every, c.Now)
	beat(t, other, "beats", heartbeat(0x100))
	w := d.OpenHeartbeats(t, "beats.apply.0", true, every, c.Now)
	beat(t, w, "beats", heartbeat(0x100))
	wantHeartbeats(t, d, "beats", at(0x100, 0))

	c.advance(every / 2)
	beat(t, w, "beats", heartbeat(0x200)) // within the interval: left out
	beat(t, other, "beats", heartbeat(0x200))
	c.advance(every / 2)
	beat(t, w, "beats", heartbeat(0x300))
	c.advance(every)
	beat(t, other, "beats", heartbeat(0x400))
	wantHeartbeats(t, d, "beats", at(0x100, 0), at(0x300, 0))
}

// A heartbeat that comes again (its batch replayed after a failure, once
// the interval has passed) is not written twice, and does not hold back
// the next one.
func heartbeatReplay(t *testing.T, d Destination) {
	c, every := newClock()
	w := d.OpenHeartbeats(t, "rebeats.apply.0", true, every, c.Now)
	beat(t, w, "rebeats", heartbeat(0x100))
	c.advance(3 * every)
	beat(t, w, "rebeats", heartbeat(0x100))
	beat(t, w, "rebeats", heartbeat(0x200))
	wantHeartbeats(t, d, "rebeats", at(0x100, 0), at(0x200, 0))
}

// A new owner of the heartbeat writer's unit (after a crash before the
// batch was acknowledged) that gets the last heartbeat again does not
// write it twice. It starts as an apply worker does, reading the task's
// positions.
func heartbeatReplayNewOwner(t *testing.T, d Destination) {
	c, every := newClock()
	beat(t, d.OpenHeartbeats(t, "newbeats.apply.0", true, every, c.Now), "newbeats", heartbeat(0x100))
	c.advance(every)
	next := d.OpenHeartbeats(t, "newbeats.apply.0", true, every, c.Now)
	_, err := next.Offsets(t.Context(), "newbeats")
	must(t, err)
	beat(t, next, "newbeats", heartbeat(0x100))
	beat(t, next, "newbeats", heartbeat(0x500))
	wantHeartbeats(t, d, "newbeats", at(0x100, 0), at(0x500, 0))
}
