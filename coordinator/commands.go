package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// CommandType is the first byte of every Raft log entry Sluice writes. The
// values are persisted in the log and in other nodes' logs: never renumber
// or reuse one; retire a command by leaving its number unused.
type CommandType uint8

const (
	// 0 is never a command, so a zeroed entry fails instead of decoding.
	CmdCreateTask        CommandType = 1
	CmdSetTaskStatus     CommandType = 2
	CmdMarkSlotCreated   CommandType = 3
	CmdMarkTablesCopied  CommandType = 4
	CmdResetTablesCopied CommandType = 5
	CmdMarkPostDataDone  CommandType = 6
	CmdBumpEpoch         CommandType = 7
	CmdMarkDeleting      CommandType = 8
	CmdRemoveTask        CommandType = 9
	CmdPauseTask         CommandType = 10
	CmdResumeTask        CommandType = 11
	// Full-sync plans are 12 to 14 (fullsync.go).
	CmdSetThrottle    CommandType = 15
	CmdMarkKeptTables CommandType = 16
	CmdUpdateSettings CommandType = 17
	CmdSetTaskTables  CommandType = 18
	CmdChangeTables   CommandType = 19
	CmdFinishAdding   CommandType = 20
	// Nodes and assignments from 32 on (cluster.go).
)

// Command is a change to the replicated state. Its JSON form is the payload
// that follows the type byte in the log.
type Command interface {
	Type() CommandType
}

// CreateTask adds a task (NewCreateTask makes one from a spec). At is the
// creation time, chosen by the proposer so every replica stores the same
// value.
type CreateTask struct {
	Version Version1  `json:"version"`
	Spec    SpecV1    `json:"spec"`
	At      time.Time `json:"at"`
}

// SetTaskStatus records a task's phase, state and last error. Phase or State
// "" leave that field unchanged. A nil Error clears the last error unless
// KeepError is set (a state change that is not about the error, such as
// retrying -> running after a pause, keeps it).
type SetTaskStatus struct {
	Name string `json:"name"`
	// Epoch, when set, makes the write conditional: a runner reports with
	// the epoch it started under, and a pause (which raises the epoch)
	// turns its late reports into ErrStaleEpoch instead of overwriting
	// "paused".
	Epoch     uint64           `json:"epoch,omitempty"`
	Phase     proto.Phase      `json:"phase,omitempty"`
	State     proto.State      `json:"state,omitempty"`
	Error     *proto.TaskError `json:"error,omitempty"`
	KeepError bool             `json:"keep_error,omitempty"`
	// IfRunnable makes the write conditional on the task still running
	// (not paused, failed, finished or being deleted): an apply group's
	// report, which carries no task epoch, cannot undo a pause.
	IfRunnable bool `json:"if_runnable,omitempty"`
}

// MarkSlotCreated records that the task's replication slot exists and the
// LSN from which its changes are consistent (DESIGN invariant 4).
type MarkSlotCreated struct {
	Name          string    `json:"name"`
	ConsistentLSN proto.LSN `json:"consistent_lsn"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// MarkTablesCopied merges tables whose full sync finished, keyed by
// proto.TableID.Key(), with the LSN of the snapshot each was copied in,
// and adds the rows they held to the task's count.
type MarkTablesCopied struct {
	Name   string               `json:"name"`
	Tables map[string]proto.LSN `json:"tables"`
	Rows   int64                `json:"rows,omitempty"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// ResetTablesCopied forgets every copied table, for a full sync that starts
// over (a new slot means a new snapshot).
type ResetTablesCopied struct {
	Name string `json:"name"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// MarkPostDataDone records that secondary indexes, foreign keys and
// sequences were created after the full load.
type MarkPostDataDone struct {
	Name string `json:"name"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// BumpEpoch raises the task's fencing epoch, before its units are handed to
// a new owner (DESIGN invariant 3).
type BumpEpoch struct {
	Name string `json:"name"`
}

// MarkDeleting flags a task for deletion; nodes stop its units when they
// see it. It is idempotent so a failed delete can be retried.
type MarkDeleting struct {
	Name string `json:"name"`
}

// RemoveTask drops a task from the state, once its objects are cleaned up.
type RemoveTask struct {
	Name string `json:"name"`
}

// PauseTask stops a task where it is (its slot keeps the changes) and
// raises its epoch, fencing the units that were running.
type PauseTask struct {
	Name string `json:"name"`
}

// ResumeTask makes a paused or failed task runnable again.
type ResumeTask struct {
	Name string `json:"name"`
}

// MarkKeptTables records the tables (keys) that existed at the
// destination before the task created any, under conflicting_tables:
// ignore.
type MarkKeptTables struct {
	Name   string   `json:"name"`
	Tables []string `json:"tables"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// SetTaskTables fixes the tables a task syncs, when it starts.
type SetTaskTables struct {
	Name   string   `json:"name"`
	Tables []string `json:"tables"`
	// Linked: the tables foreign keys link, to their anchors (Task.Linked);
	// set with the first Tables only.
	Linked map[string]string `json:"linked,omitempty"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// ChangeTables adds tables to a running task and removes others: its
// objects become Objects (ObjectRecords); Add (keys) get schema and a copy
// while the others keep streaming, Remove stop being synced (the
// destination keeps them). Settings changes of the same update ride along
// (SettingsRecord).
type ChangeTables struct {
	Version Version1   `json:"version"`
	Name    string     `json:"name"`
	Objects []ObjectV1 `json:"objects"`
	Add     []string   `json:"add,omitempty"`
	Remove  []string   `json:"remove,omitempty"`
	SettingsV1
}

// FinishAdding records that the tables added by ChangeTables are created
// and copied.
type FinishAdding struct {
	Name   string   `json:"name"`
	Tables []string `json:"tables"`
	// Epoch is the capture unit's task epoch: a write from an earlier
	// owner is refused (ErrStaleEpoch). 0 (entries written before epochs
	// were carried) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

// UpdateSettings replaces the settings a running task takes without
// restarting: its retry windows, alerts, throttle and continuous
// verification (SettingsRecord).
type UpdateSettings struct {
	Version Version1 `json:"version"`
	Name    string   `json:"name"`
	SettingsV1
}

// SetThrottle replaces a running task's throttle (ThrottleRecord; nil
// lifts it); its units follow within a second.
type SetThrottle struct {
	Version  Version1    `json:"version"`
	Name     string      `json:"name"`
	Throttle *ThrottleV1 `json:"throttle,omitempty"`
}

func (CreateTask) Type() CommandType        { return CmdCreateTask }
func (SetTaskStatus) Type() CommandType     { return CmdSetTaskStatus }
func (MarkSlotCreated) Type() CommandType   { return CmdMarkSlotCreated }
func (MarkTablesCopied) Type() CommandType  { return CmdMarkTablesCopied }
func (ResetTablesCopied) Type() CommandType { return CmdResetTablesCopied }
func (MarkPostDataDone) Type() CommandType  { return CmdMarkPostDataDone }
func (BumpEpoch) Type() CommandType         { return CmdBumpEpoch }
func (MarkDeleting) Type() CommandType      { return CmdMarkDeleting }
func (RemoveTask) Type() CommandType        { return CmdRemoveTask }
func (PauseTask) Type() CommandType         { return CmdPauseTask }
func (ResumeTask) Type() CommandType        { return CmdResumeTask }
func (SetThrottle) Type() CommandType       { return CmdSetThrottle }
func (MarkKeptTables) Type() CommandType    { return CmdMarkKeptTables }
func (UpdateSettings) Type() CommandType    { return CmdUpdateSettings }
func (SetTaskTables) Type() CommandType     { return CmdSetTaskTables }
func (ChangeTables) Type() CommandType      { return CmdChangeTables }
func (FinishAdding) Type() CommandType      { return CmdFinishAdding }

// Errors returned by command handlers, through Coordinator.Apply.
var (
	// ErrTaskExists: a task of that name exists (possibly being deleted).
	ErrTaskExists = errors.New("task already exists")
	// ErrTaskNotFound: no task of that name.
	ErrTaskNotFound = errors.New("task not found")
	// ErrStaleEpoch: a conditional write came from a unit whose epoch is
	// no longer the task's (it was paused or handed to another owner).
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrBadTransition: the task's state does not allow the command.
	ErrBadTransition = errors.New("not allowed in the task's state")
	// ErrUnknownCommand: the type byte names no registered command. In the
	// log this means a newer Sluice wrote it, or the log is damaged.
	ErrUnknownCommand = errors.New("unknown command type")
)

// handler decodes and applies one command type.
type handler struct {
	name   string
	goType reflect.Type
	decode func(payload []byte) (Command, error)
	apply  func(d *data, index uint64, cmd Command) error
}

// handlers is indexed by the type byte; filled by register at init.
var handlers [256]*handler

// register adds the handler of one command type. Handlers run under the
// store's write lock and must check everything before changing anything,
// so that an error leaves the state as it was (every replica sees the same
// error for the same entry). They must not look at anything but the state
// and the command (no clock, no config, no validation rules that may change
// between versions): replaying an old log must give the same state.
func register[T any, P interface {
	*T
	Command
}](apply func(d *data, index uint64, cmd P) error) {
	var zero T
	typ := P(&zero).Type()
	if handlers[typ] != nil {
		panic(fmt.Sprintf("coordinator: command type %d registered twice", typ))
	}
	handlers[typ] = &handler{
		name:   reflect.TypeOf(zero).Name(),
		goType: reflect.TypeOf(zero),
		decode: func(payload []byte) (Command, error) {
			cmd := P(new(T))
			if err := decodeStrict(payload, cmd); err != nil {
				return nil, err
			}
			if c, ok := any(cmd).(checkedCommand); ok {
				if err := c.checkDecoded(); err != nil {
					return nil, err
				}
			}
			return cmd, nil
		},
		apply: func(d *data, index uint64, cmd Command) error {
			return apply(d, index, cmd.(P))
		},
	}
}

func init() {
	register(applyCreateTask)
	register(applySetTaskStatus)
	register(applyMarkSlotCreated)
	register(applyMarkTablesCopied)
	register(applyResetTablesCopied)
	register(applyMarkPostDataDone)
	register(applyBumpEpoch)
	register(applyMarkDeleting)
	register(applyRemoveTask)
	register(applyPauseTask)
	register(applyResumeTask)
	register(applySetThrottle)
	register(applyMarkKeptTables)
	register(applyUpdateSettings)
	register(applySetTaskTables)
	register(applyChangeTables)
	register(applyFinishAdding)
}

// Encode turns a command into a log entry: the type byte, then JSON. It
// refuses a command whose type is not registered to its Go type, or whose
// entry Decode would refuse, so a bad command fails on the proposer
// instead of in every replica's FSM.
func Encode(cmd Command) ([]byte, error) {
	v := reflect.ValueOf(cmd)
	if cmd == nil || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return nil, errors.New("coordinator: nil command")
	}
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	typ := cmd.Type()
	h := handlers[typ]
	if h == nil || v.Type() != h.goType {
		return nil, fmt.Errorf("coordinator: encode %T: %w %d", cmd, ErrUnknownCommand, typ)
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("coordinator: encode %s: %w", h.name, err)
	}
	// Every replica decodes the entry strictly, and stops if it cannot:
	// an entry that would not decode (a destination's key its own type
	// refuses) must fail here, on the proposer.
	if _, err := h.decode(payload); err != nil {
		return nil, fmt.Errorf("coordinator: encode %s: the entry would not decode: %w", h.name, err)
	}
	return append([]byte{byte(typ)}, payload...), nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// anything after the value. A newer Sluice may write fields this one does
// not know: ignoring them would apply the entry differently here than on
// the nodes that know them, so the replicas' states would part without
// anyone noticing. The types of the commands and of the state that decode
// themselves (UnmarshalJSON) refuse unknown fields too: ObjectV1 here,
// the destination's config and object options in proto.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// checkedCommand is a command with parts its JSON decoding leaves to
// someone else: the destination's keys of a spec, which its type decodes.
type checkedCommand interface {
	checkDecoded() error
}

func (c *CreateTask) checkDecoded() error {
	_, err := c.Spec.TaskSpec()
	return err
}

// Decode reads a log entry written by Encode, strictly (decodeStrict). The
// command is a pointer to the command struct.
func Decode(entry []byte) (Command, error) {
	if len(entry) == 0 {
		return nil, fmt.Errorf("coordinator: empty log entry: %w", ErrUnknownCommand)
	}
	h := handlers[entry[0]]
	if h == nil {
		return nil, fmt.Errorf("coordinator: %w %d (written by a newer Sluice?)", ErrUnknownCommand, entry[0])
	}
	cmd, err := h.decode(entry[1:])
	if err != nil {
		return nil, fmt.Errorf("coordinator: decode %s: %w", h.name, err)
	}
	return cmd, nil
}

// commandName names a command type for logs.
func commandName(typ CommandType) string {
	if h := handlers[typ]; h != nil {
		return h.name
	}
	return fmt.Sprintf("unknown(%d)", typ)
}

func applyCreateTask(d *data, index uint64, cmd *CreateTask) error {
	name := cmd.Spec.Name
	if name == "" {
		return errors.New("create task: the spec has no name")
	}
	if _, ok := d.Tasks[name]; ok {
		return fmt.Errorf("%w: %s", ErrTaskExists, name)
	}
	spec, err := cmd.Spec.TaskSpec()
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	// A task starts in precheck (passed before the command was proposed);
	// the node that runs it moves it through the phases its spec enables,
	// and to incremental only once its changes are being captured.
	t := &Task{
		Spec:        spec,
		CreatedAt:   cmd.At,
		Phase:       proto.PhasePrecheck,
		State:       proto.StatePending,
		Epoch:       index,
		CreateIndex: index,
		ModifyIndex: index,
	}
	if spec.TwoWay != nil {
		if spec.TwoWay.Reverse {
			return errors.New("create task: a reverse direction is made with its two-way task")
		}
		if err := d.createReverse(t, index); err != nil {
			return err
		}
	}
	d.Tasks[name] = t
	return nil
}

// checkEpoch refuses a capture unit's write from an earlier epoch (0:
// not checked, for entries from before writes carried their epoch).
func (t *Task) checkEpoch(epoch uint64) error {
	if epoch != 0 && epoch != t.Epoch {
		return fmt.Errorf("%w: %s is at epoch %d, the write came from %d", ErrStaleEpoch, t.Spec.Name, t.Epoch, epoch)
	}
	return nil
}

func applySetTaskStatus(d *data, index uint64, cmd *SetTaskStatus) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if cmd.Epoch != 0 && cmd.Epoch != t.Epoch {
		return fmt.Errorf("%w: %s is at epoch %d, the write came from %d", ErrStaleEpoch, cmd.Name, t.Epoch, cmd.Epoch)
	}
	if cmd.IfRunnable && !Runnable(t) {
		return fmt.Errorf("%w: %s is %s", ErrStaleEpoch, cmd.Name, t.State)
	}
	if cmd.Phase != "" {
		t.Phase = cmd.Phase
	}
	if cmd.State != "" {
		t.State = cmd.State
	}
	switch {
	case cmd.Error != nil:
		e := *cmd.Error
		t.LastError, t.ErrorResolvedAt = &e, time.Time{}
	case !cmd.KeepError:
		t.LastError, t.ErrorResolvedAt = nil, time.Time{}
	}
	t.ModifyIndex = index
	return nil
}

func applyMarkSlotCreated(d *data, index uint64, cmd *MarkSlotCreated) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	t.SlotCreated = true
	t.ConsistentLSN = cmd.ConsistentLSN
	t.ModifyIndex = index
	return nil
}

func applyMarkTablesCopied(d *data, index uint64, cmd *MarkTablesCopied) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	if t.TablesCopied == nil {
		t.TablesCopied = make(map[string]proto.LSN, len(cmd.Tables))
	}
	for k, lsn := range cmd.Tables {
		t.TablesCopied[k] = lsn
	}
	t.keepTableRows(cmd.Tables)
	t.RowsCopied += cmd.Rows
	t.ModifyIndex = index
	return nil
}

func applyResetTablesCopied(d *data, index uint64, cmd *ResetTablesCopied) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	t.TablesCopied = nil
	t.RowsCopied = 0
	t.TableRows = nil
	t.FullSync = nil
	t.ModifyIndex = index
	return nil
}

func applyMarkPostDataDone(d *data, index uint64, cmd *MarkPostDataDone) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	t.PostDataDone = true
	t.FullSync = nil
	t.ModifyIndex = index
	return nil
}

func applyBumpEpoch(d *data, index uint64, cmd *BumpEpoch) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	t.Epoch = index  // Raft indexes grow: comparable with assignments' epochs
	t.FullSync = nil // its snapshot lives with the capture unit being replaced
	t.ModifyIndex = index
	return nil
}

func applyMarkDeleting(d *data, index uint64, cmd *MarkDeleting) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	t.Deleting = true
	t.ModifyIndex = index
	if r := d.reverseOf(t); r != nil {
		r.Deleting, r.ModifyIndex = true, index
	}
	return nil
}

func applyRemoveTask(d *data, _ uint64, cmd *RemoveTask) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if r := d.reverseOf(t); r != nil {
		delete(d.Tasks, r.Spec.Name)
	}
	delete(d.Tasks, cmd.Name)
	return nil
}

func applyPauseTask(d *data, index uint64, cmd *PauseTask) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	switch {
	case t.Deleting:
		return fmt.Errorf("%w: %s is being deleted", ErrBadTransition, cmd.Name)
	case t.State == proto.StateReleased:
		return fmt.Errorf("%w: %s has finished", ErrBadTransition, cmd.Name)
	case t.State == proto.StatePaused:
		return nil
	}
	if r := d.reverseOf(t); r != nil && r.State != proto.StatePaused && r.State != proto.StateReleased {
		r.State, r.Epoch, r.FullSync, r.ModifyIndex = proto.StatePaused, index, nil, index
	}
	t.State = proto.StatePaused
	t.Epoch = index // Raft indexes grow: comparable with assignments' epochs
	t.FullSync = nil
	t.ModifyIndex = index
	return nil
}

func applyResumeTask(d *data, index uint64, cmd *ResumeTask) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if r := d.reverseOf(t); r != nil && (r.State == proto.StatePaused || r.State == proto.StateFailed) {
		// Resuming a two-way task resumes both directions, whichever
		// stopped (a task_failed conflict stops one).
		r.State, r.ModifyIndex = proto.StatePending, index
	}
	switch t.State {
	case proto.StatePaused, proto.StateFailed:
		t.State = proto.StatePending
		t.ModifyIndex = index
		return nil
	case proto.StatePending, proto.StateRunning, proto.StateRetrying:
		return nil // already runnable
	}
	return fmt.Errorf("%w: %s is %s", ErrBadTransition, cmd.Name, t.State)
}

func applySetThrottle(d *data, index uint64, cmd *SetThrottle) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if t.Deleting {
		return fmt.Errorf("%w: %s is being deleted", ErrBadTransition, cmd.Name)
	}
	t.Spec.Throttle = cmd.Throttle.spec()
	t.ModifyIndex = index
	return nil
}

func applyMarkKeptTables(d *data, index uint64, cmd *MarkKeptTables) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	t.KeptTables = make(map[string]bool, len(cmd.Tables))
	for _, k := range cmd.Tables {
		t.KeptTables[k] = true
	}
	t.ModifyIndex = index
	return nil
}

func applyUpdateSettings(d *data, index uint64, cmd *UpdateSettings) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if t.Deleting {
		return fmt.Errorf("%w: %s is being deleted", ErrBadTransition, cmd.Name)
	}
	cmd.applyTo(&t.Spec)
	t.ModifyIndex = index
	return nil
}

func applySetTaskTables(d *data, index uint64, cmd *SetTaskTables) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	t.Tables = slices.Clone(cmd.Tables)
	if cmd.Linked != nil {
		t.Linked = maps.Clone(cmd.Linked)
	}
	t.ModifyIndex = index
	return nil
}

func applyChangeTables(d *data, index uint64, cmd *ChangeTables) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if t.Phase != proto.PhaseIncremental || t.Tables == nil {
		return fmt.Errorf("%w: tables can be added and removed once the task is incremental (it is %s)", ErrBadTransition, t.Phase)
	}
	objects, err := objectSpecs(cmd.Objects)
	if err != nil {
		return err
	}
	// The objects' destination keys decode by the task's destination type,
	// strictly: an unknown key fails here, on every replica alike.
	c := proto.TaskSpec{Destination: proto.DestinationSpec{Type: t.Spec.Destination.Type}, Objects: objects}
	if err := c.BindObjectOptions(); err != nil {
		return err
	}
	t.Spec.Objects = c.Objects
	cmd.applyTo(&t.Spec)
	t.Tables = slices.DeleteFunc(t.Tables, func(k string) bool { return slices.Contains(cmd.Remove, k) })
	t.Adding = slices.DeleteFunc(t.Adding, func(k string) bool { return slices.Contains(cmd.Remove, k) })
	for _, k := range cmd.Add {
		if !slices.Contains(t.Tables, k) {
			t.Tables = append(t.Tables, k)
		}
		if !slices.Contains(t.Adding, k) {
			t.Adding = append(t.Adding, k)
		}
		delete(t.TablesCopied, k)
	}
	t.TablesChanges++
	t.ModifyIndex = index
	return nil
}

func applyFinishAdding(d *data, index uint64, cmd *FinishAdding) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	t.Adding = slices.DeleteFunc(t.Adding, func(k string) bool { return slices.Contains(cmd.Tables, k) })
	if len(t.Adding) == 0 {
		t.FullSync = nil // the added tables' plan is done
	}
	t.ModifyIndex = index
	return nil
}
