package coordinator

import (
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/coordinator/scheduler"
	"github.com/sluicedb/sluice/proto"
)

// What the leader accepts from other nodes. A forwarded command comes
// from a unit running on a follower (its status, its progress), so only
// the commands units write are taken, each only from a node that holds a
// unit of the task it names, and, for the capture unit's commands, only
// with the task's current epoch (a deposed owner's late writes are
// refused). Everything users do (create, delete, pause, settings, tokens)
// goes through the public API on the leader instead, with a token and
// the API's own validation; a node certificate does not replace it.

// maxForwardedError bounds an error message a unit records.
const maxForwardedError = 16 << 10

// unitKinds are the units allowed to send a command.
type forwardRule struct {
	kinds []scheduler.Kind
	// epoch: the command must carry the task's current epoch.
	epoch bool
	check func(t *Task, cmd Command) error
}

var capture = []scheduler.Kind{scheduler.KindCapture}

var forwardRules = map[CommandType]forwardRule{
	CmdBumpEpoch:         {kinds: capture},
	CmdSetTaskStatus:     {kinds: []scheduler.Kind{scheduler.KindCapture, scheduler.KindApply, scheduler.KindCopy}, check: checkStatus},
	CmdMarkSlotCreated:   {kinds: capture, epoch: true},
	CmdMarkTablesCopied:  {kinds: capture, epoch: true, check: checkTableKeys},
	CmdResetTablesCopied: {kinds: capture, epoch: true},
	CmdMarkPostDataDone:  {kinds: capture, epoch: true},
	CmdSetTaskTables:     {kinds: capture, epoch: true, check: checkTableKeys},
	CmdMarkKeptTables:    {kinds: capture, epoch: true, check: checkTableKeys},
	CmdFinishAdding:      {kinds: capture, epoch: true, check: checkTableKeys},
	CmdSetFullSyncPlan:   {kinds: capture, epoch: true, check: checkPlan},
	CmdMarkFullSyncReady: {kinds: capture, epoch: true},
	CmdMarkChunkCopied:   {kinds: []scheduler.Kind{scheduler.KindCopy}},
	CmdRecordVerify:      {kinds: capture, epoch: true, check: checkVerifyRecords},
	// The status's counters: the FSM orders a unit's runs by epoch.
	CmdReportRowsApplied: {kinds: []scheduler.Kind{scheduler.KindApply}},
	CmdMarkChunkProgress: {kinds: []scheduler.Kind{scheduler.KindCopy}},
	CmdResolveError:      {kinds: []scheduler.Kind{scheduler.KindCapture, scheduler.KindApply, scheduler.KindCopy}},
}

// taskCommand is a command about one task.
type taskCommand interface {
	Command
	taskName() string
}

// epochCommand carries the epoch of the unit that sent it.
type epochCommand interface {
	unitEpoch() uint64
}

// checkForwarded decides whether the leader proposes cmd, sent by node
// from. Its errors wrap ErrStaleEpoch when the sender is not (or no
// longer) the unit's owner, so that a unit stops as it does when fenced.
func (c *Coordinator) checkForwarded(from string, cmd Command) error {
	rule, ok := forwardRules[cmd.Type()]
	tc, isTask := cmd.(taskCommand)
	if !ok || !isTask {
		return fmt.Errorf("%s is not accepted from other nodes: users' changes go through the API", commandName(cmd.Type()))
	}
	name := tc.taskName()
	t, found := c.Task(name)
	if !found {
		return fmt.Errorf("%w: %s", ErrTaskNotFound, name)
	}
	if !c.holdsUnit(from, name, rule.kinds) {
		return fmt.Errorf("%w: node %s runs no %s unit of task %s", ErrStaleEpoch, from, kindsText(rule.kinds), name)
	}
	if rule.epoch {
		ec, ok := cmd.(epochCommand)
		if !ok || ec.unitEpoch() == 0 {
			return fmt.Errorf("%s from node %s carries no epoch", commandName(cmd.Type()), from)
		}
		if ec.unitEpoch() != t.Epoch {
			return fmt.Errorf("%w: %s is at epoch %d, node %s wrote from %d", ErrStaleEpoch, name, t.Epoch, from, ec.unitEpoch())
		}
	}
	if rule.check != nil {
		return rule.check(&t, cmd)
	}
	return nil
}

func (c *Coordinator) holdsUnit(node, task string, kinds []scheduler.Kind) bool {
	for _, a := range c.Assignments() {
		u := a.UnitID()
		for _, k := range kinds {
			if a.Node == node && u.Task == task && u.Kind == k {
				return true
			}
		}
	}
	return false
}

func kindsText(kinds []scheduler.Kind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, " or ")
}

var (
	validPhases = map[proto.Phase]bool{"": true, proto.PhasePrecheck: true, proto.PhaseSchema: true, proto.PhaseFull: true, proto.PhaseIncremental: true}
	validStates = map[proto.State]bool{"": true, proto.StatePending: true, proto.StateRunning: true, proto.StateRetrying: true,
		proto.StateFailed: true, proto.StateReleased: true}
)

// checkStatus: a unit reports phases and states a unit reaches (never
// paused, which is the user's), with a bounded error.
func checkStatus(_ *Task, cmd Command) error {
	s := cmd.(*SetTaskStatus)
	if !validPhases[s.Phase] || !validStates[s.State] {
		return fmt.Errorf("set task status: phase %q, state %q are not a unit's to set", s.Phase, s.State)
	}
	if s.Error != nil && (len(s.Error.Message) > maxForwardedError || (s.Error.Kind != proto.ErrorConnection && s.Error.Kind != proto.ErrorOther)) {
		return fmt.Errorf("set task status: bad error (kind %q, %d bytes)", s.Error.Kind, len(s.Error.Message))
	}
	return nil
}

// checkTableKeys: table keys are "schema\x00table", never the reserved
// schema.
func checkTableKeys(_ *Task, cmd Command) error {
	var keys []string
	switch c := cmd.(type) {
	case *MarkTablesCopied:
		for k := range c.Tables {
			keys = append(keys, k)
		}
	case *SetTaskTables:
		keys = c.Tables
	case *MarkKeptTables:
		keys = c.Tables
	case *FinishAdding:
		keys = c.Tables
	}
	for _, k := range keys {
		id := proto.TableIDFromKey(k)
		if id.Schema == "" || id.Name == "" || id.Schema == proto.ReservedSchema || strings.Count(k, "\x00") != 1 {
			return fmt.Errorf("%s: %q is not a table", commandName(cmd.Type()), k)
		}
	}
	return nil
}

// checkVerifyRecords: a round of continuous verification records the
// task's tables, each once, with a bounded error.
func checkVerifyRecords(t *Task, cmd Command) error {
	var tables map[string]bool // nil: a task from before its tables were recorded
	if t.Tables != nil {
		tables = map[string]bool{}
		for _, k := range t.Tables {
			tables[proto.TableIDFromKey(k).String()] = true
		}
	}
	seen := map[string]bool{}
	for _, r := range cmd.(*RecordVerify).Results {
		if seen[r.Table] || len(r.Error) > maxForwardedError || (tables != nil && !tables[r.Table]) {
			return fmt.Errorf("record verify of %s: table %q is not the task's, or recorded twice", t.Spec.Name, r.Table)
		}
		seen[r.Table] = true
	}
	return nil
}

// checkPlan: a plan copies the task's tables with the task's own row
// filters (a plan is SQL a copy unit runs: its filter must be the one
// the user gave, which the API validated).
func checkPlan(t *Task, cmd Command) error {
	for _, pc := range cmd.(*SetFullSyncPlan).Plan.Tables {
		if pc.Table.Schema == proto.ReservedSchema || pc.Filter != t.Spec.RowFilter(pc.Table) {
			return fmt.Errorf("full-sync plan of %s: table %s is not copied as the task says", t.Spec.Name, pc.Table)
		}
	}
	return nil
}

// The task a command names, and the epoch it carries.
func (c *BumpEpoch) taskName() string         { return c.Name }
func (c *SetTaskStatus) taskName() string     { return c.Name }
func (c *MarkSlotCreated) taskName() string   { return c.Name }
func (c *MarkTablesCopied) taskName() string  { return c.Name }
func (c *ResetTablesCopied) taskName() string { return c.Name }
func (c *MarkPostDataDone) taskName() string  { return c.Name }
func (c *SetTaskTables) taskName() string     { return c.Name }
func (c *MarkKeptTables) taskName() string    { return c.Name }
func (c *FinishAdding) taskName() string      { return c.Name }
func (c *SetFullSyncPlan) taskName() string   { return c.Name }
func (c *MarkFullSyncReady) taskName() string { return c.Name }
func (c *MarkChunkCopied) taskName() string   { return c.Name }
func (c *RecordVerify) taskName() string      { return c.Name }
func (c *ReportRowsApplied) taskName() string { return c.Name }
func (c *MarkChunkProgress) taskName() string { return c.Name }
func (c *ResolveError) taskName() string      { return c.Name }

func (c *MarkSlotCreated) unitEpoch() uint64   { return c.Epoch }
func (c *MarkTablesCopied) unitEpoch() uint64  { return c.Epoch }
func (c *ResetTablesCopied) unitEpoch() uint64 { return c.Epoch }
func (c *MarkPostDataDone) unitEpoch() uint64  { return c.Epoch }
func (c *SetTaskTables) unitEpoch() uint64     { return c.Epoch }
func (c *MarkKeptTables) unitEpoch() uint64    { return c.Epoch }
func (c *FinishAdding) unitEpoch() uint64      { return c.Epoch }
func (c *SetFullSyncPlan) unitEpoch() uint64   { return c.Epoch }
func (c *MarkFullSyncReady) unitEpoch() uint64 { return c.Epoch }
func (c *RecordVerify) unitEpoch() uint64      { return c.Epoch }
