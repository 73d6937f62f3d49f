package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// prepareReverse takes the consistent point of a two-way task's reverse
// direction as the forward copy is in, before the forward direction turns
// incremental: the reverse publication and slot at the forward
// destination, and the reverse direction's tables (the forward's, under
// the same names). Everything a user writes there from now on is
// captured; what the full sync wrote before is not sent back, and what
// the forward apply writes later carries its origin, which the reverse
// capture drops. The reverse direction starts from this slot once the
// coordinator sees the forward task incremental.
func (r *Runner) prepareReverse(ctx context.Context, fwd *coordinator.Task, tables []proto.TableID) error {
	name := proto.ReverseTaskName(fwd.Spec.Name)
	rev, ok := r.Store.Task(name)
	if !ok || rev.ReverseOf != fwd.Spec.Name || rev.SlotCreated {
		return nil
	}
	spec := rev.Spec
	source := r.Source(&spec)
	src, err := source.Session(ctx)
	if err != nil {
		return fmt.Errorf("connect to the destination for the reverse direction: %w", err)
	}
	defer src.Close()
	if err := src.PrepareSource(ctx, tables); err != nil {
		return fmt.Errorf("reverse direction: %w", err)
	}
	sink, err := r.OpenSink(ctx, &spec, apply.Use{Kind: apply.UseTask, Logger: r.Logger})
	if err != nil {
		return fmt.Errorf("reverse direction: %w", err)
	}
	defer sink.Close(context.Background())
	keys := make([]string, len(tables))
	for i, t := range tables {
		keys[i] = t.Key()
	}
	if err := r.Store.Apply(ctx, coordinator.SetTaskTables{Name: name, Epoch: rev.Epoch, Tables: keys}); err != nil {
		return err
	}
	snap, err := r.createSlot(ctx, name, rev.Epoch, source, src, sink)
	if err != nil {
		return fmt.Errorf("reverse direction: %w", err)
	}
	defer snap.Close()
	r.Logger.Info("two-way: the reverse direction's consistent point is taken", "task", fwd.Spec.Name, "reverse", name, "lsn", snap.LSN().String())
	return nil
}

// ConflictCounts counts a two-way task's conflicts by direction, kind
// and resolution, as logged in sluice.conflicts at both databases (the
// forward direction's at its destination, the reverse's at the source).
// spec is the forward direction's.
func ConflictCounts(ctx context.Context, spec *proto.TaskSpec) ([]proto.ConflictCount, error) {
	ep, ok := spec.Destination.Config.(proto.TwoWayEndpoint)
	if !ok || spec.TwoWay == nil {
		return nil, nil
	}
	var out []proto.ConflictCount
	var errs []error
	for _, dsn := range []string{spec.Source.ConnDSN(), ep.AsSource().ConnDSN()} {
		counts, err := conflictCountsAt(ctx, dsn, spec.ForwardName())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, counts...)
	}
	slices.SortFunc(out, func(a, b proto.ConflictCount) int {
		if c := cmp.Compare(a.Direction, b.Direction); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.Resolution, b.Resolution)
	})
	return out, errors.Join(errs...)
}

func conflictCountsAt(ctx context.Context, dsn, task string) ([]proto.ConflictCount, error) {
	conn, err := pgconfig.Connect(ctx, dsn, "sluice status")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('sluice.conflicts') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT direction, kind, resolution, count(*) FROM sluice.conflicts WHERE task = $1 GROUP BY 1, 2, 3`, task)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []proto.ConflictCount
	for rows.Next() {
		var c proto.ConflictCount
		if err := rows.Scan(&c.Direction, &c.Kind, &c.Resolution, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
