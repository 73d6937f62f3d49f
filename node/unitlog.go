package node

import (
	"context"
	"log/slog"
	"strings"

	"github.com/sluicedb/sluice/coordinator/scheduler"
)

// Every record a unit logs carries the same fields (README "Logs"):
// task, unit (capture, apply/N or copy/N: the unit within its task),
// node (this node's id, from Up's logger) and epoch (the assignment's,
// which fences the unit), so one task's records can be followed across
// nodes and reassignments with a filter on fields. A record about one
// table adds table at its call site.

// unitLogger derives the logger of a unit from the node's once, at the
// unit's start; everything the unit runs (its pipeline, sink, capture)
// logs through it.
func unitLogger(base *slog.Logger, id scheduler.UnitID, epoch uint64) *slog.Logger {
	fixed := []slog.Attr{slog.String("task", id.Task), slog.String("unit", unitName(id)), slog.Uint64("epoch", epoch)}
	return slog.New(&unitHandler{inner: base.Handler().WithAttrs(fixed), fixed: fixed})
}

// unitName is the unit within its task: "capture", "apply/3", "copy/1".
func unitName(id scheduler.UnitID) string {
	return strings.TrimPrefix(id.String(), id.Task+"/")
}

// unitHandler leaves out a call site's field when the unit's logger
// already carries it with the same value: the packages below a unit
// (pipeline, capture, apply) name the task at their call sites as well,
// since they also log outside units, and a record should not say
// "task" twice. A different value is kept.
type unitHandler struct {
	inner slog.Handler
	fixed []slog.Attr
}

func (h *unitHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *unitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &unitHandler{inner: h.inner.WithAttrs(h.drop(as)), fixed: h.fixed}
}

// WithGroup nests later fields under a group, where they cannot repeat
// the unit's top-level ones.
func (h *unitHandler) WithGroup(name string) slog.Handler { return h.inner.WithGroup(name) }

func (h *unitHandler) Handle(ctx context.Context, r slog.Record) error {
	repeats := false
	r.Attrs(func(a slog.Attr) bool {
		repeats = h.repeats(a)
		return !repeats
	})
	if !repeats {
		return h.inner.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	var kept []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		if !h.repeats(a) {
			kept = append(kept, a)
		}
		return true
	})
	out.AddAttrs(kept...)
	return h.inner.Handle(ctx, out)
}

func (h *unitHandler) drop(as []slog.Attr) []slog.Attr {
	var kept []slog.Attr
	for _, a := range as {
		if !h.repeats(a) {
			kept = append(kept, a)
		}
	}
	return kept
}

// repeats reports whether a is one of the unit's fields with its value.
func (h *unitHandler) repeats(a slog.Attr) bool {
	for _, f := range h.fixed {
		if a.Key == f.Key && a.Value.Resolve().String() == f.Value.String() {
			return true
		}
	}
	return false
}
