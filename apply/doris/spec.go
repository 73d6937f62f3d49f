package doris

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Config is the Doris / SelectDB destination's block (destination.type:
// doris). Everything goes over the FE's HTTP port:
//
//	destination:
//	  type: doris
//	  url: "http://fe-host:8030"
//	  user: admin
//	  password: "..."            # or password_file
//	  database: dw
//	  batch_interval: 5s         # 1s..10s: at most one load per table per interval
//	  replication_num: 1         # for tables Sluice creates (default: Doris's own)
type Config struct {
	URL          string `yaml:"url,omitempty" json:"url,omitempty"`
	User         string `yaml:"user,omitempty" json:"user,omitempty"`
	Password     string `yaml:"password,omitempty" json:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// Database takes every selected table: a Doris database has no
	// schemas, so a table keeps its name (or its rename) alone.
	Database string `yaml:"database,omitempty" json:"database,omitempty"`
	// BatchInterval is how long a table's changes gather before they load
	// as one Stream Load (default 5s): Doris keeps a version per load,
	// and too many versions (-235) stop a table's loads.
	BatchInterval  proto.Duration `yaml:"batch_interval,omitempty" json:"batch_interval,omitempty"`
	ReplicationNum int            `yaml:"replication_num,omitempty" json:"replication_num,omitempty"`
}

// ObjectOptions are the Doris destination's keys of an objects entry,
// each per table of the entry's schema.
type ObjectOptions struct {
	// Engine is the table's data model: unique (the default for a table
	// with a key) or duplicate (required for a keyless table).
	Engine map[string]string `yaml:"engine,omitempty" json:"engine,omitempty"`
	// BucketCount is a created table's bucket count (default AUTO).
	BucketCount map[string]int `yaml:"bucket_count,omitempty" json:"bucket_count,omitempty"`
	// DistributionKey is the columns hashed into buckets (default: the
	// key); part of the unique key for a unique table.
	DistributionKey map[string][]string `yaml:"distribution_key,omitempty" json:"distribution_key,omitempty"`
}

// Batch intervals: the default and the range the guide allows.
const (
	DefaultBatchInterval = 5 * time.Second
	MinBatchInterval     = time.Second
	MaxBatchInterval     = 10 * time.Second
)

// Engines are the data models Sluice writes: unique and duplicate.
var Engines = []string{EngineUnique, EngineDuplicate}

const (
	EngineUnique    = "unique"
	EngineDuplicate = "duplicate"
)

// BatchEvery is the interval a table's changes gather for.
func (c *Config) BatchEvery() time.Duration {
	if c.BatchInterval <= 0 {
		return DefaultBatchInterval
	}
	return time.Duration(c.BatchInterval)
}

// PasswordRef is the password as a field to resolve: Password, or a
// reference to PasswordFile.
func (c *Config) PasswordRef() string {
	if c.PasswordFile != "" {
		return "${file:" + c.PasswordFile + "}"
	}
	return c.Password
}

// String names the FE and database (shown with the task).
func (c *Config) String() string { return c.URL + "/" + c.Database }

// Doris names: a letter first, then letters, digits and '_' (ASCII).
var nameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// Column names may also start with '_' (the extra columns do).
var columnNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Validate checks the block and the spec's Doris keys in objects
// (proto.DestinationConfig).
func (c *Config) Validate(spec *proto.TaskSpec, add proto.AddProblem) {
	if c.URL == "" {
		add("destination.url", "is required (the FE's HTTP address, like http://fe-host:8030)")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		add("destination.url", "%q is not http(s)://host:port (credentials go in user and password)", proto.RedactURL(c.URL))
	}
	if c.User == "" {
		add("destination.user", "is required")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("destination.password_file", "give password or password_file, not both")
	}
	if c.PasswordFile != "" {
		if err := proto.CheckPasswordFile(c.PasswordFile); err != nil {
			add("destination.password_file", "%v", err)
		}
	}
	switch {
	case c.Database == "":
		add("destination.database", "is required (the Doris database every table goes to)")
	case !nameRe.MatchString(c.Database):
		add("destination.database", "%q: a Doris name starts with a letter and holds only ASCII letters, digits and '_'", c.Database)
	}
	switch d := c.BatchInterval; {
	case d.Invalid():
		add("destination.batch_interval", "must be a duration such as 5s")
	case d != 0 && (time.Duration(d) < MinBatchInterval || time.Duration(d) > MaxBatchInterval):
		add("destination.batch_interval", "must be between %s and %s, not %s", MinBatchInterval, MaxBatchInterval, time.Duration(d))
	}
	if c.ReplicationNum < 0 || c.ReplicationNum > 32767 {
		add("destination.replication_num", "must be a positive number of replicas")
	}
	if spec.Sync.SchemaEnabled() && spec.ConflictPolicy() == "ignore" {
		add("conflicting_tables", "ignore is not supported by a doris destination yet: rename the conflicting tables (objects[].rename) or drop them")
	}
	for i := range spec.Objects {
		if o, ok := spec.Objects[i].Options.(*ObjectOptions); ok {
			o.validate(i, add)
		}
	}
}

func (o *ObjectOptions) validate(i int, add proto.AddProblem) {
	field := fmt.Sprintf("objects[%d]", i)
	for table, e := range o.Engine {
		if !slices.Contains(Engines, e) {
			add(field+".engine."+table, "unknown engine %q (one of: %s)", e, strings.Join(Engines, ", "))
		}
	}
	for table, n := range o.BucketCount {
		if n < 1 {
			add(field+".bucket_count."+table, "must be a positive integer (leave it out for AUTO)")
		}
	}
	for table, cols := range o.DistributionKey {
		if len(cols) == 0 {
			add(field+".distribution_key."+table, "names no column")
		}
	}
}

// Secrets is the password (proto.DestinationConfig).
func (c *Config) Secrets() []proto.SecretField {
	return []proto.SecretField{{Name: "password", Value: &c.Password, Kind: proto.SecretValue}}
}

// tableOptions is what the spec says of one source table's Doris table.
type tableOptions struct {
	engine  string // "" lets the key decide
	buckets int    // 0: AUTO
	distKey []string
}

func optionsFor(spec *proto.TaskSpec, src proto.TableID) tableOptions {
	if spec == nil {
		return tableOptions{}
	}
	o, _ := spec.ObjectOptionsFor(src.Schema).(*ObjectOptions)
	if o == nil {
		return tableOptions{}
	}
	return tableOptions{engine: o.Engine[src.Name], buckets: o.BucketCount[src.Name], distKey: o.DistributionKey[src.Name]}
}
