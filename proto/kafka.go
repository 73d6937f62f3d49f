package proto

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// KafkaSpec is a Kafka destination (destination.type: kafka). Its keys sit
// beside type in the task's destination:
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
type KafkaSpec struct {
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
	Heartbeat         bool     `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"`
	HeartbeatTopic    string   `yaml:"heartbeat_topic,omitempty" json:"heartbeat_topic,omitempty"`
	HeartbeatInterval Duration `yaml:"heartbeat_interval,omitempty" json:"heartbeat_interval,omitempty"`
	// OffsetsTopic keeps the positions written (default
	// __sluice_offsets, compacted).
	OffsetsTopic string     `yaml:"offsets_topic,omitempty" json:"offsets_topic,omitempty"`
	TLS          *KafkaTLS  `yaml:"tls,omitempty" json:"tls,omitempty"`
	SASL         *KafkaSASL `yaml:"sasl,omitempty" json:"sasl,omitempty"`
}

// KafkaTLS turns TLS on for the brokers' connections.
type KafkaTLS struct {
	CAFile             string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}

// KafkaSASL authenticates to the brokers.
type KafkaSASL struct {
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
func (s *KafkaSASL) PasswordRef() string {
	if s.PasswordFile != "" {
		return "${file:" + s.PasswordFile + "}"
	}
	return s.Password
}

// The Kafka destination's choices; the first of each is the default.
var (
	KafkaFormats       = []string{"debezium", "canal", "avro"}
	KafkaPartitionings = []string{"primary-key", "table", "single"}
	KafkaCompressions  = []string{"lz4", "none", "gzip", "snappy", "zstd"}
	KafkaAcks          = []string{"all", "1", "0"}
)

// DefaultOffsetsTopic keeps Kafka destinations' positions.
const DefaultOffsetsTopic = "__sluice_offsets"

// OffsetsTopicName is the topic of the destination's positions.
func (k *KafkaSpec) OffsetsTopicName() string {
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
func (k *KafkaSpec) HeartbeatTopicName() string {
	if k.HeartbeatTopic != "" {
		return k.HeartbeatTopic
	}
	return DefaultHeartbeatTopic
}

// HeartbeatEvery is the shortest time between two heartbeat messages.
func (k *KafkaSpec) HeartbeatEvery() time.Duration {
	if k.HeartbeatInterval <= 0 {
		return DefaultHeartbeatInterval
	}
	return time.Duration(k.HeartbeatInterval)
}

// ExactlyOnceEnabled: transactions unless turned off.
func (k *KafkaSpec) ExactlyOnceEnabled() bool { return k.ExactlyOnce == nil || *k.ExactlyOnce }

// Choice returns the value set, or the default (the first choice).
func Choice(v string, choices []string) string {
	if v == "" {
		return choices[0]
	}
	return v
}

// TopicFor is the topic of a source table's messages.
func (s *TaskSpec) TopicFor(t TableID) string {
	for _, o := range s.Objects {
		if o.Schema == t.Schema {
			if topic := o.Topics[t.Name]; topic != "" {
				return topic
			}
		}
	}
	if s.Destination.Topic != "" {
		return s.Destination.Topic
	}
	return s.Name
}

// PartitionsFor is the partition count a created topic of table t gets.
func (s *TaskSpec) PartitionsFor(t TableID) int {
	for _, o := range s.Objects {
		if o.Schema == t.Schema && o.Partitions[t.Name] > 0 {
			return o.Partitions[t.Name]
		}
	}
	return max(1, s.Destination.TopicPartitions)
}

// PartitionKeyOf is the columns hashed for table t's partition (nil: its
// key).
func (s *TaskSpec) PartitionKeyOf(t TableID) []string {
	for _, o := range s.Objects {
		if o.Schema == t.Schema && len(o.PartitionKey[t.Name]) > 0 {
			return o.PartitionKey[t.Name]
		}
	}
	return nil
}

// Kafka topic names: up to 249 of these characters.
var topicNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

var kafkaVersionRe = regexp.MustCompile(`^\d+\.\d+\.\d+(\.\d+)?$`)

func (k *KafkaSpec) validate(dsn string, add func(field, format string, args ...any)) {
	if dsn != "" {
		add("destination.dsn", "is for database destinations; a kafka destination takes brokers")
	}
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
	oneOf("format", k.Format, KafkaFormats)
	oneOf("partitioning", k.Partitioning, KafkaPartitionings)
	oneOf("compression", k.Compression, KafkaCompressions)
	oneOf("acks", k.Acks, KafkaAcks)
	if (k.Acks == "0" || k.Acks == "1") && k.ExactlyOnceEnabled() {
		// Idempotence, and so transactions, needs acks from every in-sync
		// replica: without it a retried write may land twice.
		add("destination.acks", "%q needs exactly_once: false (transactions need acks: all); set exactly_once: false to trade exactly-once for speed, or use acks: all", k.Acks)
	}
	switch d := k.HeartbeatInterval; {
	case d == invalidDuration:
		add("destination.heartbeat_interval", "must be a duration such as 10s or 1m")
	case d != 0 && time.Duration(d) < MinHeartbeatInterval:
		add("destination.heartbeat_interval", "must be at least %s, not %s", MinHeartbeatInterval, time.Duration(d))
	}
	if !k.Heartbeat && (k.HeartbeatTopic != "" || k.HeartbeatInterval != 0) {
		add("destination.heartbeat", "heartbeat_topic and heartbeat_interval are set but heartbeat is off; set heartbeat: true")
	}
	if k.SchemaRegistry != "" && Choice(k.Format, KafkaFormats) != "avro" {
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
		if f := s.PasswordFile; f != "" && (!strings.HasPrefix(f, "/") || strings.ContainsAny(f, "}\n")) {
			add("destination.sasl.password_file", "must be an absolute path (a file on every node that runs the task)")
		}
	}
	if t := k.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add("destination.tls", "cert_file and key_file go together")
	}
}

func (k KafkaSpec) redacted() KafkaSpec {
	if k.SASL != nil {
		s := *k.SASL
		if s.Password != "" {
			s.Password = "xxxxx"
		}
		k.SASL = &s
	}
	if k.SchemaRegistry != "" {
		k.SchemaRegistry = RedactDSN(k.SchemaRegistry)
	}
	return k
}

// validateKafkaObjects checks objects[i]'s Kafka mappings.
func validateKafkaObjects(i int, o *ObjectSpec, add func(field, format string, args ...any)) {
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
