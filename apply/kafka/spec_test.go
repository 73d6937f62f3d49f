package kafka

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
)

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
	spec, err := proto.ParseTaskSpec([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	d := configOf(spec)
	orders, x := proto.TableID{Schema: "public", Name: "orders"}, proto.TableID{Schema: "public", Name: "x"}
	if d.Format != "canal" || d.ExactlyOnceEnabled() || d.DDLTopic != "cdc-ddl" || topicFor(spec, d, orders) != "orders-cdc" ||
		topicFor(spec, d, x) != "cdc" || partitionsFor(spec, d, orders) != 6 ||
		!slices.Equal(partitionKeyOf(spec, orders), []string{"customer_id"}) ||
		d.Acks != "1" || !d.Heartbeat || d.HeartbeatTopicName() != "hb" || d.HeartbeatEvery() != 2*time.Second {
		t.Fatalf("%+v", spec)
	}
	if def := (Config{}); def.HeartbeatTopicName() != DefaultHeartbeatTopic || def.HeartbeatEvery() != 10*time.Second {
		t.Fatalf("heartbeat defaults: %s %s", def.HeartbeatTopicName(), def.HeartbeatEvery())
	}
	if r := spec.Redacted(); configOf(&r).SASL.Password != "xxxxx" || d.SASL.Password != "secret" {
		t.Fatalf("redacted: %+v, original %+v", configOf(&r).SASL, d.SASL)
	}
	bad := `name: k
source: {dsn: postgres://a@b/c}
destination: {type: kafka, dsn: "postgres://x@y/z", brokers: [nohost], topic: "bad topic", format: json, partitioning: random, compression: brotli, acks: "1", schema_registry: "http://r",
  heartbeat: true, heartbeat_topic: "hb topic", heartbeat_interval: 500ms}
objects: [{schema: public, topics: {a: "x y"}, partitions: {a: 0}, partition_key: {a: []}}]
`
	_, err = proto.ParseTaskSpec([]byte(bad))
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
		_, err := proto.ParseTaskSpec([]byte("name: k\nsource: {dsn: postgres://a@b/c}\ndestination: {type: kafka, brokers: [h:1], " + dest + "}\nobjects: [{schema: public}]\n"))
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
	if _, err := proto.ParseTaskSpec([]byte("name: k\nsource: {dsn: postgres://a@b/c}\ndestination: {type: postgres, dsn: postgres://a@b/c}\nobjects: [{schema: public, topics: {a: b}}]\n")); err == nil || !strings.Contains(err.Error(), "objects[0].topics: unknown field (line 4): not a key of a postgres destination") {
		t.Fatalf("topics on postgres: %v", err)
	}
}
