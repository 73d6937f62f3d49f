package coordinator

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Task specs in the Raft log and in snapshots.
//
// proto.TaskSpec is the user's: its shape follows the task YAML and
// changes with it. What the log holds must not change with it: every
// replica replays entries that earlier versions of Sluice wrote, and a
// snapshot outlives the binary that wrote it. So the commands that carry
// spec parts (CreateTask, ChangeTables, UpdateSettings, SetThrottle) and
// the tasks of a snapshot carry the records below: coordinator's own
// structs, made from the proto types where a command is built
// (NewCreateTask, SpecRecord, ObjectRecords, SettingsRecord,
// ThrottleRecord) and turned back into them where it is applied. A field
// added to proto.TaskSpec reaches the log only once it is added here too
// (TestSpecRecordComplete fills every field by reflection and fails until
// it is), a tag renamed in proto changes nothing persisted, and the golden
// files under testdata/ show every change of these bytes as a diff.
//
// Explicit structs rather than an envelope around proto's JSON
// ({"version": 1, "spec": <whatever proto.TaskSpec marshals to>}): an
// envelope would still persist proto's JSON of the day, and its version
// number would be right only as long as someone noticed every change of
// proto. Here the format is this file.
//
// Version 1 is the JSON Sluice wrote before the records existed (proto's
// JSON form then): the records reproduce it key for key, so entries and
// snapshots written by earlier versions decode as version 1 as they are.
// The commands that carry records also say so ("version": 1, Version1),
// so that a later, incompatible format (version 2: new structs, and a
// decoder that converts version 1 payloads) is refused here with a clear
// error rather than read as version 1.
//
// Two parts stay someone else's: the destination block and the
// destination's own keys of an objects entry belong to the destination
// type (proto.DestinationConfig, proto.ObjectOptions), which nothing
// outside apply/ names. They are kept as the JSON the destination writes,
// the keys users write in its YAML (so they cannot change lightly either),
// and decoded strictly by the destination's type: a spec's when its
// CreateTask or snapshot is decoded, ChangeTables's objects when it is
// applied, under the task's destination type (the command does not name
// it).

// Version1 marks a payload that carries version 1 records. It always
// writes 1 and reads 1 or nothing (payloads written before they carried a
// version are version 1); any other version was written by a newer Sluice
// and is refused.
type Version1 struct{}

func (Version1) MarshalJSON() ([]byte, error) { return []byte("1"), nil }

func (*Version1) UnmarshalJSON(b []byte) error {
	if string(b) != "1" {
		return fmt.Errorf("payload format version %s: this Sluice reads version 1 (written by a newer Sluice?)", b)
	}
	return nil
}

// SpecV1 is a task spec, version 1. Its keys are those of the task YAML;
// Destination is the destination block ({"type": ..., the type's keys}).
type SpecV1 struct {
	Name              string          `json:"name"`
	Source            SourceV1        `json:"source"`
	Destination       json.RawMessage `json:"destination"`
	Sync              SyncV1          `json:"sync"`
	Objects           []ObjectV1      `json:"objects"`
	ConflictingTables string          `json:"conflicting_tables,omitempty"`
	NameCase          string          `json:"name_case,omitempty"`
	Retry             RetryV1         `json:"retry"`
	Throttle          *ThrottleV1     `json:"throttle,omitempty"`
	Cluster           string          `json:"cluster,omitempty"`
	Alerts            *AlertsV1       `json:"alerts,omitempty"`
	TwoWay            *TwoWayV1       `json:"two_way,omitempty"`
	Verify            *VerifyV1       `json:"verify,omitempty"`
	PerTableMetrics   *bool           `json:"per_table_metrics,omitempty"`
}

// TwoWayV1 is a spec's two_way block, version 1.
type TwoWayV1 struct {
	Conflicts string `json:"conflicts,omitempty"`
	Reverse   bool   `json:"reverse,omitempty"`
	Peer      string `json:"peer,omitempty"`
}

func twoWayRecord(t *proto.TwoWaySpec) *TwoWayV1 {
	if t == nil {
		return nil
	}
	return &TwoWayV1{Conflicts: t.Conflicts, Reverse: t.Reverse, Peer: t.Peer}
}

func (t *TwoWayV1) spec() *proto.TwoWaySpec {
	if t == nil {
		return nil
	}
	return &proto.TwoWaySpec{Conflicts: t.Conflicts, Reverse: t.Reverse, Peer: t.Peer}
}

// SourceV1 is a spec's source, version 1.
type SourceV1 struct {
	DSN          string `json:"dsn"`
	PasswordFile string `json:"password_file,omitempty"`
}

// SyncV1 is a spec's phase selection, version 1.
type SyncV1 struct {
	Schema        *bool    `json:"schema,omitempty"`
	Full          *bool    `json:"full,omitempty"`
	Incremental   *bool    `json:"incremental,omitempty"`
	DDL           *bool    `json:"ddl,omitempty"`
	DDLOperations []string `json:"ddl_operations,omitempty"`
}

// ObjectV1 is an objects entry, version 1. Options are the destination
// type's own keys of the entry, which its JSON holds beside the others.
type ObjectV1 struct {
	Schema       string              `json:"schema"`
	Tables       []string            `json:"tables,omitempty"`
	Rename       map[string]string   `json:"rename,omitempty"`
	RenameSchema string              `json:"rename_schema,omitempty"`
	Filter       map[string]string   `json:"filter,omitempty"`
	Operations   map[string][]string `json:"operations,omitempty"`
	Columns      map[string][]string `json:"columns,omitempty"`
	Sequences    []string            `json:"sequences,omitempty"`
	// Transform and AddColumns: column transforms (ETL), absent before.
	Transform  map[string]map[string]string `json:"transform,omitempty"`
	AddColumns map[string]map[string]string `json:"add_columns,omitempty"`
	Options    map[string]json.RawMessage   `json:"-"`
}

// RetryV1 is a spec's retry windows, version 1.
type RetryV1 struct {
	Connection DurationV1 `json:"connection,omitempty"`
	Other      DurationV1 `json:"other,omitempty"`
}

// ThrottleV1 is a spec's throttle, version 1.
type ThrottleV1 struct {
	Full        *RateV1 `json:"full,omitempty"`
	Incremental *RateV1 `json:"incremental,omitempty"`
}

// RateV1 is a rate limit, version 1.
type RateV1 struct {
	RPS  int `json:"rps,omitempty"`
	MBPS int `json:"mbps,omitempty"`
	QPS  int `json:"qps,omitempty"`
}

// AlertsV1 is a spec's alerts, version 1.
type AlertsV1 struct {
	Webhook       string          `json:"webhook"`
	OnFailure     *bool           `json:"on_failure,omitempty"`
	Latency       *LatencyAlertV1 `json:"latency,omitempty"`
	RetainedWAL   string          `json:"retained_wal,omitempty"`
	OnDifferences *bool           `json:"on_differences,omitempty"`
}

// VerifyV1 is a spec's verify block (continuous verification), version
// 1. Interval 0 and Sample "" are the defaults, as the user left them.
type VerifyV1 struct {
	Interval DurationV1 `json:"interval,omitempty"`
	Sample   string     `json:"sample,omitempty"`
}

func verifyRecord(v *proto.VerifySpec) *VerifyV1 {
	if v == nil {
		return nil
	}
	return &VerifyV1{Interval: DurationV1(v.Interval), Sample: v.Sample}
}

func (r *VerifyV1) spec() *proto.VerifySpec {
	if r == nil {
		return nil
	}
	return &proto.VerifySpec{Interval: proto.Duration(r.Interval), Sample: r.Sample}
}

// LatencyAlertV1 is a latency alert, version 1.
type LatencyAlertV1 struct {
	Above DurationV1 `json:"above"`
	For   DurationV1 `json:"for,omitempty"`
}

// SettingsV1 are the settings a running task takes without restarting,
// version 1. Commands embed it: its keys sit beside theirs.
type SettingsV1 struct {
	Retry    RetryV1     `json:"retry"`
	Alerts   *AlertsV1   `json:"alerts,omitempty"`
	Throttle *ThrottleV1 `json:"throttle,omitempty"`
	// Verify: continuous verification reads it at each round.
	Verify *VerifyV1 `json:"verify,omitempty"`
}

// DurationV1 is a duration written as Go writes it ("12h0m0s").
type DurationV1 time.Duration

func (d DurationV1) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *DurationV1) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = DurationV1(v)
	return nil
}

// objectFieldsV1 is ObjectV1 without its methods: its own keys.
type objectFieldsV1 ObjectV1

// objectKeysV1 are the keys ObjectV1 decodes itself; the entry's others
// are the destination's.
var objectKeysV1 = jsonKeys(reflect.TypeFor[objectFieldsV1]())

func jsonKeys(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if t.Field(i).IsExported() && name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// MarshalJSON writes the entry's own keys, then the destination's.
func (o ObjectV1) MarshalJSON() ([]byte, error) {
	own, err := json.Marshal(objectFieldsV1(o))
	if err != nil || len(o.Options) == 0 {
		return own, err
	}
	for k := range o.Options {
		if objectKeysV1[k] {
			return nil, fmt.Errorf("objects entry: the destination's key %q is one of Sluice's", k)
		}
	}
	opts, err := json.Marshal(o.Options)
	if err != nil {
		return nil, err
	}
	// Both are non-empty objects: join their members.
	return append(append(own[:len(own)-1:len(own)-1], ','), opts[1:]...), nil
}

// UnmarshalJSON decodes the entry's own keys strictly and keeps the others
// for the destination's type.
func (o *ObjectV1) UnmarshalJSON(b []byte) error {
	*o = ObjectV1{}
	extra, err := proto.DecodeOwnKeys(b, func(k string) bool { return objectKeysV1[k] }, (*objectFieldsV1)(o), decodeStrict)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		o.Options = extra
	}
	return nil
}

// NewCreateTask is the command that creates spec's task (sealed: it
// enters the log as it is), created at at.
func NewCreateTask(spec proto.TaskSpec, at time.Time) CreateTask {
	return CreateTask{Spec: SpecRecord(&spec), At: at}
}

// SpecRecord is the record of a spec. A destination's config and object
// options are plain data, so failing to marshal one is a bug of its
// package: this panics then, as proto.TaskSpec.Clone does.
func SpecRecord(s *proto.TaskSpec) SpecV1 {
	return SpecV1{
		Name:        s.Name,
		Source:      SourceV1{DSN: s.Source.DSN, PasswordFile: s.Source.PasswordFile},
		Destination: mustMarshal(s.Destination, "destination"),
		Sync: SyncV1{Schema: s.Sync.Schema, Full: s.Sync.Full, Incremental: s.Sync.Incremental,
			DDL: s.Sync.DDL, DDLOperations: s.Sync.DDLOperations},
		Objects:           ObjectRecords(s.Objects),
		ConflictingTables: s.ConflictingTables,
		NameCase:          s.NameCase,
		Retry:             retryRecord(s.Retry),
		Throttle:          ThrottleRecord(s.Throttle),
		Cluster:           s.Cluster,
		Alerts:            alertsRecord(s.Alerts),
		TwoWay:            twoWayRecord(s.TwoWay),
		Verify:            verifyRecord(s.Verify),
		PerTableMetrics:   (*bool)(s.PerTableMetrics),
	}
}

// TaskSpec is the spec a record holds, its destination block and its
// objects' destination keys decoded strictly by the destination's type.
func (r *SpecV1) TaskSpec() (proto.TaskSpec, error) {
	objects, err := objectSpecs(r.Objects)
	if err != nil {
		return proto.TaskSpec{}, fmt.Errorf("spec %q: %w", r.Name, err)
	}
	s := proto.TaskSpec{
		Name:   r.Name,
		Source: proto.SourceSpec{DSN: r.Source.DSN, PasswordFile: r.Source.PasswordFile},
		Sync: proto.SyncSpec{Schema: r.Sync.Schema, Full: r.Sync.Full, Incremental: r.Sync.Incremental,
			DDL: r.Sync.DDL, DDLOperations: r.Sync.DDLOperations},
		Objects:           objects,
		ConflictingTables: r.ConflictingTables,
		NameCase:          r.NameCase,
		Retry:             r.Retry.spec(),
		Throttle:          r.Throttle.spec(),
		Cluster:           r.Cluster,
		Alerts:            r.Alerts.spec(),
		TwoWay:            r.TwoWay.spec(),
		Verify:            r.Verify.spec(),
		PerTableMetrics:   (*proto.MetricsSwitch)(r.PerTableMetrics),
	}
	if len(r.Destination) > 0 {
		if err := json.Unmarshal(r.Destination, &s.Destination); err != nil {
			return proto.TaskSpec{}, fmt.Errorf("spec %q: %w", r.Name, err) // proto names the destination
		}
	}
	if err := s.BindObjectOptions(); err != nil {
		return proto.TaskSpec{}, fmt.Errorf("spec %q: %w", r.Name, err)
	}
	// A record shares its lists and maps with the spec it was made of
	// (it is only ever marshalled, or made by unmarshalling): the spec it
	// gives back is a copy of its own.
	return s.Clone(), nil
}

// ObjectRecords are the records of objects entries.
func ObjectRecords(objects []proto.ObjectSpec) []ObjectV1 {
	if objects == nil {
		return nil
	}
	out := make([]ObjectV1, len(objects))
	for i, o := range objects {
		out[i] = ObjectV1{Schema: o.Schema, Tables: o.Tables, Rename: o.Rename, RenameSchema: o.RenameSchema,
			Filter: o.Filter, Operations: o.Operations, Columns: o.Columns, Sequences: o.Sequences,
			Transform: o.Transform, AddColumns: o.AddColumns}
		if o.Options != nil {
			if err := json.Unmarshal(mustMarshal(o.Options, "object options"), &out[i].Options); err != nil {
				panic(fmt.Sprintf("coordinator: the destination's object options are not a JSON object: %v", err))
			}
			if len(out[i].Options) == 0 {
				out[i].Options = nil
			}
		}
	}
	return out
}

// objectSpecs are the objects entries records hold, their destination keys
// not decoded yet: proto.TaskSpec.BindObjectOptions decodes them, by the
// destination's type.
func objectSpecs(records []ObjectV1) ([]proto.ObjectSpec, error) {
	if records == nil {
		return nil, nil
	}
	out := make([]proto.ObjectSpec, len(records))
	for i, r := range records {
		o := &out[i]
		if len(r.Options) > 0 {
			// proto's JSON is the one way in for keys that its
			// BindObjectOptions is to decode.
			b, err := json.Marshal(r.Options)
			if err == nil {
				err = json.Unmarshal(b, o)
			}
			if err != nil {
				return nil, fmt.Errorf("objects[%d]: %w", i, err)
			}
		}
		o.Schema, o.Tables, o.Rename, o.RenameSchema = r.Schema, r.Tables, r.Rename, r.RenameSchema
		o.Filter, o.Operations, o.Columns, o.Sequences = r.Filter, r.Operations, r.Columns, r.Sequences
		o.Transform, o.AddColumns = r.Transform, r.AddColumns
	}
	return out, nil
}

// SettingsRecord is the record of a running task's settings: spec's
// retry, throttle and verify, and alerts (the spec's, with its webhook
// sealed).
func SettingsRecord(spec *proto.TaskSpec, alerts *proto.AlertSpec) SettingsV1 {
	return SettingsV1{Retry: retryRecord(spec.Retry), Alerts: alertsRecord(alerts), Throttle: ThrottleRecord(spec.Throttle),
		Verify: verifyRecord(spec.Verify)}
}

// applyTo replaces a spec's settings with the record's.
func (r *SettingsV1) applyTo(s *proto.TaskSpec) {
	s.Retry, s.Alerts, s.Throttle, s.Verify = r.Retry.spec(), r.Alerts.spec(), r.Throttle.spec(), r.Verify.spec()
}

func retryRecord(r proto.RetrySpec) RetryV1 {
	return RetryV1{Connection: DurationV1(r.Connection), Other: DurationV1(r.Other)}
}

func (r RetryV1) spec() proto.RetrySpec {
	return proto.RetrySpec{Connection: proto.Duration(r.Connection), Other: proto.Duration(r.Other)}
}

// ThrottleRecord is the record of a throttle (nil for none). RateV1 and
// proto.RateSpec convert into each other as long as they have the same
// fields: a field added to proto.RateSpec stops the build here.
func ThrottleRecord(t *proto.ThrottleSpec) *ThrottleV1 {
	if t == nil {
		return nil
	}
	return &ThrottleV1{Full: (*RateV1)(t.Full), Incremental: (*RateV1)(t.Incremental)}
}

func (r *ThrottleV1) spec() *proto.ThrottleSpec {
	if r == nil {
		return nil
	}
	return &proto.ThrottleSpec{Full: (*proto.RateSpec)(r.Full), Incremental: (*proto.RateSpec)(r.Incremental)}
}

func alertsRecord(a *proto.AlertSpec) *AlertsV1 {
	if a == nil {
		return nil
	}
	r := &AlertsV1{Webhook: a.Webhook, OnFailure: a.OnFailure, RetainedWAL: a.RetainedWAL, OnDifferences: a.OnDifferences}
	if l := a.Latency; l != nil {
		r.Latency = &LatencyAlertV1{Above: DurationV1(l.Above), For: DurationV1(l.For)}
	}
	return r
}

func (r *AlertsV1) spec() *proto.AlertSpec {
	if r == nil {
		return nil
	}
	a := &proto.AlertSpec{Webhook: r.Webhook, OnFailure: r.OnFailure, RetainedWAL: r.RetainedWAL, OnDifferences: r.OnDifferences}
	if l := r.Latency; l != nil {
		a.Latency = &proto.LatencyAlert{Above: proto.Duration(l.Above), For: proto.Duration(l.For)}
	}
	return a
}

// mustMarshal marshals a destination's part of a spec (see SpecRecord).
func mustMarshal(v any, what string) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("coordinator: marshal the %s of a spec: %v", what, err))
	}
	return b
}
