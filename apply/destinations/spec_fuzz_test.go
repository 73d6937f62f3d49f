package destinations_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	_ "github.com/sluicedb/sluice/apply/destinations" // the types the seeds name
	"github.com/sluicedb/sluice/proto"
)

// Task YAML reaches ParseTaskSpec from the API (POST/PUT /api/v1/tasks,
// /api/v1/precheck) and the CLI: it must never panic, what it accepts must
// be valid, and an accepted spec must survive being written out as YAML
// and read back (the state and `task get` show specs that way).
var specFuzzSeeds = []string{
	// README's example: postgres to postgres with every per-table option.
	`name: orders-to-warehouse            # a-z, 0-9, '_' and '-'
source:      { dsn: "postgres://repl:secret@10.0.0.5:5432/shop" }
destination: { type: postgres, dsn: "postgres://app:secret@10.0.0.9:5432/wh" }
sync:        { schema: true, full: true, incremental: true }   # each defaults to true
objects:
  - schema: public                   # every table of the schema...
  - schema: sales
    tables: [orders, customers]      # ...or just these
    filter: { orders: "region = 'eu'" }
    operations: { customers: [insert, update] }
    columns: { customers: [id, name, email] }
    transform: { customers: { email: "md5(email)" } }
    add_columns: { orders: { synced_at: "now()", total10: "amount * 10" } }
    rename_schema: sales_copy
    rename: { orders: sales_orders, "orders.amount": total }
conflicting_tables: precheck
retry: { connection: 720m, other: 10m }
`,
	// DDL sync, name case, throttle, alerts, a pool, a key/value DSN.
	`name: ddl_task-2
source:
  dsn: "host=10.0.0.5 port=5432 user=repl password='s3cr\'et' dbname=shop sslmode=require"
destination:
  type: postgres
  dsn: postgresql://app@db.internal/wh?sslmode=verify-full
sync:
  schema: false
  full: true
  incremental: true
  ddl: true
  ddl_operations: [create_table, add_column, rename_column, drop_index]
objects:
  - schema: public
    tables: [a, "B", c]
    filter: {a: "id > 10 AND note <> ''"}
    operations: {c: [insert, update, delete, truncate]}
name_case: lower
conflicting_tables: ignore
retry: {connection: 1h30m, other: 90s}
throttle:
  full: {rps: 50000, mbps: 40, qps: 20}
  incremental: {rps: 5000}
alerts:
  webhook: https://hooks.example.com/sluice?token=abc
  on_failure: false
  latency: {above: 30s, for: 5m}
  retained_wal: 10GiB
cluster: pool-eu_1
`,
	// README's Kafka destination.
	`name: orders-to-kafka
source: { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination:
  type: kafka
  brokers: [127.0.0.1:9092, "kafka-2:9093"]
  version: 3.6.0
  client_id: sluice-eu
  topic: cdc
  format: avro
  schema_registry: http://user:pw@registry:8081
  partitioning: primary-key
  compression: lz4
  acks: all
  exactly_once: true
  ddl_topic: cdc-ddl
  topic_partitions: 6
  replication_factor: 3
  heartbeat: true
  heartbeat_topic: __sluice_heartbeat
  heartbeat_interval: 10s
  offsets_topic: my_offsets
  tls: {ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/k.pem, insecure_skip_verify: true}
  sasl: {mechanism: SCRAM-SHA-512, user: u, password: "p@ss"}
sync: {schema: false}
objects:
  - schema: public
    tables: [orders, customers]
    topics: { customers: customers-cdc }
    partitions: { customers: 12 }
    partition_key: { orders: [customer_id] }
`,
	// Kafka with acks 1 (needs exactly_once: false), JSON flow style.
	`{"name": "k1", "source": {"dsn": "postgres://a@b/c"}, "destination": {"type": "kafka", "brokers": ["h:1"], "acks": "1", "exactly_once": false, "format": "canal", "partitioning": "single", "compression": "zstd"}, "objects": [{"schema": "s1"}, {"schema": "s2", "tables": ["t"]}], "throttle": {}}`,
	// Anchors, aliases and a merge key.
	`name: anchors
source: &src {dsn: "postgres://a@b/c"}
destination: {type: postgres, dsn: "postgres://a@b/d"}
objects:
  - &o {schema: public, tables: [t1]}
  - <<: *o
    schema: other
`,
	// The Doris destination with its objects keys, and one with bad values.
	`name: shop-to-dw
source: { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination: { type: doris, url: "http://fe-host:8030", user: admin, password: "pw", database: dw, batch_interval: 5s, replication_num: 1 }
objects:
  - schema: shop
    engine: { events: duplicate }
    bucket_count: { orders: 16 }
    distribution_key: { orders: [id] }
`,
	"name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: doris, url: 'ftp://u:p@h', database: 9db, batch_interval: 30s, replication_num: -1}\nobjects: [{schema: s, engine: {t: aggregate}, bucket_count: {t: 0}, distribution_key: {t: []}}]\n",
	// AnalyticDB with its objects keys and upsert mode, PolarDB-O without
	// a port, and both with bad values.
	`name: shop-to-adb
source: { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination: { type: adbpg, dsn: "postgres://app@gp-1.gpdb.rds.aliyuncs.com:5432/wh", upsert: delete_insert }
objects:
  - schema: shop
    tables: [orders, events]
    distribution_key: { orders: [customer_id, id] }
    partitions: flatten
`,
	"name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: adbpg, dsn: 'postgres://a@b/d', upsert: merge}\nobjects: [{schema: s, tables: [a], partitions: keep, refresh: never, distribution_key: {b: [], a: [x, x, '']}}]\n",
	"name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: polardb-o, dsn: 'postgres://app@pc-1.o.polardb.rds.aliyuncs.com/wh'}\nobjects: [{schema: s, partitions: keep}]\n",
	"name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: polardb-o, dsn: 'oracle://a@b/d', upsert: auto}\nobjects: [{schema: s, distribution_key: {t: [a]}}]\n",
	// A map key that yaml.v3 writes as a merge key (see hasMergeKey).
	"name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: postgres, dsn: 'postgres://a@b/d'}\nobjects: [{schema: public, filter: {'<<': 'a = 1'}}]\n",
	// Malformed: bad values everywhere, unknown field, two documents, tabs.
	"name: Bad Name\nsource: {dsn: 'mysql://x'}\ndestination: {type: doris}\nobjects: [{schema: sluice}]\nretry: {connection: forever, other: 10ms}\nconflicting_tables: maybe\n",
	"name: x\nsource: {dsn: postgres://a@b/c, dsnn: 1}\n",
	"name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: postgres, dsn: 'postgres://a@b/d'}\nobjects: [{schema: public}]\n---\nname: y\n",
	"name: x\n\tsource: [\n",
	"objects: [{schema: public, filter: {t: 'a; drop table t'}, columns: {t: []}, rename: {'.x': y}}]\n",
	"",
	"{",
	"*a",
}

func FuzzParseTaskSpec(f *testing.F) {
	for _, s := range specFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := proto.ParseTaskSpec(data)
		if err != nil {
			if spec != nil {
				t.Fatalf("error %v with a spec", err)
			}
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("accepted spec does not validate again: %v", err)
		}
		if hasMergeKey(t, spec) {
			// yaml.v3 writes a map key "<<" unquoted, and reads it back as
			// a merge key: `filter: {"<<": "a = 1"}` is accepted but does
			// not survive Marshal (github.com/yaml/go-yaml/pull/48). The
			// state keeps specs as JSON, so only YAML written out for a
			// user (and fed back) meets it.
			return
		}
		out, err := yaml.Marshal(spec)
		if err != nil {
			t.Fatalf("marshal accepted spec: %v", err)
		}
		again, err := proto.ParseTaskSpec(out)
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
		}
		// Compared through their JSON form, which is how the replicated
		// state stores specs. It does not tell an empty map or list from
		// an absent one (both omitempty): YAML omits an empty map too, so
		// `filter: {}` comes back nil, a harmless difference.
		if a, b := specJSON(t, spec), specJSON(t, again); a != b {
			t.Fatalf("round trip through YAML changed the spec:\n%s\nYAML:\n%s\nback:\n%s", a, out, b)
		}
		if !reflect.DeepEqual(normalizeSpec(*spec), normalizeSpec(*again)) {
			t.Fatalf("round trip through YAML changed the spec:\n%#v\n%#v", spec, again)
		}
	})
}

// hasMergeKey reports whether one of the spec's maps has the key "<<".
func hasMergeKey(t *testing.T, s *proto.TaskSpec) bool {
	return strings.Contains(specJSON(t, s), `"\u003c\u003c"`) || strings.Contains(specJSON(t, s), `"<<"`)
}

func specJSON(t *testing.T, s *proto.TaskSpec) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return string(b)
}

// normalizeSpec turns empty maps and lists into nil (see above), so that
// DeepEqual compares everything else exactly. The destination's config
// and the objects' options are compared by their JSON form.
func normalizeSpec(s proto.TaskSpec) proto.TaskSpec {
	s.Destination.Config = nil
	if len(s.Sync.DDLOperations) == 0 {
		s.Sync.DDLOperations = nil
	}
	objs := make([]proto.ObjectSpec, len(s.Objects))
	for i, o := range s.Objects {
		if len(o.Tables) == 0 {
			o.Tables = nil
		}
		if len(o.Rename) == 0 {
			o.Rename = nil
		}
		if len(o.Filter) == 0 {
			o.Filter = nil
		}
		o.Options = nil
		o.Operations = nilEmptyLists(o.Operations)
		o.Columns = nilEmptyLists(o.Columns)
		objs[i] = o
	}
	s.Objects = objs
	return s
}

func nilEmptyLists(m map[string][]string) map[string][]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		if len(v) == 0 {
			v = nil
		}
		out[k] = v
	}
	return out
}
