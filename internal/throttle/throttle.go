// Package throttle limits rows and bytes per second (task spec
// "throttle"), for full-sync copy units and apply groups alike. Limits
// change while it runs: a task update takes effect at the next wait.
package throttle

import (
	"context"
	"math"
	"sync"

	"golang.org/x/time/rate"
)

// Limiter holds a rows-per-second and a bytes-per-second limit, and an
// events-per-second one (the queries a copy unit sends). Zero means no
// limit. The zero value limits nothing.
type Limiter struct {
	mu                   sync.Mutex
	rows, bytes, events  *rate.Limiter
	rowsPS, bytesPS, ePS float64
}

// Set changes the limits; 0 lifts one.
func (l *Limiter) Set(rowsPerSec, bytesPerSec, eventsPerSec float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rows = update(l.rows, &l.rowsPS, rowsPerSec)
	l.bytes = update(l.bytes, &l.bytesPS, bytesPerSec)
	l.events = update(l.events, &l.ePS, eventsPerSec)
}

// Limits returns the limits in force.
func (l *Limiter) Limits() (rowsPerSec, bytesPerSec, eventsPerSec float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rowsPS, l.bytesPS, l.ePS
}

func update(lim *rate.Limiter, cur *float64, perSec float64) *rate.Limiter {
	if perSec == *cur {
		return lim
	}
	*cur = perSec
	if perSec <= 0 {
		return nil
	}
	// A burst of a tenth of a second's worth (at least 1) keeps the rate
	// even; Wait splits larger amounts.
	burst := int(math.Max(1, perSec/10))
	if lim == nil {
		return rate.NewLimiter(rate.Limit(perSec), burst)
	}
	lim.SetLimit(rate.Limit(perSec))
	lim.SetBurst(burst)
	return lim
}

// Wait blocks until rows and bytes may pass (one event with them).
func (l *Limiter) Wait(ctx context.Context, rows, bytes int) error {
	if err := l.waitN(ctx, func() *rate.Limiter { return l.rows }, rows); err != nil {
		return err
	}
	return l.waitN(ctx, func() *rate.Limiter { return l.bytes }, bytes)
}

// WaitEvent blocks until one more event (a query) may start.
func (l *Limiter) WaitEvent(ctx context.Context) error {
	return l.waitN(ctx, func() *rate.Limiter { return l.events }, 1)
}

// waitN takes n tokens in pieces no larger than the burst, looking up
// the limiter again for each piece: a limit changed or lifted meanwhile
// applies to the rest at once.
func (l *Limiter) waitN(ctx context.Context, which func() *rate.Limiter, n int) error {
	for n > 0 {
		l.mu.Lock()
		lim := which()
		l.mu.Unlock()
		if lim == nil {
			return nil
		}
		step := min(n, lim.Burst())
		if err := lim.WaitN(ctx, step); err != nil {
			return err
		}
		n -= step
	}
	return nil
}
