package safe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// noLeak fails the test when goroutines started during it are still
// running once it ends.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// hooked installs a hook that records panics, removed at cleanup.
func hooked(t *testing.T) func() []string {
	var mu sync.Mutex
	var seen []string
	OnPanic(func(where string, value any, stack []byte) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s: %v: %t", where, value, strings.Contains(string(stack), "safe.boom")))
	})
	t.Cleanup(func() { OnPanic(nil) })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func boom(v any) error { panic(v) }

func TestRunRecovers(t *testing.T) {
	noLeak(t)
	seen := hooked(t)
	before := Panics("test-run")
	err := Run("test-run", func() error { return boom("kaput") })
	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err %T %v, want *PanicError", err, err)
	}
	if pe.Where != "test-run" || pe.Value != "kaput" || err.Error() != "panic in test-run: kaput" {
		t.Fatalf("panic error %+v, message %q", pe, err.Error())
	}
	if !strings.Contains(string(pe.Stack), "safe.boom") {
		t.Fatalf("the stack does not show where the panic happened:\n%s", pe.Stack)
	}
	if strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("the stack is in the message: %q", err.Error())
	}
	if got := Panics("test-run"); got != before+1 {
		t.Fatalf("counted %d, want %d", got, before+1)
	}
	if got := seen(); len(got) != 1 || got[0] != "test-run: kaput: true" {
		t.Fatalf("hook saw %q", got)
	}

	// No panic: f's own result, nothing counted.
	want := errors.New("plain")
	if err := Run("test-run", func() error { return want }); err != want {
		t.Fatalf("err %v, want %v", err, want)
	}
	if err := Run("test-run", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := Panics("test-run"); got != before+1 {
		t.Fatalf("counted %d after calls that did not panic, want %d", got, before+1)
	}

	// A runtime error, and panic(nil) (a *runtime.PanicNilError since Go 1.21).
	err = Run("test-run", func() error {
		var m map[string]int
		m["x"] = 1
		return nil
	})
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "nil map") {
		t.Fatalf("err %v", err)
	}
	if err := Run("test-run", func() error { return boom(nil) }); !errors.As(err, &pe) {
		t.Fatalf("panic(nil): err %v", err)
	}
}

// A panicking hook does not undo the recovery.
func TestBrokenHook(t *testing.T) {
	OnPanic(func(string, any, []byte) { panic("hook") })
	t.Cleanup(func() { OnPanic(nil) })
	err := Run("test-hook", func() error { return boom(1) })
	if err == nil || err.Error() != "panic in test-hook: 1" {
		t.Fatalf("err %v", err)
	}
}

// In an errgroup, a panic fails the group and cancels its context: the
// other goroutines stop, and the process lives on.
func TestGoInErrgroup(t *testing.T) {
	noLeak(t)
	hooked(t)
	g, ctx := errgroup.WithContext(context.Background())
	g.Go(Go("test-go-waiter", func() error {
		<-ctx.Done()
		return ctx.Err()
	}))
	g.Go(Go("test-go", func() error { return boom(errors.New("bad")) }))
	err := g.Wait()
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Where != "test-go" || err.Error() != "panic in test-go: bad" {
		t.Fatalf("group error %v", err)
	}
	if Panics("test-go-waiter") != 0 {
		t.Fatal("the waiter counted a panic")
	}
}

func TestCountsConcurrent(t *testing.T) {
	noLeak(t)
	before := Counts()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				_ = Run(fmt.Sprintf("test-count-%d", i%2), func() error { return boom("x") })
			}
		})
	}
	wg.Wait()
	after := Counts()
	for _, w := range []string{"test-count-0", "test-count-1"} {
		if got := after[w] - before[w]; got != 400 {
			t.Fatalf("%s: %d counted, want 400", w, got)
		}
	}
	// Counts is a copy.
	snapshot := maps.Clone(after)
	after["test-count-0"] = 0
	if Counts()["test-count-0"] != snapshot["test-count-0"] {
		t.Fatal("Counts returned the live map")
	}
}

func TestParseFailpoints(t *testing.T) {
	for _, c := range []struct {
		spec string
		want map[string]int64
		bad  bool
	}{
		{spec: "", want: map[string]int64{}},
		{spec: "apply-batch", want: map[string]int64{"apply-batch": 1}},
		{spec: "apply-batch=2,capture-message=1", want: map[string]int64{"apply-batch": 2, "capture-message": 1}},
		{spec: " a = 3 , ,b ", want: map[string]int64{"a": 3, "b": 1}},
		{spec: "a=0", want: map[string]int64{"a": 0}},
		{spec: "a=1,a=2", want: map[string]int64{"a": 3}},
		{spec: "a=x", bad: true},
		{spec: "a=-1", bad: true},
		{spec: "=2", bad: true},
		{spec: "a=", bad: true},
	} {
		got, err := ParseFailpoints(c.spec)
		if c.bad {
			if err == nil {
				t.Errorf("%q: no error, got %v", c.spec, got)
			}
			continue
		}
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("%q: %v %v, want %v", c.spec, got, err, c.want)
		}
	}
}

func TestFailpoint(t *testing.T) {
	t.Cleanup(func() { _ = SetFailpoints("") })
	if err := SetFailpoints("fp-a=2,fp-b"); err != nil {
		t.Fatal(err)
	}
	hits := func(name string) (n int) {
		for range 5 {
			if Run("test-fp", func() error { Failpoint(name); return nil }) != nil {
				n++
			}
		}
		return n
	}
	if n := hits("fp-a"); n != 2 {
		t.Fatalf("fp-a panicked %d times, want 2", n)
	}
	if n := hits("fp-b"); n != 1 {
		t.Fatalf("fp-b panicked %d times, want 1", n)
	}
	if n := hits("fp-c"); n != 0 {
		t.Fatalf("an unarmed failpoint panicked %d times", n)
	}
	if err := SetFailpoints("fp-a=x"); err == nil {
		t.Fatal("a bad spec was accepted")
	}
	if err := SetFailpoints(""); err != nil {
		t.Fatal(err)
	}
	Failpoint("fp-a") // disarmed: no panic
}

// The environment is read at the first use, in a fresh process: the test
// binary itself, started again with the variable set.
func TestFailpointFromEnvironment(t *testing.T) {
	if os.Getenv("SAFE_TEST_CHILD") != "" {
		n := 0
		for range 5 {
			if Run("child", func() error { Failpoint("env-fp"); return nil }) != nil {
				n++
			}
		}
		fmt.Printf("panics=%d\n", n)
		return
	}
	for _, c := range []struct{ env, want string }{
		{"env-fp=3,other=1", "panics=3"},
		{"env-fp", "panics=1"},
		{"", "panics=0"},
		{"env-fp=oops", "panics=0"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFailpointFromEnvironment$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SAFE_TEST_CHILD=1", FailpointsEnv+"="+c.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s=%q: %v\n%s", FailpointsEnv, c.env, err, out)
		}
		if !strings.Contains(string(out), c.want+"\n") {
			t.Fatalf("%s=%q: want %s, got:\n%s", FailpointsEnv, c.env, c.want, out)
		}
		if strings.Contains(c.env, "oops") && !strings.Contains(string(out), FailpointsEnv+" ignored") {
			t.Fatalf("a bad %s is not reported:\n%s", FailpointsEnv, out)
		}
	}
}

func BenchmarkFailpointUnset(b *testing.B) {
	_ = SetFailpoints("")
	for b.Loop() {
		Failpoint("apply-batch")
	}
}
