package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// A cutover is the moment applications move from the source to the
// destination: with the source quiet, it waits until the task has applied
// everything the source had written when it was asked, then runs the
// cutover's steps (cutoverSteps) and reports what each did. It runs on the
// node that answers the API, beside the task's units, with its own
// sessions: the spec's secrets are resolved there, as for a precheck or a
// delete.

// CutoverOptions are a cutover's inputs.
type CutoverOptions struct {
	// Wait bounds the wait for the task to catch up.
	Wait time.Duration
	// JetStream holds the task's change stream, whose group consumers
	// say how far the apply groups are.
	JetStream jetstream.JetStream
	Logger    *slog.Logger
}

// cutoverStep is one step of a cutover, run after the catch-up.
type cutoverStep struct {
	name string
	run  func(c *cutover, ctx context.Context) error
}

// cutoverSteps run in this order once the task has caught up: the
// sequences set exactly, then the destination's held objects given the
// source's definitions back (apply.Releaser).
var cutoverSteps = []cutoverStep{
	{"sequences", (*cutover).syncSequences},
	{"held objects", (*cutover).release},
}

// release gives held triggers, rules and foreign keys the source's
// definitions back (a destination user without replica mode).
func (c *cutover) release(ctx context.Context) error {
	sink, err := apply.Open(ctx, c.spec, apply.Use{Kind: apply.UseCutover, Logger: c.opts.Logger})
	if err != nil {
		return err
	}
	defer sink.Close(context.Background())
	r, ok := sink.(apply.Releaser)
	if !ok {
		return nil
	}
	c.report.Released, err = r.Release(ctx, c.spec.Name)
	return err
}

// cutover is one cutover of a task.
type cutover struct {
	task   *coordinator.Task
	spec   *proto.TaskSpec
	opts   CutoverOptions
	src    *pgx.Conn
	report *proto.CutoverReport
}

// Cutover waits until the task has applied every change the source wrote
// up to now, then runs the cutover's steps. The caller checked that the
// task is incremental and runs; an error that wraps
// coordinator.ErrCutoverTimeout
// says what was behind.
func Cutover(ctx context.Context, task *coordinator.Task, opts CutoverOptions) (*proto.CutoverReport, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	src, err := pgconfig.Connect(ctx, task.Spec.Source.ConnDSN(), "sluice cutover "+task.Spec.Name)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the source: %w", err)
	}
	defer src.Close(context.Background())
	c := &cutover{task: task, spec: &task.Spec, opts: opts, src: src, report: &proto.CutoverReport{Task: task.Spec.Name, Steps: []string{}, Sequences: []proto.CutoverSequence{}}}
	started := time.Now()
	if err := c.catchUp(ctx); err != nil {
		return nil, err
	}
	c.report.WaitedMS = time.Since(started).Milliseconds()
	for _, step := range cutoverSteps {
		if err := step.run(c, ctx); err != nil {
			return nil, fmt.Errorf("cutover step %s: %w", step.name, err)
		}
		c.report.Steps = append(c.report.Steps, step.name)
	}
	opts.Logger.Info("cutover", "task", task.Spec.Name, "source_lsn", c.report.SourceLSN, "waited_ms", c.report.WaitedMS,
		"sequences", len(c.report.Sequences), "failed", len(c.report.Failed()))
	return c.report, nil
}

// catchUp waits until the destination has every change the source wrote
// before now (waitApplied).
func (c *cutover) catchUp(ctx context.Context) error {
	target, err := currentLSN(ctx, c.src)
	if err != nil {
		return err
	}
	c.report.SourceLSN = target.String()
	err = waitApplied(ctx, c.src, c.opts.JetStream, c.spec.Name, target, time.Now().Add(c.opts.Wait))
	var behind *behindError
	if errors.As(err, &behind) {
		return fmt.Errorf("%w (waited %s for the source's WAL position %s): %s; stop writes at the source, check `sluice task get %s`, and try again (--timeout sets the wait)",
			coordinator.ErrCutoverTimeout, c.opts.Wait, target, behind.what, c.spec.Name)
	}
	return err
}

// currentLSN is the source's WAL position now.
func currentLSN(ctx context.Context, src *pgx.Conn) (proto.LSN, error) {
	var text string
	if err := src.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		return 0, fmt.Errorf("read the source's WAL position: %w", err)
	}
	return proto.ParseLSN(text)
}

// behindError: the destination did not have the source's changes up to
// a position by the deadline; what says what was behind.
type behindError struct{ what string }

func (e *behindError) Error() string { return "the task is behind: " + e.what }

// waitApplied waits until the destination has every change the source
// wrote up to target: the capture has confirmed target (so every change
// up to it is in the stream, invariant 1), and every apply group has
// acknowledged the stream up to its last message then (a group
// acknowledges once it has applied). Past the deadline it returns a
// *behindError.
func waitApplied(ctx context.Context, src *pgx.Conn, js jetstream.JetStream, task string, target proto.LSN, deadline time.Time) error {
	// pause waits a moment, or says what is behind once the wait is over.
	pause := func(behind string) error {
		if time.Now().After(deadline) {
			return &behindError{what: behind}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
			return nil
		}
	}
	for {
		slot, err := capture.LookupSlot(ctx, src, task)
		if err != nil {
			return err
		}
		if !slot.Exists {
			return fmt.Errorf("replication slot %s is missing in the source", proto.SlotName(task))
		}
		if slot.ConfirmedLSN >= target {
			break
		}
		if err := pause(fmt.Sprintf("the capture has confirmed the source's changes up to %s only (%d bytes behind)", slot.ConfirmedLSN, uint64(target-slot.ConfirmedLSN))); err != nil {
			return err
		}
	}
	last, err := apply.StreamLastSeq(ctx, js, task)
	if err != nil {
		return err
	}
	for {
		floors, err := apply.AckFloors(ctx, js, task)
		if err != nil {
			return err
		}
		var behind []string
		for name, floor := range floors {
			if floor < last {
				behind = append(behind, fmt.Sprintf("%s has applied the stream up to message %d of %d", name, floor, last))
			}
		}
		if len(floors) > 0 && len(behind) == 0 {
			return nil
		}
		if len(floors) == 0 {
			behind = append(behind, "the task's apply groups have no consumers yet")
		}
		if err := pause(strings.Join(behind, "; ")); err != nil {
			return err
		}
	}
}

// syncSequences sets every sequence of the task at the destination to the
// source's value exactly, and reports each. A sequence that cannot be read
// at the source or is missing at the destination is reported with why;
// the others are set all the same.
func (c *cutover) syncSequences(ctx context.Context) error {
	d, err := apply.Lookup(c.spec.Destination.Type)
	if err != nil {
		return err
	}
	if !d.Capabilities().Sequences {
		c.report.Note = fmt.Sprintf("a %s destination keeps no sequences", c.spec.Destination.Type)
		return nil
	}
	tables, err := c.tables(ctx)
	if err != nil {
		return err
	}
	refs, err := capture.TaskSequences(ctx, c.src, c.spec.Objects, tables)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		c.report.Note = "the task has no sequences"
		return nil
	}
	oids := make([]uint32, len(refs))
	for i, r := range refs {
		oids[i] = r.OID
	}
	states, _, err := capture.SequenceStates(ctx, c.src, oids)
	if err != nil {
		return err
	}
	names := c.spec.Names()
	var updates []proto.SequenceUpdate
	at := map[proto.TableID]int{} // destination name: index in the report
	for _, ref := range refs {
		dst := DestinationSequence(names, ref)
		row := proto.CutoverSequence{Source: ref.ID.String(), Destination: dst.String()}
		if st, ok := states[ref.OID]; ok {
			row.SourceValue = &st
			at[dst] = len(c.report.Sequences)
			updates = append(updates, proto.SequenceUpdate{Name: dst, SequenceState: st})
		} else {
			row.Error = "cannot be read at the source: the source's user needs SELECT on it"
		}
		c.report.Sequences = append(c.report.Sequences, row)
	}
	if len(updates) == 0 {
		return nil
	}
	sink, err := apply.Open(ctx, c.spec, apply.Use{Kind: apply.UseCutover, Logger: c.opts.Logger})
	if err != nil {
		return err
	}
	defer sink.Close(context.Background())
	syncer, ok := sink.(apply.SequenceSyncer)
	if !ok {
		return fmt.Errorf("the %s destination claims sequences but cannot set them", c.spec.Destination.Type)
	}
	results, err := syncer.SetSequences(ctx, updates)
	if err != nil {
		return fmt.Errorf("at the destination: %w", err)
	}
	for _, res := range results {
		row := &c.report.Sequences[at[res.Name]]
		if res.Missing {
			row.Error = "missing at the destination"
			continue
		}
		before, after := res.Before, res.After
		row.Before, row.After = &before, &after
	}
	return nil
}

// tables are the task's tables as recorded (DDL sync and task updates
// change them); the selection's for a task from before they were.
func (c *cutover) tables(ctx context.Context) ([]proto.TableID, error) {
	if c.task.Tables == nil {
		return capture.ListTables(ctx, c.src, c.spec.Objects)
	}
	out := make([]proto.TableID, len(c.task.Tables))
	for i, key := range c.task.Tables {
		out[i] = proto.TableIDFromKey(key)
	}
	return out, nil
}
