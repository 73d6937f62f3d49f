// Package safe keeps a panic in one of Sluice's long-running goroutines
// from killing the process: Run and Go turn it into a *PanicError, which
// the unit's supervisor retries like any other failure (DESIGN invariant
// 7, the "other" window). Every recovered panic is counted (Counts, for
// /metrics) and handed to the process's hook (OnPanic), which logs its
// stack. Failpoint injects panics in tests.
//
// The package has no dependencies beyond the standard library, so that
// any package can use it.
package safe

import (
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// PanicError is a panic recovered by Run or Go. Its message names where
// it happened and the panic's value; the stack is in Stack, for the log,
// not in the message (which shows on the task).
type PanicError struct {
	Where string // the goroutine's name, as given to Run or Go
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack (debug.Stack)
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic in %s: %v", e.Where, e.Value)
}

// Run calls f in the current goroutine and returns its error, or a
// *PanicError when f panics (counted and passed to the hook).
// runtime.Goexit is not a panic and is not stopped.
func Run(where string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(where, v)
		}
	}()
	return f()
}

// Go returns a function that runs f as Run does, for errgroup.Group.Go:
// a panic becomes the group's error, which cancels the group's context.
func Go(where string, f func() error) func() error {
	return func() error { return Run(where, f) }
}

// Recovered records a value returned by recover() in a goroutine that has
// nowhere to return an error to: it takes the stack (call it in the
// deferred function itself, so the stack shows where the panic happened),
// counts the panic, calls the hook, and returns the *PanicError.
//
//	defer func() {
//		if v := recover(); v != nil {
//			fail(safe.Recovered("kafka connect", v))
//		}
//	}()
func Recovered(where string, v any) *PanicError {
	e := &PanicError{Where: where, Value: v, Stack: debug.Stack()}
	count(where)
	if h := hook.Load(); h != nil {
		func() {
			defer func() { _ = recover() }() // a broken hook must not undo the recovery
			(*h)(e.Where, e.Value, e.Stack)
		}()
	}
	return e
}

var (
	countsMu sync.Mutex
	counts   = map[string]uint64{}
	hook     atomic.Pointer[func(where string, value any, stack []byte)]
)

func count(where string) {
	countsMu.Lock()
	counts[where]++
	countsMu.Unlock()
}

// Counts returns how many panics were recovered in this process, by where
// (a copy).
func Counts() map[string]uint64 {
	countsMu.Lock()
	defer countsMu.Unlock()
	return maps.Clone(counts)
}

// Panics returns how many panics were recovered in this process at where.
func Panics(where string) uint64 {
	countsMu.Lock()
	defer countsMu.Unlock()
	return counts[where]
}

// OnPanic sets the hook called with every recovered panic (default: none;
// nil removes it). The process sets it once, at start, to log the panic
// with its stack; a later call replaces the hook. It is safe to call while
// goroutines recover.
func OnPanic(h func(where string, value any, stack []byte)) {
	if h == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&h)
}

// FailpointsEnv names the environment variable that arms failpoints.
const FailpointsEnv = "SLUICE_FAILPOINTS"

var (
	fpOnce sync.Once
	// fpArmed: name -> panics left. Written once, under fpOnce (or by
	// SetFailpoints, before the code under test runs).
	fpArmed map[string]*atomic.Int64
)

// Failpoint panics when the failpoint name is armed. It is for tests
// only: SLUICE_FAILPOINTS, read once at the first call in the process,
// lists comma-separated items "name=N" (or "name", N = 1): the first N
// times the failpoint is reached it panics. For example
// SLUICE_FAILPOINTS=apply-batch=2,capture-message=1. Unset, a call costs
// one atomic load (sync.Once's fast path) and a nil map check. A
// malformed variable arms nothing and is reported on stderr once.
func Failpoint(name string) {
	fpOnce.Do(loadFailpoints)
	if fpArmed == nil {
		return
	}
	if left := fpArmed[name]; left != nil && left.Add(-1) >= 0 {
		panic("failpoint " + name + " (" + FailpointsEnv + ")")
	}
}

func loadFailpoints() {
	spec := os.Getenv(FailpointsEnv)
	if spec == "" {
		return
	}
	armed, err := ParseFailpoints(spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s ignored: %v\n", FailpointsEnv, err)
		return
	}
	fpArmed = arm(armed)
}

// SetFailpoints arms failpoints from spec (SLUICE_FAILPOINTS's syntax)
// instead of the environment, for tests in the same process. Call it
// before any goroutine that may reach a failpoint runs; "" disarms all.
func SetFailpoints(spec string) error {
	armed, err := ParseFailpoints(spec)
	if err != nil {
		return err
	}
	fpOnce.Do(func() {}) // the environment is not read any more
	fpArmed = arm(armed)
	return nil
}

func arm(m map[string]int64) map[string]*atomic.Int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*atomic.Int64, len(m))
	for name, n := range m {
		out[name] = new(atomic.Int64)
		out[name].Store(n)
	}
	return out
}

// ParseFailpoints parses SLUICE_FAILPOINTS: comma-separated "name=N" or
// "name" (N = 1) items, N ≥ 0; spaces around items are ignored, and a
// name given twice adds up.
func ParseFailpoints(spec string) (map[string]int64, error) {
	out := map[string]int64{}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, count, hasCount := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("failpoint %q: no name", item)
		}
		n := int64(1)
		if hasCount {
			var err error
			n, err = strconv.ParseInt(strings.TrimSpace(count), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("failpoint %q: the count must be a number ≥ 0", item)
			}
		}
		out[name] += n
	}
	return out, nil
}
