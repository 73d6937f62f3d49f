package proto

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTaskSpec(t *testing.T) {
	good := `name: orders-to-warehouse
source:      { dsn: "postgres://repl:secret@10.0.0.5:5432/shop" }
destination: { type: postgres, dsn: "postgres://app@10.0.0.9:5432/wh" }
sync:        { schema: true, full: true, incremental: true }
objects:
  - schema: public
    tables: [orders, customers]
retry: { connection: 30m, other: 5m }
`
	spec, err := ParseTaskSpec([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if spec.Retry.ConnectionRetry().Minutes() != 30 || !spec.Sync.IncrementalEnabled() || spec.Sync.DDLEnabled() {
		t.Fatalf("parsed %+v", spec)
	}
	if r := spec.Redacted(); strings.Contains(r.Source.DSN, "secret") || !strings.Contains(r.Source.DSN, "repl:xxxxx@") {
		t.Fatalf("redacted %q", r.Source.DSN)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"name: x\nsource: {dsn: postgres://a@b/c, dsnn: 1}\n", "unknown field source.dsnn (line 2)"},
		{"name: x\nbogus: 1\n", "unknown field bogus"},
		{"", "empty"},
	} {
		if _, err := ParseTaskSpec([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// Every bad value is named at once.
	bad := "name: Bad Name\nsource: {dsn: 'mysql://x'}\ndestination: {type: doris}\nobjects: [{schema: sluice}]\nretry: {connection: forever, other: 10ms}\nconflicting_tables: maybe\n"
	_, err = ParseTaskSpec([]byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, field := range []string{"name:", "source.dsn:", "destination.type:", "objects[0].schema:", "retry.connection:", "retry.other:", "conflicting_tables:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

// Retry windows: connection 10 to 1440 minutes, other 1 to 1440 and
// shorter than connection, defaults included.
func TestRetryWindowBounds(t *testing.T) {
	base := "name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: postgres, dsn: 'postgres://a@b/d'}\nobjects: [{schema: public}]\n"
	for retry, want := range map[string]string{
		"{connection: 30m, other: 5m}": "",
		"{other: 719m}":                "",
		"{connection: 5m}":             "retry.connection: must be between 10m and 1440m, not 5m0s",
		"{connection: 1441m}":          "retry.connection: must be between 10m and 1440m",
		"{other: 30s}":                 "retry.other: must be between 1m and 1440m",
		"{connection: 10m}":            "retry.other: must be shorter than retry.connection (10m against 10m, defaults included)",
		"{connection: 60m, other: 2h}": "retry.other: must be shorter than retry.connection",
	} {
		_, err := ParseTaskSpec([]byte(base + "retry: " + retry + "\n"))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", retry, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: got %v, want %q", retry, err, want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h/db":                    "postgres://u:xxxxx@h/db",
		"host=h password=secret dbname=d":        "host=h password=xxxxx dbname=d",
		"postgres://u@h/db?password=s&sslmode=x": "postgres://u@h/db?password=xxxxx&sslmode=x",
		// Unencoded characters in the password leave no tail behind.
		"postgres://u:p@ss@h:5432/db":            "postgres://u:xxxxx@h:5432/db",
		"postgres://u:a/b?c#d@h/db":              "postgres://u:xxxxx@h/db",
		"postgresql://u:%40x@h/db?sslpassword=k": "postgresql://u:xxxxx@h/db?sslpassword=xxxxx",
		"host=h password='se cr\\'et' dbname=d":  "host=h password=xxxxx dbname=d",
		"host=h PASSWORD = s3 user=u":            "host=h PASSWORD = xxxxx user=u",
		"host=h password='unterminated dbname=d": "host=h password=xxxxx",
		"host=h password=a\\ b user=u":           "host=h password=xxxxx user=u",
		"garbage without equals password":        "xxxxx",
		"postgres://h/db":                        "postgres://h/db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"https://hooks.example.com/sluice?token=abc&x=1": "https://hooks.example.com/sluice?token=xxxxx&x=xxxxx",
		"https://u:pw@hooks.example.com/x":               "https://u:xxxxx@hooks.example.com/x",
		"not a url":                                      "xxxxx",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		`cannot parse "postgres://u:p@ss@h/db": bad`:            `cannot parse "postgres://u:xxxxx@h/db": bad`,
		"failed: host=h password=s3cret user=u":                 "failed: host=h password=xxxxx user=u",
		"password authentication failed for user repl":          "password authentication failed for user repl",
		"dial tcp: postgres://u:pw@h/db and https://a:b@c/?k=v": "dial tcp: postgres://u:xxxxx@h/db and https://a:xxxxx@c/?k=v",
	} {
		if got := RedactText(in); got != want {
			t.Errorf("RedactText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKafkaDestinationSpec(t *testing.T) {
	good := `name: k
source: {dsn: postgres://a@b/c}
destination:
  type: kafka
  brokers: [127.0.0.1:9092]
  topic: cdc
  format: canal
  partitioning: table
  compression: zstd
  acks: "1"
  exactly_once: false
  ddl_topic: cdc-ddl
  heartbeat: true
  heartbeat_topic: hb
  heartbeat_interval: 2s
  sasl: {mechanism: SCRAM-SHA-256, user: u, password: secret}
objects:
  - schema: public
    topics: {orders: orders-cdc}
    partitions: {orders: 6}
    partition_key: {orders: [customer_id]}
`
	spec, err := ParseTaskSpec([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	d := spec.Destination
	if d.Format != "canal" || d.ExactlyOnceEnabled() || d.DDLTopic != "cdc-ddl" || spec.TopicFor(TableID{"public", "orders"}) != "orders-cdc" ||
		spec.TopicFor(TableID{"public", "x"}) != "cdc" || spec.PartitionsFor(TableID{"public", "orders"}) != 6 ||
		!slices.Equal(spec.PartitionKeyOf(TableID{"public", "orders"}), []string{"customer_id"}) ||
		d.Acks != "1" || !d.Heartbeat || d.HeartbeatTopicName() != "hb" || d.HeartbeatEvery() != 2*time.Second {
		t.Fatalf("%+v", spec)
	}
	if def := (KafkaSpec{}); def.HeartbeatTopicName() != DefaultHeartbeatTopic || def.HeartbeatEvery() != 10*time.Second {
		t.Fatalf("heartbeat defaults: %s %s", def.HeartbeatTopicName(), def.HeartbeatEvery())
	}
	if r := spec.Redacted(); r.Destination.SASL.Password != "xxxxx" || spec.Destination.SASL.Password != "secret" {
		t.Fatalf("redacted: %+v, original %+v", r.Destination.SASL, spec.Destination.SASL)
	}
	bad := `name: k
source: {dsn: postgres://a@b/c}
destination: {type: kafka, dsn: "postgres://x@y/z", brokers: [nohost], topic: "bad topic", format: json, partitioning: random, compression: brotli, acks: "1", schema_registry: "http://r",
  heartbeat: true, heartbeat_topic: "hb topic", heartbeat_interval: 500ms}
objects: [{schema: public, topics: {a: "x y"}, partitions: {a: 0}, partition_key: {a: []}}]
`
	_, err = ParseTaskSpec([]byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, field := range []string{"destination.dsn:", "destination.brokers[0]:", "destination.topic:", "destination.format:", "destination.partitioning:",
		"destination.compression:", "destination.acks:", "destination.schema_registry:", "objects[0].topics.a:", "objects[0].partitions.a:", "objects[0].partition_key.a:",
		"destination.heartbeat_topic:", "destination.heartbeat_interval:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	// acks 0 and 1 give up idempotence: only without exactly_once; an
	// unknown value is refused either way, and so are heartbeat settings
	// without heartbeat: true.
	kafka := func(dest string) error {
		_, err := ParseTaskSpec([]byte("name: k\nsource: {dsn: postgres://a@b/c}\ndestination: {type: kafka, brokers: [h:1], " + dest + "}\nobjects: [{schema: public}]\n"))
		return err
	}
	for _, acks := range []string{"0", "1"} {
		if err := kafka(`acks: "` + acks + `"`); err == nil || !strings.Contains(err.Error(), "destination.acks:") || !strings.Contains(err.Error(), "exactly_once: false") {
			t.Errorf("acks %s with exactly_once: %v", acks, err)
		}
		if err := kafka(`acks: "` + acks + `", exactly_once: true`); err == nil || !strings.Contains(err.Error(), "destination.acks:") {
			t.Errorf("acks %s with exactly_once: true: %v", acks, err)
		}
		if err := kafka(`acks: "` + acks + `", exactly_once: false`); err != nil {
			t.Errorf("acks %s without exactly_once: %v", acks, err)
		}
	}
	for dest, field := range map[string]string{
		`acks: "2", exactly_once: false`:          "destination.acks:",
		`heartbeat_interval: 5s`:                  "destination.heartbeat:",
		`heartbeat: true, heartbeat_interval: x`:  "destination.heartbeat_interval:",
		`heartbeat: true, heartbeat_interval: 0s`: "",
		`heartbeat: true, heartbeat_interval: 1s`: "",
	} {
		err := kafka(dest)
		if field == "" && err != nil || field != "" && (err == nil || !strings.Contains(err.Error(), field)) {
			t.Errorf("%s: %v", dest, err)
		}
	}
	if _, err := ParseTaskSpec([]byte("name: k\nsource: {dsn: postgres://a@b/c}\ndestination: {type: postgres, dsn: postgres://a@b/c}\nobjects: [{schema: public, topics: {a: b}}]\n")); err == nil || !strings.Contains(err.Error(), "for a kafka destination") {
		t.Fatalf("topics on postgres: %v", err)
	}
}
