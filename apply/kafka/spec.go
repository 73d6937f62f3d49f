package kafka

import (
	"fmt"
	"github.com/sluicedb/sluice/proto"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the Kafka destination's block (destination.type: kafka). Its
// keys sit beside type in the task's destination:
//
//	destination:
//	  type: kafka
//	  brokers: [127.0.0.1:9092]
//	  topic: cdc
//	  format: debezium            # debezium | canal | avro
//	  partitioning: primary-key   # single | table | primary-key
//	  compression: lz4            # none | gzip | snappy | lz4 | zstd
//	  acks: all                   # 0 | 1 (with exactly_once: false) | all
//	  exactly_once: true
//	  ddl_topic: cdc-ddl
//	  heartbeat: true
//	  heartbeat_topic: __sluice_heartbeat
//	  heartbeat_interval: 10s
type Config struct {
	Brokers []string `yaml:"brokers,omitempty" json:"brokers,omitempty"`
	// Version is the brokers' Kafka version ("3.6.0"; default 2.8.0, the
	// oldest with everything Sluice uses).
	Version  string `yaml:"version,omitempty" json:"version,omitempty"`
	ClientID string `yaml:"client_id,omitempty" json:"client_id,omitempty"`
	// Topic takes every table's messages unless objects[].topics maps a
	// table to its own (default: the task's name).
	Topic string `yaml:"topic,omitempty" json:"topic,omitempty"`
	// DDLTopic takes schema changes (default: the table's data topic).
	DDLTopic string `yaml:"ddl_topic,omitempty" json:"ddl_topic,omitempty"`
	// TopicPartitions and ReplicationFactor are given to topics Sluice
	// creates (defaults 1 and the brokers' default).
	TopicPartitions   int    `yaml:"topic_partitions,omitempty" json:"topic_partitions,omitempty"`
	ReplicationFactor int    `yaml:"replication_factor,omitempty" json:"replication_factor,omitempty"`
	Format            string `yaml:"format,omitempty" json:"format,omitempty"`
	// SchemaRegistry is a Confluent-compatible schema registry for format
	// avro (values are then framed: magic byte, schema id).
	SchemaRegistry string `yaml:"schema_registry,omitempty" json:"schema_registry,omitempty"`
	Partitioning   string `yaml:"partitioning,omitempty" json:"partitioning,omitempty"`
	Compression    string `yaml:"compression,omitempty" json:"compression,omitempty"`
	// Acks is what a write waits for: all (the default) the in-sync
	// replicas, 1 the partition leader, 0 nothing. 0 and 1 give up the
	// producer's idempotence, so they need exactly_once: false.
	Acks string `yaml:"acks,omitempty" json:"acks,omitempty"`
	// ExactlyOnce (default true) writes with transactions; false keeps
	// the producer idempotent only (with acks: all): faster, at least
	// once across crashes.
	ExactlyOnce *bool `yaml:"exactly_once,omitempty" json:"exactly_once,omitempty"`
	// Heartbeat also writes the source's heartbeats as messages, to
	// HeartbeatTopic (default __sluice_heartbeat), keyed by the task, at
	// most one per HeartbeatInterval (default 10s): readers see the
	// stream alive and its source position move while the source is idle.
	Heartbeat         bool           `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"`
	HeartbeatTopic    string         `yaml:"heartbeat_topic,omitempty" json:"heartbeat_topic,omitempty"`
	HeartbeatInterval proto.Duration `yaml:"heartbeat_interval,omitempty" json:"heartbeat_interval,omitempty"`
	// OffsetsTopic keeps the positions written (default
	// __sluice_offsets, compacted).
	OffsetsTopic string      `yaml:"offsets_topic,omitempty" json:"offsets_topic,omitempty"`
	TLS          *TLSConfig  `yaml:"tls,omitempty" json:"tls,omitempty"`
	SASL         *SASLConfig `yaml:"sasl,omitempty" json:"sasl,omitempty"`
}

// TLSConfig turns TLS on for the brokers' connections.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	// Mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism" json:"mechanism"`
	User      string `yaml:"user" json:"user"`
	Password  string `yaml:"password" json:"password"`
	// PasswordFile names a file holding the password, read on the node
	// that connects (instead of Password).
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
}

// PasswordRef is the password as a field to resolve: Password, or a
// reference to PasswordFile.
func (s *SASLConfig) PasswordRef() string {
	if s.PasswordFile != "" {
		return "${file:" + s.PasswordFile + "}"
	}
	return s.Password
}

// The Kafka destination's choices; the first of each is the default.
var (
	Formats       = []string{"debezium", "canal", "avro"}
	Partitionings = []string{"primary-key", "table", "single"}
	Compressions  = []string{"lz4", "none", "gzip", "snappy", "zstd"}
	AcksChoices   = []string{"all", "1", "0"}
)

// DefaultOffsetsTopic keeps Kafka destinations' positions.
const DefaultOffsetsTopic = "__sluice_offsets"

// OffsetsTopicName is the topic of the destination's positions.
func (k *Config) OffsetsTopicName() string {
	if k.OffsetsTopic != "" {
		return k.OffsetsTopic
	}
	return DefaultOffsetsTopic
}

// DefaultHeartbeatTopic takes heartbeat messages (destination.heartbeat).
const DefaultHeartbeatTopic = "__sluice_heartbeat"

// Heartbeat intervals: the default, and the shortest allowed (the
// source's heartbeat row is written once a second, so a shorter interval
// would not write more often).
const (
	DefaultHeartbeatInterval = 10 * time.Second
	MinHeartbeatInterval     = time.Second
)

// HeartbeatTopicName is the topic of heartbeat messages.
func (k *Config) HeartbeatTopicName() string {
	if k.HeartbeatTopic != "" {
		return k.HeartbeatTopic
	}
	return DefaultHeartbeatTopic
}

// HeartbeatEvery is the shortest time between two heartbeat messages.
func (k *Config) HeartbeatEvery() time.Duration {
	if k.HeartbeatInterval <= 0 {
		return DefaultHeartbeatInterval
	}
	return time.Duration(k.HeartbeatInterval)
}

// ExactlyOnceEnabled: transactions unless turned off.
func (k *Config) ExactlyOnceEnabled() bool { return k.ExactlyOnce == nil || *k.ExactlyOnce }

// choice returns the value set, or the default (the first choice).
func choice(v string, choices []string) string {
	if v == "" {
		return choices[0]
	}
	return v
}

// Kafka topic names: up to 249 of these characters.
var topicNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

var kafkaVersionRe = regexp.MustCompile(`^\d+\.\d+\.\d+(\.\d+)?$`)

func (k *Config) validate(add proto.AddProblem) {
	if len(k.Brokers) == 0 {
		add("destination.brokers", "is required (host:port of one or more brokers)")
	}
	for i, b := range k.Brokers {
		if host, port, ok := strings.Cut(b, ":"); !ok || host == "" || port == "" {
			add(fmt.Sprintf("destination.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if k.Version != "" && !kafkaVersionRe.MatchString(k.Version) {
		add("destination.version", "%q is not a Kafka version like 3.6.0", k.Version)
	}
	for field, topic := range map[string]string{"topic": k.Topic, "ddl_topic": k.DDLTopic, "offsets_topic": k.OffsetsTopic, "heartbeat_topic": k.HeartbeatTopic} {
		if topic != "" && !topicNameRe.MatchString(topic) {
			add("destination."+field, "%q is not a valid topic name (letters, digits, '.', '_', '-')", topic)
		}
	}
	oneOf := func(field, v string, choices []string) {
		if v != "" && !slices.Contains(choices, v) {
			add("destination."+field, "unknown value %q (one of: %s)", v, strings.Join(choices, ", "))
		}
	}
	oneOf("format", k.Format, Formats)
	oneOf("partitioning", k.Partitioning, Partitionings)
	oneOf("compression", k.Compression, Compressions)
	oneOf("acks", k.Acks, AcksChoices)
	if (k.Acks == "0" || k.Acks == "1") && k.ExactlyOnceEnabled() {
		// Idempotence, and so transactions, needs acks from every in-sync
		// replica: without it a retried write may land twice.
		add("destination.acks", "%q needs exactly_once: false (transactions need acks: all); set exactly_once: false to trade exactly-once for speed, or use acks: all", k.Acks)
	}
	switch d := k.HeartbeatInterval; {
	case d.Invalid():
		add("destination.heartbeat_interval", "must be a duration such as 10s or 1m")
	case d != 0 && time.Duration(d) < MinHeartbeatInterval:
		add("destination.heartbeat_interval", "must be at least %s, not %s", MinHeartbeatInterval, time.Duration(d))
	}
	if !k.Heartbeat && (k.HeartbeatTopic != "" || k.HeartbeatInterval != 0) {
		add("destination.heartbeat", "heartbeat_topic and heartbeat_interval are set but heartbeat is off; set heartbeat: true")
	}
	if k.SchemaRegistry != "" && choice(k.Format, Formats) != "avro" {
		add("destination.schema_registry", "is for format avro")
	}
	if k.TopicPartitions < 0 || k.TopicPartitions > 10000 {
		add("destination.topic_partitions", "must be between 1 and 10000")
	}
	if k.ReplicationFactor < 0 || k.ReplicationFactor > 32767 {
		add("destination.replication_factor", "must be positive")
	}
	if s := k.SASL; s != nil {
		if !slices.Contains([]string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, s.Mechanism) {
			add("destination.sasl.mechanism", "unknown mechanism %q (one of: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", s.Mechanism)
		}
		if s.User == "" {
			add("destination.sasl.user", "is required")
		}
		if s.Password != "" && s.PasswordFile != "" {
			add("destination.sasl.password_file", "give password or password_file, not both")
		}
		if f := s.PasswordFile; f != "" {
			if err := proto.CheckPasswordFile(f); err != nil {
				add("destination.sasl.password_file", "%v", err)
			}
		}
	}
	if t := k.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add("destination.tls", "cert_file and key_file go together")
	}
}

// validate checks objects[i]'s Kafka mappings.
func (o *ObjectOptions) validate(i int, add proto.AddProblem) {
	field := fmt.Sprintf("objects[%d]", i)
	for table, topic := range o.Topics {
		if !topicNameRe.MatchString(topic) {
			add(field+".topics."+table, "%q is not a valid topic name", topic)
		}
	}
	for table, n := range o.Partitions {
		if n < 1 || n > 10000 {
			add(field+".partitions."+table, "must be between 1 and 10000")
		}
	}
	for table, cols := range o.PartitionKey {
		if len(cols) == 0 {
			add(field+".partition_key."+table, "names no column")
		}
	}
}

// ObjectOptions are the Kafka destination's keys of an objects entry.
type ObjectOptions struct {
	// Topics maps tables to their own topic (the destination's topic
	// otherwise).
	Topics map[string]string `yaml:"topics,omitempty" json:"topics,omitempty"`
	// Partitions sets a created topic's partitions, per table.
	Partitions map[string]int `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// PartitionKey names the columns hashed under partitioning:
	// primary-key, per table (default: the table's key).
	PartitionKey map[string][]string `yaml:"partition_key,omitempty" json:"partition_key,omitempty"`
}

// String names the brokers (shown with the task).
func (k *Config) String() string { return strings.Join(k.Brokers, ",") }

// Validate checks the block and the spec's Kafka keys in objects
// (proto.DestinationConfig).
func (k *Config) Validate(spec *proto.TaskSpec, add proto.AddProblem) {
	k.validate(add)
	if spec.Sync.SchemaEnabled() && spec.ConflictPolicy() == "ignore" {
		add("conflicting_tables", "does not apply to a kafka destination (topics hold messages, not tables)")
	}
	for i := range spec.Objects {
		if o, ok := spec.Objects[i].Options.(*ObjectOptions); ok {
			o.validate(i, add)
		}
	}
}

// Secrets are the SASL password and the schema registry's URL
// (proto.DestinationConfig).
func (k *Config) Secrets() []proto.SecretField {
	out := []proto.SecretField{{Name: "schema_registry", Value: &k.SchemaRegistry, Kind: proto.SecretInDSN}}
	if k.SASL != nil {
		out = append(out, proto.SecretField{Name: "sasl.password", Value: &k.SASL.Password, Kind: proto.SecretValue})
	}
	return out
}

// objectOptions returns the Kafka keys of t's objects entry (nil: none).
func objectOptions(spec *proto.TaskSpec, t proto.TableID) *ObjectOptions {
	o, _ := spec.ObjectOptionsFor(t.Schema).(*ObjectOptions)
	return o
}

// topicFor is the topic of a source table's messages.
func topicFor(spec *proto.TaskSpec, cfg *Config, t proto.TableID) string {
	if o := objectOptions(spec, t); o != nil && o.Topics[t.Name] != "" {
		return o.Topics[t.Name]
	}
	if cfg.Topic != "" {
		return cfg.Topic
	}
	return spec.Name
}

// partitionsFor is the partition count a created topic of table t gets.
func partitionsFor(spec *proto.TaskSpec, cfg *Config, t proto.TableID) int {
	if o := objectOptions(spec, t); o != nil && o.Partitions[t.Name] > 0 {
		return o.Partitions[t.Name]
	}
	return max(1, cfg.TopicPartitions)
}

// partitionKeyOf is the columns hashed for table t's partition (nil: its
// key).
func partitionKeyOf(spec *proto.TaskSpec, t proto.TableID) []string {
	if o := objectOptions(spec, t); o != nil && len(o.PartitionKey[t.Name]) > 0 {
		return o.PartitionKey[t.Name]
	}
	return nil
}

// routesOf gives every table named in the spec's Kafka object keys its
// topic, partitions and partition key, under its source and its
// destination name (schema sync looks tables up by the first, changes by
// the second).
func routesOf(spec *proto.TaskSpec, cfg *Config) map[string]Route {
	names := spec.Names()
	routes := map[string]Route{}
	for _, o := range spec.Objects {
		opts, _ := o.Options.(*ObjectOptions)
		if opts == nil {
			continue
		}
		seen := map[string]bool{}
		for t := range opts.Topics {
			seen[t] = true
		}
		for t := range opts.Partitions {
			seen[t] = true
		}
		for t := range opts.PartitionKey {
			seen[t] = true
		}
		for name := range seen {
			src := proto.TableID{Schema: o.Schema, Name: name}
			r := Route{Topic: topicFor(spec, cfg, src), Partitions: partitionsFor(spec, cfg, src), PartitionKey: names.ColumnsOf(src, partitionKeyOf(spec, src))}
			routes[src.Key()] = r
			routes[names.Table(src).Key()] = r
		}
	}
	return routes
}
