// Package coordtest starts real one-voter coordinators for tests and
// offers a fake Backend for the HTTP API (the Backend is Sluice's own
// interface, so a fake stands in for the node without mocking a database).
package coordtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// Open starts a one-voter coordinator on dir, with a free loopback Raft
// port and no logs, and waits until it leads. It shuts down at the end of
// the test; Shutdown may be called earlier to reopen dir.
func Open(t testing.TB, dir string) *coordinator.Coordinator {
	t.Helper()
	c, err := coordinator.Open(coordinator.Config{DataDir: dir, BindAddr: "127.0.0.1:0", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// New is Open on a fresh t.TempDir().
func New(t testing.TB) *coordinator.Coordinator { return Open(t, t.TempDir()) }

// Backend is a coordinator.Backend that records its calls and returns
// what the test set. It is safe for concurrent use.
type Backend struct {
	mu          sync.Mutex
	precheckErr *proto.PrecheckError
	precheckRun error
	cleanupErr  error
	live        map[string]coordinator.Live
	prechecked  []proto.TaskSpec
	// fixes are the precheck options asked for (?fix=true): a precheck
	// with Fix reports "fixed" statements, one per call.
	fixes   []bool
	cleaned []proto.TaskSpec
	// cutover and cutoverErr are what Cutover returns; cutoverWaits
	// the waits it was called with.
	cutover    *proto.CutoverReport
	cutoverErr error
	// verify and verifyErr are what Verify returns; verifyRequests what
	// it was asked.
	verify         *proto.VerifyReport
	verifyErr      error
	verifyRequests []proto.VerifyRequest
	cutoverWaits   []time.Duration
}

var _ coordinator.Backend = (*Backend)(nil)

// SetPrecheckErr sets what Precheck returns from now on.
// SetPrecheckRunErr makes Precheck fail to run at all.
func (b *Backend) SetPrecheckRunErr(err error) { b.mu.Lock(); b.precheckRun = err; b.mu.Unlock() }

func (b *Backend) SetPrecheckErr(err *proto.PrecheckError) {
	b.mu.Lock()
	b.precheckErr = err
	b.mu.Unlock()
}

// SetCleanupErr sets what Cleanup returns from now on.
func (b *Backend) SetCleanupErr(err error) { b.mu.Lock(); b.cleanupErr = err; b.mu.Unlock() }

// SetLive sets the live metrics of a task.
func (b *Backend) SetLive(name string, l coordinator.Live) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live == nil {
		b.live = map[string]coordinator.Live{}
	}
	b.live[name] = l
}

// Prechecked returns the specs Precheck was called with.
func (b *Backend) Prechecked() []proto.TaskSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]proto.TaskSpec(nil), b.prechecked...)
}

// Fixes returns, for each precheck, whether it was asked to fix.
func (b *Backend) Fixes() []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.fixes...)
}

// Cleaned returns the specs Cleanup was called with.
func (b *Backend) Cleaned() []proto.TaskSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]proto.TaskSpec(nil), b.cleaned...)
}

// Precheck reports the problems SetPrecheckErr gave, as failures unless
// they say otherwise, and a pass otherwise.
func (b *Backend) Precheck(_ context.Context, spec *proto.TaskSpec, opts coordinator.PrecheckOptions) (*proto.PrecheckReport, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prechecked = append(b.prechecked, *spec)
	b.fixes = append(b.fixes, opts.Fix)
	if b.precheckRun != nil {
		return nil, b.precheckRun
	}
	r := &proto.PrecheckReport{Checks: []proto.Problem{{Check: "source.connect", Result: proto.ResultPass}}}
	if opts.Fix {
		r.Fixed = []string{"ALTER TABLE public.fake REPLICA IDENTITY FULL"}
	}
	if b.precheckErr != nil {
		for _, p := range b.precheckErr.Problems {
			if p.Result == "" {
				p.Result = proto.ResultFailure
			}
			r.Checks = append(r.Checks, p)
		}
	}
	return r, nil
}

func (b *Backend) Cleanup(_ context.Context, spec *proto.TaskSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleaned = append(b.cleaned, *spec)
	return b.cleanupErr
}

func (b *Backend) Live(name string) coordinator.Live {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live[name]
}

// TableChanges reports no table added or removed: the fake has no source.
func (b *Backend) TableChanges(ctx context.Context, task *coordinator.Task, objects []proto.ObjectSpec) (add, remove []string, err error) {
	return nil, nil, nil
}

// Conflicts reports none: the fake has no databases.
func (b *Backend) Conflicts(ctx context.Context, spec *proto.TaskSpec) ([]proto.ConflictCount, error) {
	return nil, nil
}

// Plan plans nothing: the fake has no source.
func (b *Backend) Plan(ctx context.Context, spec *proto.TaskSpec) (*proto.TaskPlan, error) {
	return &proto.TaskPlan{Task: spec.Name, Destination: spec.Destination.Type}, nil
}

// SetCutover sets what Cutover returns from now on.
func (b *Backend) SetCutover(r *proto.CutoverReport, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cutover, b.cutoverErr = r, err
}

// Cutover returns what SetCutover gave (an empty report by default): the
// fake has no databases.
func (b *Backend) Cutover(ctx context.Context, task *coordinator.Task, wait time.Duration) (*proto.CutoverReport, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cutoverWaits = append(b.cutoverWaits, wait)
	if b.cutover == nil && b.cutoverErr == nil {
		return &proto.CutoverReport{Task: task.Spec.Name, Steps: []string{}, Sequences: []proto.CutoverSequence{}}, nil
	}
	return b.cutover, b.cutoverErr
}

// SetVerify sets what Verify returns from now on.
func (b *Backend) SetVerify(r *proto.VerifyReport, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.verify, b.verifyErr = r, err
}

// Verify returns what SetVerify gave (an empty report by default), and
// records the request: verification runs against real databases in
// verify's and node's tests.
func (b *Backend) Verify(ctx context.Context, task *coordinator.Task, req proto.VerifyRequest) (*proto.VerifyReport, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.verifyRequests = append(b.verifyRequests, req)
	if b.verify == nil && b.verifyErr == nil {
		return &proto.VerifyReport{Task: task.Spec.Name, Tables: []proto.VerifyTableResult{}}, nil
	}
	return b.verify, b.verifyErr
}

// VerifyRequests are the requests Verify got.
func (b *Backend) VerifyRequests() []proto.VerifyRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]proto.VerifyRequest(nil), b.verifyRequests...)
}

// CutoverWaits returns the waits Cutover was called with.
func (b *Backend) CutoverWaits() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.cutoverWaits...)
}

// Token makes an API token of scope on c and returns its text.
func Token(t testing.TB, c *coordinator.Coordinator, scope coordinator.Scope) string {
	t.Helper()
	text, tok, err := coordinator.NewToken("test", scope, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Apply(ctx, coordinator.CreateToken{Token: tok}); err != nil {
		t.Fatal(err)
	}
	return text
}
