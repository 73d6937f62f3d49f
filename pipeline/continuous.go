package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify"
)

// Continuous verification (the spec's verify block). The capture unit,
// beside its capture, compares one slice of each table's key space every
// interval, as sluice verify compares whole tables (a differing row is
// re-checked once the task has applied the source up to its read, so a
// row in flight is not reported), and records each table's result
// (RecordVerify, with the unit's epoch), which task get, /metrics and the
// differences alert read. The slices rotate: a table's key space is cut
// into 1/sample slices (verify.Window) and each round takes the one after
// the table's last, as recorded in the replicated state, so the rotation
// goes on across restarts and failovers. While a table's last
// verification left differences, each round compares that same range
// again (the whole table after sluice verify), so a difference stays
// reported until it is gone (repaired, by hand or by sluice verify
// --repair). Nothing is repaired here.
//
// Rounds run only while the task is running and incremental, with every
// added table copied; the spec is read at each tick, so task update
// turns rounds on, off, or to another interval or sample at once. A
// round that fails is logged and tried again at the next interval: it
// never stops the rows.

var (
	// verifyCheck is how often the loop looks whether a round is due.
	verifyCheck = time.Second
	// verifyRecordBatch bounds the tables recorded in one Raft entry.
	verifyRecordBatch = 200
)

// runVerify runs the rounds until ctx ends.
func (r *Runner) runVerify(ctx context.Context) error {
	if r.JetStream == nil {
		return nil // no stream to wait on: a runner made for tests
	}
	check := verifyCheck
	if r.Config.VerifyInterval > 0 {
		// A quarter of a (test's) short interval, so rounds keep to it.
		check = min(check, max(r.Config.VerifyInterval/4, 10*time.Millisecond))
	}
	tick := time.NewTicker(check)
	defer tick.Stop()
	var tried time.Time
	failing := false
	noted := &verifyNotes{tables: map[string]bool{}}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		task, ok := r.Store.Task(r.Name)
		if !ok || task.Spec.Verify == nil || !verifyNow(&task) {
			continue
		}
		every := task.Spec.Verify.Every()
		if r.Config.VerifyInterval > 0 {
			every = r.Config.VerifyInterval
		}
		if last := lastRound(&task); time.Since(last) < every || time.Since(tried) < every {
			continue
		}
		tried = time.Now()
		err := r.verifyRound(ctx, &task, noted)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				r.Logger.Warn("continuous verification failed; trying again at the next interval", "task", r.Name, "every", every, "err", err)
			}
			failing = true
		default:
			if failing {
				r.Logger.Info("continuous verification runs again", "task", r.Name)
			}
			failing = false
		}
	}
}

// verifyNow reports whether a round may run: the task applies changes
// and every table is there to compare (as sluice verify refuses
// otherwise). A retrying task waits: its re-checks could not wait for
// the apply.
func verifyNow(t *coordinator.Task) bool {
	return t.State == proto.StateRunning && running(t) && verifyRefused(t, proto.VerifyRequest{}) == ""
}

// lastRound is when the task's last round recorded a table (zero if none
// did): rounds keep their interval across restarts of the unit.
func lastRound(t *coordinator.Task) time.Time {
	var last time.Time
	for _, r := range t.Verified {
		if r.Sample != nil && r.At.After(last) {
			last = r.At
		}
	}
	return last
}

// verifyNotes are the notes an attempt of the unit logged already, so
// that each is logged once: the destination cannot be verified, tables
// left out of rounds.
type verifyNotes struct {
	refused bool
	tables  map[string]bool
}

// verifyRound compares a slice of every table of the task and records
// the results.
func (r *Runner) verifyRound(ctx context.Context, task *coordinator.Task, noted *verifyNotes) error {
	start := time.Now()
	spec := &task.Spec
	s, err := openVerify(ctx, task, false, &VerifyOptions{JetStream: r.JetStream, Logger: r.Logger})
	if errors.Is(err, coordinator.ErrVerifyRefused) {
		if !noted.refused {
			noted.refused = true
			r.Logger.Warn("continuous verification cannot run for this task", "task", r.Name, "why", err)
		}
		return nil
	} else if err != nil {
		return err
	}
	defer s.close()
	ids, err := verifySelection(ctx, s.src, task, nil)
	if err != nil {
		return err
	}
	tables, err := verifyTables(ctx, s.src, spec, ids)
	if err != nil {
		return err
	}
	n := spec.Verify.Windows()
	report := &proto.VerifyReport{Task: spec.Name, At: time.Now().UTC()}
	var samples []*proto.VerifySample
	var rows, differences int64
	compared := 0
	for i := range tables {
		t := &tables[i]
		var prev *proto.VerifyRecord
		if rec, ok := task.Verified[t.Source.String()]; ok {
			p := rec.Record()
			prev = &p
		}
		sample, estimate, skip, err := r.sampleOf(ctx, s, t, prev, n)
		var res proto.VerifyTableResult
		switch {
		case skip != "":
			if !noted.tables[t.Source.String()] {
				noted.tables[t.Source.String()] = true
				r.Logger.Info("continuous verification leaves a table out", "task", r.Name, "table", t.Source.String(), "why", skip)
			}
			continue
		case err != nil:
			res = proto.VerifyTableResult{Table: t.Source.String(), Dest: t.Dest.String(), Error: err.Error()}
			sample = &proto.VerifySample{Windows: 1} // a round's record all the same
		default:
			opts := s.opts
			if sample.Windows > 1 {
				rng := sample.Range()
				opts.Range, opts.RangeRows = &rng, estimate/int64(sample.Windows)
			}
			res = verify.Table(ctx, s.side, s.reader, nil, t, opts)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.logSampled(&res, sample)
		compared++
		rows += res.Rows
		differences += int64(len(res.Differences)) + res.More
		report.Tables = append(report.Tables, res)
		samples = append(samples, sample)
		if len(report.Tables) >= verifyRecordBatch {
			if err := r.recordRound(ctx, report, samples); err != nil {
				return err
			}
			report.Tables, samples = nil, nil
		}
	}
	if err := r.recordRound(ctx, report, samples); err != nil {
		return err
	}
	r.Logger.Info("continuous verification round", "task", r.Name, "tables", compared, "rows", rows, "differences", differences,
		"ms", time.Since(start).Milliseconds())
	return nil
}

// sampleOf picks the part of a table a round compares, with the
// planner's estimate of the table's rows: the range its last
// verification left differences in, again; the whole table when it is
// small or keyless; else the slice after the one last compared. skip
// says why a table is left out.
func (r *Runner) sampleOf(ctx context.Context, s *verifySession, t *proto.VerifyTable, prev *proto.VerifyRecord, n int) (_ *proto.VerifySample, rows int64, skip string, err error) {
	if rows, err = s.side.EstimatedRows(ctx, t); err != nil {
		return nil, 0, "", err
	}
	whole := &proto.VerifySample{Windows: 1}
	small := rows <= r.Config.VerifyWholeRows
	switch {
	case t.Keyless() && !small && n > 1:
		return nil, rows, fmt.Sprintf("it has no key, and its about %d rows are too many to compare whole in each round (up to %d): verify it with sluice verify --table %s",
			rows, r.Config.VerifyWholeRows, t.Source), nil
	case prev != nil && prev.Outstanding() > 0:
		if prev.Sample == nil {
			return whole, rows, "", nil
		}
		again := *prev.Sample
		return &again, rows, "", nil
	case t.Keyless(), n <= 1, small:
		return whole, rows, "", nil
	}
	k := 0
	if prev != nil && prev.Sample != nil && prev.Sample.Windows == n {
		k = (prev.Sample.Window + 1) % n
	}
	rng, err := verify.Window(ctx, s.side, s.reader, t, rows, k, n)
	if err != nil {
		return nil, rows, "", err
	}
	return &proto.VerifySample{Window: k, Windows: n, From: rng.From, To: rng.To}, rows, "", nil
}

// logSampled logs a table's result; differences at warning, with the
// first keys (the record keeps counts only).
func (r *Runner) logSampled(res *proto.VerifyTableResult, sample *proto.VerifySample) {
	slice := "whole table"
	if sample != nil && sample.Windows > 1 {
		slice = fmt.Sprintf("slice %d/%d", sample.Window+1, sample.Windows)
	}
	if !res.Differs() {
		r.Logger.Debug("continuous verification", "task", r.Name, "table", res.Table, "sample", slice, "rows", res.Rows,
			"unsettled", res.Unsettled, "ms", res.DurationMS, "error", res.Error)
		return
	}
	var keys []string
	for _, d := range res.Differences[:min(len(res.Differences), 5)] {
		keys = append(keys, fmt.Sprintf("%s %v", d.Kind, d.Key))
	}
	r.Logger.Warn("continuous verification found rows that differ", "task", r.Name, "table", res.Table, "sample", slice,
		"rows", res.Rows, "differences", int64(len(res.Differences))+res.More, "first", keys)
}

// recordRound records a round's results, each with its sample.
func (r *Runner) recordRound(ctx context.Context, report *proto.VerifyReport, samples []*proto.VerifySample) error {
	if len(report.Tables) == 0 {
		return nil
	}
	cmd := coordinator.RecordVerify{Name: r.Name, Epoch: r.epoch}
	for i, rec := range report.Records() {
		rec.Sample = samples[i]
		cmd.Results = append(cmd.Results, coordinator.VerifyRecordOf(rec))
	}
	if err := r.Store.Apply(ctx, cmd); err != nil {
		return fmt.Errorf("record the verification: %w", err)
	}
	return nil
}
