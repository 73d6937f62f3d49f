package coordinator

import (
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// A two-way task is two tasks in the state: the forward one, as the user
// created it, and its reverse direction (proto.ReverseSpec), named
// proto.ReverseTaskName, with ReverseOf set. The reverse one has its own
// slot, stream, positions, epoch and retry window, so everything that runs
// a task runs it; it is created, paused, resumed, deleted and re-derived
// (settings, resealed secrets) with its forward task, and scheduled only
// once the forward task is incremental (the forward copy is in).

// reverseOf is the reverse direction of a two-way forward task (nil for
// any other task).
func (d *data) reverseOf(t *Task) *Task {
	if t.Spec.TwoWay == nil || t.Spec.TwoWay.Reverse {
		return nil
	}
	return d.Tasks[proto.ReverseTaskName(t.Spec.Name)]
}

// createReverse adds the reverse direction of a two-way task being
// created at index.
func (d *data) createReverse(fwd *Task, index uint64) error {
	spec, err := fwd.Spec.ReverseSpec()
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if _, ok := d.Tasks[spec.Name]; ok {
		return fmt.Errorf("%w: %s (the name of %s's reverse direction)", ErrTaskExists, spec.Name, fwd.Spec.Name)
	}
	d.Tasks[spec.Name] = &Task{
		Spec:        spec,
		ReverseOf:   fwd.Spec.Name,
		CreatedAt:   fwd.CreatedAt,
		Phase:       proto.PhasePrecheck,
		State:       proto.StatePending,
		Epoch:       index,
		CreateIndex: index,
		ModifyIndex: index,
	}
	return nil
}

// refreshReverses derives again the spec of every reverse direction whose
// forward task the entry at index changed (settings, throttle, resealed
// secrets follow it).
func (d *data) refreshReverses(index uint64) {
	for _, t := range d.Tasks {
		if t.ReverseOf == "" {
			continue
		}
		fwd := d.Tasks[t.ReverseOf]
		if fwd == nil || fwd.ModifyIndex != index {
			continue
		}
		if spec, err := fwd.Spec.ReverseSpec(); err == nil {
			t.Spec = spec
		}
	}
}

// ReverseWaits reports a reverse direction that must not run yet: its
// forward task has not reached incremental sync (or is gone).
func ReverseWaits(t *Task, forward func(name string) (Task, bool)) bool {
	if t.ReverseOf == "" {
		return false
	}
	fwd, ok := forward(t.ReverseOf)
	return !ok || fwd.Phase != proto.PhaseIncremental
}
