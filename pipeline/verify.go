package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// A verification (sluice verify) compares a task's tables at the source
// and the destination (package verify), on the node that answers the
// API, beside the task's units, with its own sessions. While the task
// runs, each re-check of a differing row waits until the task has
// applied the source up to where the row was read (waitApplied, as a
// cutover does).

// VerifyOptions are a verification's inputs.
type VerifyOptions struct {
	JetStream jetstream.JetStream
	Logger    *slog.Logger
	// Wait bounds each wait for the task to apply the source up to a
	// re-check's read.
	Wait time.Duration
	// Pause stops the task's apply units for a repair of a destination
	// that cannot hold its apply positions (apply.PausedRepairer): it
	// returns once no unit of the task writes, with resume, which runs
	// the task again (a no-op when the task was not running). Nil: such
	// destinations are not repaired.
	Pause func(ctx context.Context) (resume func(), err error)
}

// DefaultVerifyWait bounds each wait of a verification for the task.
const DefaultVerifyWait = 2 * time.Minute

// Verify compares the task's tables (req.Tables, source names; all when
// empty), and repairs them when asked.
func Verify(ctx context.Context, task *coordinator.Task, req proto.VerifyRequest, opts VerifyOptions) (*proto.VerifyReport, error) {
	spec := &task.Spec
	if why := verifyRefused(task, req); why != "" {
		return nil, fmt.Errorf("%w: %s", coordinator.ErrVerifyRefused, why)
	}
	s, err := openVerify(ctx, task, req.Repair, &opts)
	if err != nil {
		return nil, err
	}
	defer s.close()
	ids, err := verifySelection(ctx, s.src, task, req.Tables)
	if err != nil {
		return nil, err
	}
	if !running(task) && spec.Sync.IncrementalEnabled() {
		// A paused task: what the destination holds stays as it is, but
		// changes already in the stream would show as differences.
		target, err := currentLSN(ctx, s.src)
		if err != nil {
			return nil, err
		}
		err = waitApplied(ctx, s.src, opts.JetStream, spec.Name, target, time.Now())
		var behind *behindError
		if errors.As(err, &behind) {
			return nil, fmt.Errorf("%w: task %q is %s with changes not applied yet (%s): resume it (sluice task resume %s) and verify while it runs",
				coordinator.ErrVerifyRefused, spec.Name, task.State, behind.what, spec.Name)
		} else if err != nil {
			return nil, err
		}
	}
	tables, err := verifyTables(ctx, s.src, spec, ids)
	if err != nil {
		return nil, err
	}
	report := &proto.VerifyReport{Task: spec.Name, At: time.Now().UTC(), Repair: req.Repair, Tables: []proto.VerifyTableResult{}}
	for i := range tables {
		res := verify.Table(ctx, s.side, s.reader, s.repairer, &tables[i], s.opts)
		logVerified(opts.Logger, spec.Name, &res)
		report.Tables = append(report.Tables, res)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return report, nil
}

func logVerified(log *slog.Logger, task string, res *proto.VerifyTableResult) {
	log.Info("verified table", "task", task, "table", res.Table, "rows", res.Rows, "differences", len(res.Differences)+int(res.More),
		"repaired", res.Repaired, "unsettled", res.Unsettled, "ranges", res.Ranges, "bytes", res.BytesRead, "ms", res.DurationMS, "error", res.Error)
}

// verifySession is what a verification of a task works with: its own
// session at the source and sink at the destination, both ends' sides,
// and the comparisons' options (with, while the task runs, the wait of
// each re-check for the task to apply the source up to its read).
type verifySession struct {
	src      *pgx.Conn
	sink     apply.TaskSink
	side     *pgverify.Side
	reader   apply.VerifyReader
	repairer apply.Repairer
	opts     verify.Options
}

// openVerify connects a verification of the task (with opts' defaults
// set); repair asks for a destination that can be repaired.
func openVerify(ctx context.Context, task *coordinator.Task, repair bool, opts *VerifyOptions) (_ *verifySession, err error) {
	spec := &task.Spec
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultVerifyWait
	}
	s := &verifySession{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.src, err = pgconfig.Connect(ctx, spec.Source.ConnDSN(), "sluice verify "+spec.Name); err != nil {
		return nil, fmt.Errorf("cannot reach the source: %w", err)
	}
	if s.sink, err = apply.Open(ctx, spec, apply.Use{Kind: apply.UseVerify, Logger: opts.Logger}); err != nil {
		return nil, err
	}
	v, ok := s.sink.(apply.Verifiable)
	if !ok {
		return nil, fmt.Errorf("%w: a %s destination cannot be verified by Sluice yet", coordinator.ErrVerifyRefused, spec.Destination.Type)
	}
	s.reader = v.VerifyReader()
	s.repairer, _ = s.sink.(apply.Repairer)
	if repair && s.repairer == nil {
		return nil, fmt.Errorf("%w: a %s destination cannot be repaired by Sluice yet", coordinator.ErrVerifyRefused, spec.Destination.Type)
	}
	if p, ok := s.repairer.(apply.PausedRepairer); ok && p.RepairsPaused() {
		if repair && opts.Pause == nil {
			return nil, fmt.Errorf("%w: a %s destination is repaired with the task paused, which this node cannot do", coordinator.ErrVerifyRefused, spec.Destination.Type)
		}
		s.repairer = pausedRepairer{r: s.repairer, pause: opts.Pause}
	}
	s.side = pgverify.New(s.src, pgverify.Source)
	s.opts = verify.Options{Repair: repair, Task: spec.Name}
	if running(task) {
		src, js, wait := s.src, opts.JetStream, opts.Wait
		s.opts.WaitApplied = func(ctx context.Context, lsn proto.LSN) error {
			err := waitApplied(ctx, src, js, spec.Name, lsn, time.Now().Add(wait))
			var behind *behindError
			if errors.As(err, &behind) {
				return fmt.Errorf("could not re-check the differing rows: the task did not apply the source up to %s within %s (%s)", lsn, wait, behind.what)
			}
			return err
		}
	}
	return s, nil
}

// pausedRepairer repairs a destination that cannot hold its apply
// positions (apply.PausedRepairer) with the task paused: each repair
// pauses the task, waits until its apply units have stopped, writes,
// and resumes the task before it returns (also when it fails), so the
// re-check that follows (verify's settle) waits for a running task.
type pausedRepairer struct {
	r     apply.Repairer
	pause func(ctx context.Context) (resume func(), err error)
}

func (p pausedRepairer) Repair(ctx context.Context, task string, t *proto.VerifyTable, keys [][]string, read func(context.Context) (*apply.SourceRows, error)) (int, error) {
	resume, err := p.pause(ctx)
	if err != nil {
		return 0, fmt.Errorf("pause the task for the repair: %w", err)
	}
	defer resume()
	return p.r.Repair(ctx, task, t, keys, read)
}

func (p pausedRepairer) RepairKeyless(ctx context.Context, task string, t *proto.VerifyTable, rows []proto.VerifyRow) (int, error) {
	resume, err := p.pause(ctx)
	if err != nil {
		return 0, fmt.Errorf("pause the task for the repair: %w", err)
	}
	defer resume()
	return p.r.RepairKeyless(ctx, task, t, rows)
}

func (s *verifySession) close() {
	if s.sink != nil {
		s.sink.Close(context.Background())
	}
	if s.src != nil {
		s.src.Close(context.Background())
	}
}

// running reports whether the task applies changes now: a running
// task's re-checks wait for it.
func running(t *coordinator.Task) bool {
	return t.Phase == proto.PhaseIncremental && (t.State == proto.StateRunning || t.State == proto.StateRetrying)
}

// verifyRefused says why a task cannot be verified now ("" if it can).
func verifyRefused(t *coordinator.Task, req proto.VerifyRequest) string {
	name := t.Spec.Name
	switch {
	case t.Deleting:
		return fmt.Sprintf("task %q is being deleted", name)
	case t.Phase != proto.PhaseIncremental && t.Spec.Sync.IncrementalEnabled():
		return fmt.Sprintf("task %q is in phase %s: verify once its full sync is done (follow it with sluice task get %s)", name, t.Phase, name)
	case !t.PostDataDone:
		return fmt.Sprintf("task %q has not finished its full sync", name)
	case len(t.AddingNotCopied()) > 0:
		return fmt.Sprintf("task %q is still copying tables added to it (%s)", name, strings.Join(t.AddingNotCopied(), ", "))
	case req.Repair && t.Spec.IsTwoWay():
		return fmt.Sprintf("task %q is two-way: its destination is also a source, and a repair there would travel back; verify it, and repair by hand", name)
	}
	return ""
}

// verifySelection is the task's tables, or those of names among them.
func verifySelection(ctx context.Context, src *pgx.Conn, task *coordinator.Task, names []string) ([]proto.TableID, error) {
	var all []proto.TableID
	if task.Tables == nil {
		var err error
		if all, err = capture.ListTables(ctx, src, task.Spec.Objects); err != nil {
			return nil, err
		}
	} else {
		for _, key := range task.Tables {
			all = append(all, proto.TableIDFromKey(key))
		}
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []proto.TableID
	for _, n := range names {
		i := slices.IndexFunc(all, func(t proto.TableID) bool { return t.String() == n || t.Schema+"."+t.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("%w: %s is not one of task %s's tables", coordinator.ErrVerifyRefused, n, task.Spec.Name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// verifyTables describes the tables as verify compares them: the
// columns the task syncs, in order, the key (the primary key, else the
// replica identity's index; none: compared as a multiset of rows), the
// destination's names and the row filter.
func verifyTables(ctx context.Context, src *pgx.Conn, spec *proto.TaskSpec, ids []proto.TableID) ([]proto.VerifyTable, error) {
	names := spec.Names()
	out := make([]proto.VerifyTable, 0, len(ids))
	for _, id := range ids {
		rows, err := src.Query(ctx, `
			SELECT a.attname, coalesce(k.pos, 0), a.atttypid::int8, a.atttypmod, CASE WHEN t.typcategory = 'A' THEN coalesce(eb.typname::text || '[]', 'array') ELSE bt.typname::text END
			FROM pg_catalog.pg_attribute a
			JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
			JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
			LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND t.typcategory = 'A'
			LEFT JOIN pg_catalog.pg_type eb ON eb.oid = CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END
			LEFT JOIN LATERAL (SELECT (SELECT u.n FROM unnest(i.indkey) WITH ORDINALITY AS u(att, n) WHERE u.att = a.attnum) AS pos
				FROM pg_catalog.pg_index i
				WHERE i.indrelid = a.attrelid AND (i.indisprimary OR i.indisreplident)
				ORDER BY i.indisprimary DESC LIMIT 1) k ON true
			WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, pgx.Identifier{id.Schema, id.Name}.Sanitize())
		if err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", id, err)
		}
		type column struct {
			name, typ string
			pos       int
			oid       int64
			mod       int32
		}
		cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
			var c column
			err := r.Scan(&c.name, &c.pos, &c.oid, &c.mod, &c.typ)
			return c, err
		})
		if err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", id, err)
		}
		selected := spec.SelectedColumns(id)
		// A transformed column holds the expression's value, not the
		// source's: it is not compared (nor are added columns, which the
		// source does not have; now() could not be compared anyway). The
		// table's other columns, its key among them, are.
		transformed := map[string]bool{}
		for _, e := range spec.ColumnExprs(id) {
			transformed[e.Column] = true
		}
		t := proto.VerifyTable{Source: id, Dest: names.Table(id), Filter: spec.RowFilter(id)}
		keyAt, keyLen := map[int]int{}, 0 // key position -> index in Columns
		for _, c := range cols {
			if c.pos > 0 {
				keyLen++
			}
			if len(selected) > 0 && !slices.Contains(selected, c.name) || transformed[c.name] {
				continue
			}
			if c.pos > 0 {
				keyAt[c.pos] = len(t.Columns)
			}
			t.Columns = append(t.Columns, c.name)
			t.Types = append(t.Types, c.typ)
			t.TypeOIDs = append(t.TypeOIDs, uint32(c.oid))
			t.TypeMods = append(t.TypeMods, c.mod)
		}
		for pos := 1; pos <= keyLen; pos++ {
			i, ok := keyAt[pos]
			if !ok {
				t.Key = nil // a key column the task leaves out
				break
			}
			t.Key = append(t.Key, i)
		}
		t.DestColumns = names.ColumnsOf(id, t.Columns)
		out = append(out, t)
	}
	return out, nil
}
