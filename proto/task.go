package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// TaskSpec is the user's unit of work, as written in task YAML.
type TaskSpec struct {
	Name              string          `yaml:"name" json:"name"`
	Source            SourceSpec      `yaml:"source" json:"source"`
	Destination       DestinationSpec `yaml:"destination" json:"destination"`
	Sync              SyncSpec        `yaml:"sync" json:"sync"`
	Objects           []ObjectSpec    `yaml:"objects" json:"objects"`
	ConflictingTables string          `yaml:"conflicting_tables,omitempty" json:"conflicting_tables,omitempty"`
	NameCase          string          `yaml:"name_case,omitempty" json:"name_case,omitempty"`
	Retry             RetrySpec       `yaml:"retry,omitempty" json:"retry,omitempty"`
	Throttle          *ThrottleSpec   `yaml:"throttle,omitempty" json:"throttle,omitempty"`
	Cluster           string          `yaml:"cluster,omitempty" json:"cluster,omitempty"`
	Alerts            *AlertSpec      `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	// Verify turns continuous verification on (verifyspec.go); nil: off.
	Verify *VerifySpec `yaml:"verify,omitempty" json:"verify,omitempty"`
	// TwoWay makes the task two-way (twoway.go); nil for one way.
	TwoWay *TwoWaySpec `yaml:"two_way,omitempty" json:"two_way,omitempty"`
	// PerTableMetrics exports the task's per-table Prometheus series
	// (nil: true); false keeps /metrics small for thousands of tables.
	PerTableMetrics *MetricsSwitch `yaml:"per_table_metrics,omitempty" json:"per_table_metrics,omitempty"`
}

// PerTableMetricsOn reports whether the task's per-table series are
// exported (per_table_metrics, default true).
func (s *TaskSpec) PerTableMetricsOn() bool {
	return s.PerTableMetrics == nil || bool(*s.PerTableMetrics)
}

// MetricsSwitch is per_table_metrics: YAML true or false
// only, anything else refused naming the key.
type MetricsSwitch bool

// UnmarshalYAML refuses anything but a YAML boolean.
func (b *MetricsSwitch) UnmarshalYAML(n *yaml.Node) error {
	var v bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		return fmt.Errorf("line %d: per_table_metrics must be true or false", n.Line)
	}
	*b = MetricsSwitch(v)
	return nil
}

// SourceSpec is the PostgreSQL database changes are read from.
type SourceSpec struct {
	DSN string `yaml:"dsn" json:"dsn"`
	// PasswordFile names a file holding the password, read on the node
	// that connects (it never enters Raft); it wins over a password in
	// the DSN.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
}

// ConnDSN is the DSN to connect with: with PasswordFile, the DSN plus a
// password parameter that reads the file (${file:...}) where it connects.
func (s SourceSpec) ConnDSN() string { return WithPasswordFile(s.DSN, s.PasswordFile) }

// WithPasswordFile adds password=${file:path} to a DSN: a URL's query
// parameter or a keyword/value pair, both of which win over a password
// given before them.
func WithPasswordFile(dsn, path string) string {
	if path == "" || dsn == "" {
		return dsn
	}
	ref := "${file:" + path + "}"
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "password=" + ref
	}
	return dsn + " password=" + ref
}

// SyncSpec selects the phases. Unset fields default to true, except DDL.
type SyncSpec struct {
	Schema      *bool `yaml:"schema,omitempty" json:"schema,omitempty"`
	Full        *bool `yaml:"full,omitempty" json:"full,omitempty"`
	Incremental *bool `yaml:"incremental,omitempty" json:"incremental,omitempty"`
	DDL         *bool `yaml:"ddl,omitempty" json:"ddl,omitempty"`
	// DDLOperations selects the schema changes DDL sync applies (all
	// when empty); see DDLOperations.
	DDLOperations []string `yaml:"ddl_operations,omitempty" json:"ddl_operations,omitempty"`
}

// ObjectSpec selects tables and sequences of one schema: all of them when
// Tables is empty.
type ObjectSpec struct {
	Schema string   `yaml:"schema" json:"schema"`
	Tables []string `yaml:"tables,omitempty" json:"tables,omitempty"`
	// Rename gives tables ("orders": "sales_orders") and columns
	// ("orders.amount": "total") new names at the destination;
	// RenameSchema the schema.
	Rename       map[string]string   `yaml:"rename,omitempty" json:"rename,omitempty"`
	RenameSchema string              `yaml:"rename_schema,omitempty" json:"rename_schema,omitempty"`
	Filter       map[string]string   `yaml:"filter,omitempty" json:"filter,omitempty"`
	Operations   map[string][]string `yaml:"operations,omitempty" json:"operations,omitempty"`
	// Columns selects, per table, the columns synced (all when absent).
	Columns map[string][]string `yaml:"columns,omitempty" json:"columns,omitempty"`
	// Transform replaces, per table, columns' values with a SQL
	// expression over the row; AddColumns adds columns computed so
	// (transform.go).
	Transform  map[string]map[string]string `yaml:"transform,omitempty" json:"transform,omitempty"`
	AddColumns map[string]map[string]string `yaml:"add_columns,omitempty" json:"add_columns,omitempty"`
	// Sequences names sequences of the schema synced beside those the
	// selected tables' columns use (sequences.go): ones only the
	// application calls. A whole schema (no Tables) brings all of its.
	Sequences []string `yaml:"sequences,omitempty" json:"sequences,omitempty"`
	// Options are the destination type's own keys of the entry (Kafka's
	// topics, partitions, partition_key), decoded by that type (nil:
	// none); see objects.go.
	Options ObjectOptions `yaml:"-" json:"-"`

	// The entry's other keys, until the destination's type decodes them
	// (TaskSpec.bindObjectOptions), and what that found wrong.
	extraYAML *yaml.Node
	extraJSON rawOptions
	problems  SpecErrors
}

// RetrySpec sets how long a task retries before it fails (invariant 7).
type RetrySpec struct {
	Connection Duration `yaml:"connection,omitempty" json:"connection,omitempty"`
	Other      Duration `yaml:"other,omitempty" json:"other,omitempty"`
}

// ThrottleSpec limits full and incremental sync.
type ThrottleSpec struct {
	Full        *RateSpec `yaml:"full,omitempty" json:"full,omitempty"`
	Incremental *RateSpec `yaml:"incremental,omitempty" json:"incremental,omitempty"`
}

// RateSpec is a rate limit; 0 or absent means none. QPS (queries to the
// source per second) applies to the full sync only.
type RateSpec struct {
	RPS  int `yaml:"rps,omitempty" json:"rps,omitempty"`
	MBPS int `yaml:"mbps,omitempty" json:"mbps,omitempty"`
	QPS  int `yaml:"qps,omitempty" json:"qps,omitempty"`
}

// Limits returns a phase's rows, bytes and queries per second (0: none).
func (t *ThrottleSpec) Limits(phase Phase) (rows, bytes, queries float64) {
	if t == nil {
		return 0, 0, 0
	}
	r := t.Incremental
	if phase == PhaseFull {
		r = t.Full
	}
	if r == nil {
		return 0, 0, 0
	}
	return float64(r.RPS), float64(r.MBPS) * (1 << 20), float64(r.QPS)
}

// ParseThrottle reads a throttle section (YAML or JSON, unknown fields
// refused) and validates it; an empty one lifts every limit (nil).
func ParseThrottle(b []byte) (*ThrottleSpec, error) {
	var t ThrottleSpec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.Full == nil && t.Incremental == nil {
		return nil, nil
	}
	return &t, nil
}

// Validate checks a throttle's values.
func (t *ThrottleSpec) Validate() error {
	var errs SpecErrors
	for _, r := range []struct {
		field string
		rate  *RateSpec
	}{{"throttle.full", t.Full}, {"throttle.incremental", t.Incremental}} {
		if r.rate == nil {
			continue
		}
		if r.rate.RPS < 0 || r.rate.MBPS < 0 || r.rate.QPS < 0 {
			errs = append(errs, &FieldError{Field: r.field, Msg: "limits must be 0 (none) or more"})
		}
		if r.field == "throttle.incremental" && r.rate.QPS != 0 {
			errs = append(errs, &FieldError{Field: r.field + ".qps", Msg: "applies to the full sync only"})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Default retry windows (DESIGN.md invariant 7), and the bounds a task
// spec may set.
const (
	DefaultConnectionRetry = 720 * time.Minute
	DefaultOtherRetry      = 10 * time.Minute
	MinConnectionRetry     = 10 * time.Minute
	MinOtherRetry          = time.Minute
	MaxRetry               = 1440 * time.Minute
)

// minutes writes a window as users write it: "720m".
func minutes(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Duration is a time.Duration written as "720m", "10s", "1h30m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not a duration (use e.g. 720m, 30s, 2h): %q", s)
	}
	if v < 0 {
		return fmt.Errorf("must not be negative: %q", s)
	}
	*d = Duration(v)
	return nil
}

// invalidDuration marks a value that did not parse; Validate reports it
// with the field's name, along with every other problem of the spec.
const invalidDuration Duration = -1

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.parse(n.Value); err != nil {
		*d = invalidDuration
	}
	return nil
}
func (d Duration) MarshalYAML() (any, error)    { return d.String(), nil }
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil || d.parse(s) != nil {
		*d = invalidDuration
	}
	return nil
}

// DDLOps is the set of DDL operations applied (nil: all).
func (s SyncSpec) DDLOps() DDLOpSet {
	ops, _ := NewDDLOpSet(s.DDLOperations)
	return ops
}

// WholeSchemas are the schemas the task selects whole (no table list):
// tables created there later join the task (with DDL sync).
func (s *TaskSpec) WholeSchemas() []string {
	var out []string
	for _, o := range s.Objects {
		if len(o.Tables) == 0 {
			out = append(out, o.Schema)
		}
	}
	return out
}

// Enabled reports a sync flag with its default.
func enabled(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func (s SyncSpec) SchemaEnabled() bool      { return enabled(s.Schema, true) }
func (s SyncSpec) FullEnabled() bool        { return enabled(s.Full, true) }
func (s SyncSpec) IncrementalEnabled() bool { return enabled(s.Incremental, true) }
func (s SyncSpec) DDLEnabled() bool         { return enabled(s.DDL, false) }

// ConnectionRetry is the retry window for connection failures.
func (r RetrySpec) ConnectionRetry() time.Duration {
	if r.Connection == 0 {
		return DefaultConnectionRetry
	}
	return time.Duration(r.Connection)
}

// OtherRetry is the retry window for all other failures.
func (r RetrySpec) OtherRetry() time.Duration {
	if r.Other == 0 {
		return DefaultOtherRetry
	}
	return time.Duration(r.Other)
}

// FieldError names the field of a bad task spec.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// SpecErrors collects every problem of a spec, so the user fixes them in
// one go.
type SpecErrors []*FieldError

func (e SpecErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return "invalid task spec: " + strings.Join(parts, "; ")
}

// ParseTaskSpec reads task YAML (JSON is YAML too) strictly: unknown fields
// and bad values are rejected, naming the field.
func ParseTaskSpec(data []byte) (*TaskSpec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var spec TaskSpec
	if err := dec.Decode(&spec); err != nil {
		return nil, friendlyYAMLError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, errors.New("invalid task spec: more than one YAML document; put one task per file")
	}
	spec.bindObjectOptions()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return &spec, nil
}

var yamlTypeNames = map[string]string{
	"proto.TaskSpec":     "",
	"proto.SourceSpec":   "source.",
	"proto.SyncSpec":     "sync.",
	"proto.ObjectSpec":   "objects[].",
	"proto.RetrySpec":    "retry.",
	"proto.ThrottleSpec": "throttle.",
	"proto.RateSpec":     "throttle.<phase>.",
	"proto.TwoWaySpec":   "two_way.",
	"proto.AlertSpec":    "alerts.",
	"proto.LatencyAlert": "alerts.latency.",
	"proto.VerifySpec":   "verify.",
}

var unknownFieldRe = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)

// friendlyYAMLError rewrites yaml.v3's messages in terms of the spec's
// field paths ("unknown field source.dsnn (line 3)").
func friendlyYAMLError(err error) error {
	if err.Error() == "EOF" {
		return errors.New("invalid task spec: the file is empty")
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var lines []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if m := unknownFieldRe.FindStringSubmatch(line); m != nil {
			line = fmt.Sprintf("unknown field %s%s (line %s)", yamlTypeNames[m[3]], m[2], m[1])
		}
		if line != "" {
			lines = append(lines, line)
		}
	}
	return errors.New("invalid task spec: " + strings.Join(lines, "; "))
}

// Validate checks every field and returns SpecErrors naming each bad one.
func (s *TaskSpec) Validate() error {
	var errs SpecErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		add("name", "is required")
	} else if err := ValidateTaskName(s.Name); err != nil {
		add("name", "%v", err)
	}
	if pf := s.Source.PasswordFile; pf != "" {
		if err := CheckPasswordFile(pf); err != nil {
			add("source.password_file", "%v", err)
		}
	}
	if s.Source.DSN == "" {
		add("source.dsn", "is required (a PostgreSQL URL like postgres://user:pass@host:5432/db)")
	} else if err := CheckPostgresDSN(s.Source.DSN); err != nil {
		add("source.dsn", "%v", err)
	}
	s.Destination.validate(s, add)
	for _, o := range s.Objects {
		for _, p := range o.problems {
			add(p.Field, "%s", p.Msg)
		}
	}
	if !s.Sync.SchemaEnabled() && !s.Sync.FullEnabled() && !s.Sync.IncrementalEnabled() {
		add("sync", "nothing to do: schema, full and incremental are all false")
	}
	if s.Sync.DDLEnabled() && !s.Sync.IncrementalEnabled() {
		add("sync.ddl", "DDL sync needs incremental sync: schema changes travel with the changes")
	}
	if _, err := NewDDLOpSet(s.Sync.DDLOperations); err != nil {
		add("sync.ddl_operations", "%v", err)
	} else if len(s.Sync.DDLOperations) > 0 && !s.Sync.DDLEnabled() {
		add("sync.ddl_operations", "selects DDL operations but sync.ddl is off; set ddl: true")
	}
	if len(s.Objects) == 0 {
		add("objects", "is required: list at least one schema, e.g. objects: [{schema: public}]")
	}
	seen := map[string]bool{}
	for i, o := range s.Objects {
		field := fmt.Sprintf("objects[%d]", i)
		if o.Schema == "" {
			add(field+".schema", "is required")
		} else if o.Schema == ReservedSchema {
			add(field+".schema", "%q is reserved for Sluice's own objects", ReservedSchema)
		}
		if seen[o.Schema] {
			add(field+".schema", "%q is listed twice; merge its tables into one entry", o.Schema)
		}
		seen[o.Schema] = true
		tables := map[string]bool{}
		for j, t := range o.Tables {
			if t == "" {
				add(fmt.Sprintf("%s.tables[%d]", field, j), "is empty")
			}
			if tables[t] {
				add(fmt.Sprintf("%s.tables[%d]", field, j), "%q is listed twice", t)
			}
			tables[t] = true
		}
		validateRenames(field, o, tables, add)
		validateSequences(field, o, add)
		for _, name := range slices.Sorted(maps.Keys(o.Filter)) {
			f := fmt.Sprintf("%s.filter.%s", field, name)
			switch {
			case len(o.Tables) > 0 && !tables[name]:
				add(f, "%q is not among the tables listed", name)
			case strings.TrimSpace(o.Filter[name]) == "":
				add(f, "is empty: a SQL condition such as \"region = 'eu'\"")
			default:
				if err := CheckFilter(o.Filter[name]); err != nil {
					add(f, "must be one SQL condition such as \"region = 'eu'\": %v", err)
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(o.Columns)) {
			f := fmt.Sprintf("%s.columns.%s", field, name)
			if len(o.Tables) > 0 && !tables[name] {
				add(f, "%q is not among the tables listed", name)
			}
			if len(o.Columns[name]) == 0 {
				add(f, "is empty: list the columns to sync (the primary key included)")
			}
			cols := map[string]bool{}
			for _, c := range o.Columns[name] {
				if c == "" || cols[c] {
					add(f, "%q is empty or listed twice", c)
				}
				cols[c] = true
			}
		}
		validateTransforms(field, o, tables, add)
		for _, name := range slices.Sorted(maps.Keys(o.Operations)) {
			f := fmt.Sprintf("%s.operations.%s", field, name)
			if len(o.Tables) > 0 && !tables[name] {
				add(f, "%q is not among the tables listed", name)
			}
			if len(o.Operations[name]) == 0 {
				add(f, "is empty: list some of insert, update, delete, truncate")
			}
			for _, op := range o.Operations[name] {
				if _, ok := opNames[op]; !ok {
					add(f, "unknown operation %q (one of insert, update, delete, truncate)", op)
				}
			}
		}
	}
	switch s.ConflictingTables {
	case "", "precheck", "ignore":
	default:
		add("conflicting_tables", "must be precheck or ignore, not %q", s.ConflictingTables)
	}
	switch s.NameCase {
	case "", "default", "source", "destination", "lower", "upper":
	default:
		add("name_case", "must be one of default, source, destination, lower, upper; not %q", s.NameCase)
	}
	retryOK := true
	for _, f := range []struct {
		field    string
		d        Duration
		min, max time.Duration
	}{
		{"retry.connection", s.Retry.Connection, MinConnectionRetry, MaxRetry},
		{"retry.other", s.Retry.Other, MinOtherRetry, MaxRetry},
	} {
		switch {
		case f.d == invalidDuration:
			add(f.field, "must be a duration such as 720m, 30m or 2h")
			retryOK = false
		case f.d != 0 && (time.Duration(f.d) < f.min || time.Duration(f.d) > f.max):
			add(f.field, "must be between %s and %s, not %s", minutes(f.min), minutes(f.max), time.Duration(f.d))
			retryOK = false
		}
	}
	if retryOK && s.Retry.OtherRetry() >= s.Retry.ConnectionRetry() {
		add("retry.other", "must be shorter than retry.connection (%s against %s, defaults included)", minutes(s.Retry.OtherRetry()), minutes(s.Retry.ConnectionRetry()))
	}
	if s.Throttle != nil {
		if err := s.Throttle.Validate(); err != nil {
			errs = append(errs, err.(SpecErrors)...)
		}
	}
	s.Alerts.validate(add)
	s.Verify.validate(s, add)
	s.validateTwoWay(add)
	s.validateTransformUse(add)
	if s.Cluster != "" && !poolName.MatchString(s.Cluster) {
		add("cluster", "must be a pool name: letters, digits, '-' and '_', at most 63 characters")
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

var opNames = map[string]Op{"insert": OpInsert, "update": OpUpdate, "delete": OpDelete, "truncate": OpTruncate}

// RowFilter is the table's row filter, a SQL condition ("" for none).
func (s *TaskSpec) RowFilter(t TableID) string {
	for _, o := range s.Objects {
		if o.Schema == t.Schema {
			return strings.TrimSpace(o.Filter[t.Name])
		}
	}
	return ""
}

// SelectedColumns are the columns synced of the table (nil: all).
func (s *TaskSpec) SelectedColumns(t TableID) []string {
	for _, o := range s.Objects {
		if o.Schema == t.Schema {
			return o.Columns[t.Name]
		}
	}
	return nil
}

// OpSet is a set of operations.
type OpSet uint8

// AllOps holds every operation.
const AllOps OpSet = 1<<OpInsert | 1<<OpUpdate | 1<<OpDelete | 1<<OpTruncate

// Has reports whether o is in the set.
func (s OpSet) Has(o Op) bool { return s&(1<<o) != 0 }

// Operations are the operations synced for the table: all unless the
// spec lists some.
func (s *TaskSpec) Operations(t TableID) OpSet {
	for _, o := range s.Objects {
		if o.Schema != t.Schema {
			continue
		}
		ops, ok := o.Operations[t.Name]
		if !ok {
			return AllOps
		}
		var set OpSet
		for _, name := range ops {
			set |= 1 << opNames[name]
		}
		return set
	}
	return AllOps
}

// ConflictPolicy is ConflictingTables with its default.
func (s *TaskSpec) ConflictPolicy() string {
	if s.ConflictingTables == "" {
		return "precheck"
	}
	return s.ConflictingTables
}

// CheckPasswordFile checks a password_file setting: an absolute path,
// which a ${file:...} reference can hold.
func CheckPasswordFile(path string) error {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "}\n") {
		return errors.New("must be an absolute path (a file on every node that runs the task)")
	}
	return nil
}

// CheckPostgresDSN checks that dsn has the form of a PostgreSQL
// connection string.
func CheckPostgresDSN(dsn string) error {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return nil
	}
	if strings.Contains(dsn, "=") && !strings.Contains(dsn, "://") {
		return nil // keyword/value form: host=... dbname=...
	}
	return errors.New("must be a PostgreSQL URL (postgres://user:pass@host:5432/db) or key=value string")
}

// Redacted returns a copy safe to log or show: passwords in DSNs masked.
func (s TaskSpec) Redacted() TaskSpec {
	s.Source.DSN = RedactDSN(s.Source.DSN)
	s.Destination = s.Destination.redacted()
	if s.Alerts != nil {
		a := *s.Alerts
		a.Webhook = RedactURL(a.Webhook)
		s.Alerts = &a
	}
	return s
}

// poolName is what a task's cluster (node pool) may be called.
var poolName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// Invalid reports a duration that did not parse (Validate names its field).
func (d Duration) Invalid() bool { return d == invalidDuration }
