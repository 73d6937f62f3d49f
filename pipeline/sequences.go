package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/proto"
)

// Sequences in step during incremental sync. Sequences are not in the
// change stream (pgoutput carries no sequence changes), so the capture
// unit reads the source's values itself, every Config.SequenceInterval
// and as soon as the source goes quiet after changes, and moves the
// destination's forward (apply.SequenceSyncer). Rows inserted at the
// destination after a cutover then get keys the source never handed out.

// defaultSequenceInterval is how often sequences are brought in step
// while the source is busy.
const defaultSequenceInterval = 5 * time.Second

// Variables for the tests' sake.
var (
	// quietCheck is how often the capture's activity is looked at: a
	// second without a change after some is a quiet point.
	quietCheck = time.Second
	// sequenceRelist: the task's sequences are listed again this often
	// (DDL sync adds tables, and their sequences, to a running task).
	sequenceRelist = time.Minute
	// sequenceFailureLimit: rounds failing for this long end the attempt,
	// so that the failure reaches the task's retry windows; shorter
	// trouble is retried at the next round and only logged.
	sequenceFailureLimit = 2 * time.Minute
)

// sequenceSession is a Session that reads the source's sequences
// (pgSession). A source without it keeps no sequences in step.
type sequenceSession interface {
	Session
	// TaskSequences lists the task's sequences: those the tables' column
	// defaults call or their columns own, and those objects select.
	TaskSequences(ctx context.Context, tables []proto.TableID) ([]capture.SequenceRef, error)
	// LastValues reads the sequences' last values in one query; those
	// not called yet are absent, those the user may not read denied.
	LastValues(ctx context.Context, oids []uint32) (values map[uint32]int64, denied []uint32, err error)
}

var (
	_ sequenceSession = (*pgSession)(nil)
	_ activitySource  = (*PGSource)(nil)
)

// activitySource is a Source that counts the changes its capture has
// seen (PGSource): the keeper tells quiet points by it.
type activitySource interface {
	Changes() int64
}

// sequenceKeeper keeps one attempt's sequences in step.
type sequenceKeeper struct {
	r      *Runner
	spec   *proto.TaskSpec
	source Source
	sink   apply.SequenceSyncer
	names  *proto.NameMap
	// tables are the attempt's tables, for a task whose set is not
	// recorded.
	tables []proto.TableID

	session sequenceSession
	refs    []capture.SequenceRef
	listed  time.Time
	// sent is the value last moved forward at the destination per
	// source OID: an unchanged value is not written again.
	sent map[uint32]int64
	// warned: sequences already named in a warning (denied at the
	// source, missing at the destination), so each is named once.
	warned map[string]bool
}

// newSequenceKeeper returns the keeper of an attempt's sequences, or nil
// when it has none to keep: the destination has no sequences, the task
// does not sync the schema (the destination's sequences are the user's),
// or it is two-way (each side hands out its own share of the values, see
// the two_way.sequences precheck).
func (r *Runner) newSequenceKeeper(spec *proto.TaskSpec, source Source, sink apply.TaskSink, tables []proto.TableID) *sequenceKeeper {
	syncer, ok := sink.(apply.SequenceSyncer)
	if !ok || !spec.Sync.SchemaEnabled() || spec.IsTwoWay() {
		return nil
	}
	return &sequenceKeeper{r: r, spec: spec, source: source, sink: syncer, names: spec.Names(), tables: tables,
		sent: map[uint32]int64{}, warned: map[string]bool{}}
}

// run brings the sequences in step every interval and at quiet points,
// until ctx ends or rounds have failed for sequenceFailureLimit.
func (k *sequenceKeeper) run(ctx context.Context) error {
	defer k.closeSession()
	interval := k.r.Config.SequenceInterval
	tick := time.NewTicker(min(quietCheck, interval))
	defer tick.Stop()
	var lastRound, failingSince time.Time
	seen, atRound := k.changes(), int64(-1)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := k.changes()
		quiet := now == seen && now != atRound
		seen = now
		if !quiet && time.Since(lastRound) < interval {
			continue
		}
		err := k.round(ctx)
		// A failed round is tried again at the interval, or at the next
		// quiet point: not at every check.
		lastRound, atRound = time.Now(), now
		switch {
		case err == nil:
			if !failingSince.IsZero() {
				k.r.Logger.Info("sequences in step again", "task", k.r.Name)
			}
			failingSince = time.Time{}
		case ctx.Err() != nil:
			return ctx.Err()
		case failingSince.IsZero():
			failingSince = lastRound
			k.r.Logger.Warn("cannot bring sequences in step; trying again", "task", k.r.Name, "kind", Classify(err), "err", err)
		case time.Since(failingSince) >= sequenceFailureLimit:
			return fmt.Errorf("keep sequences in step (failing since %s): %w", failingSince.Format(time.RFC3339), err)
		}
	}
}

// changes is the capture's count of changes (0 when unknown: then only
// the interval paces the rounds).
func (k *sequenceKeeper) changes() int64 {
	if a, ok := k.source.(activitySource); ok {
		return a.Changes()
	}
	return 0
}

func (k *sequenceKeeper) closeSession() {
	if k.session != nil {
		k.session.Close()
		k.session = nil
	}
}

// round reads the source's values and moves those that changed forward
// at the destination.
func (k *sequenceKeeper) round(ctx context.Context) error {
	values, err := k.read(ctx)
	if err != nil {
		k.closeSession() // perhaps broken: a new one next round
		return err
	}
	var batch []proto.SequenceUpdate
	var sent []uint32
	for _, ref := range k.refs {
		v, ok := values[ref.OID]
		if prev, done := k.sent[ref.OID]; !ok || done && prev == v {
			continue
		}
		batch = append(batch, proto.SequenceUpdate{Name: DestinationSequence(k.names, ref), SequenceState: proto.SequenceState{LastValue: v, IsCalled: true}})
		sent = append(sent, ref.OID)
	}
	if len(batch) == 0 {
		return nil
	}
	missing, err := k.sink.AdvanceSequences(ctx, batch)
	if err != nil {
		return fmt.Errorf("at the destination: %w", err)
	}
	// Missing ones count as sent too: they are tried again once their
	// source value moves, not every round.
	for i, oid := range sent {
		k.sent[oid] = batch[i].LastValue
	}
	if len(missing) > 0 {
		names := make([]string, len(missing))
		for i, m := range missing {
			names[i] = m.String()
		}
		k.warnOnce(names, "these sequences are missing at the destination: they are not kept in step")
	}
	k.r.Logger.Debug("sequences brought in step", "task", k.r.Name, "sequences", len(batch)-len(missing))
	return nil
}

// read reads the last values of the task's sequences at the source (nil
// when it has none, or the source cannot read sequences).
func (k *sequenceKeeper) read(ctx context.Context) (map[uint32]int64, error) {
	if k.session == nil {
		s, err := k.source.Session(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to source: %w", err)
		}
		ss, ok := s.(sequenceSession)
		if !ok {
			s.Close()
			return nil, nil
		}
		k.session = ss
	}
	if k.refs == nil || time.Since(k.listed) >= sequenceRelist {
		refs, err := k.session.TaskSequences(ctx, k.taskTables())
		if err != nil {
			return nil, err
		}
		k.refs, k.listed = refs, time.Now()
	}
	if len(k.refs) == 0 {
		return nil, nil
	}
	oids := make([]uint32, len(k.refs))
	for i, ref := range k.refs {
		oids[i] = ref.OID
	}
	values, denied, err := k.session.LastValues(ctx, oids)
	if err != nil {
		return nil, err
	}
	if len(denied) > 0 {
		k.warnOnce(k.sourceNames(denied), "the source's user may not read these sequences (GRANT SELECT ON SEQUENCE ...): they are not kept in step")
	}
	return values, nil
}

// taskTables are the task's tables now (DDL sync changes them), else the
// attempt's.
func (k *sequenceKeeper) taskTables() []proto.TableID {
	task, ok := k.r.Store.Task(k.r.Name)
	if !ok || task.Tables == nil {
		return k.tables
	}
	out := make([]proto.TableID, len(task.Tables))
	for i, key := range task.Tables {
		out[i] = proto.TableIDFromKey(key)
	}
	return out
}

func (k *sequenceKeeper) sourceNames(oids []uint32) []string {
	var out []string
	for _, ref := range k.refs {
		if slices.Contains(oids, ref.OID) {
			out = append(out, ref.ID.String())
		}
	}
	return out
}

// warnOnce logs a warning naming the sequences not named by one before.
func (k *sequenceKeeper) warnOnce(names []string, msg string) {
	var fresh []string
	for _, n := range names {
		if !k.warned[n] {
			k.warned[n] = true
			fresh = append(fresh, n)
		}
	}
	if len(fresh) > 0 {
		k.r.Logger.Warn(msg, "task", k.r.Name, "sequences", fresh)
	}
}

// DestinationSequence is the destination's name of a task's sequence.
// Schema sync creates sequences under their source names; one owned by a
// column moves with its table when the table's schema is renamed (SET
// SCHEMA takes owned sequences along), while a table's own renames leave
// its name as it is.
func DestinationSequence(names *proto.NameMap, ref capture.SequenceRef) proto.TableID {
	if ref.Owner != nil {
		if dst := names.Table(*ref.Owner); dst.Schema != ref.Owner.Schema {
			return proto.TableID{Schema: dst.Schema, Name: ref.ID.Name}
		}
	}
	return ref.ID
}
