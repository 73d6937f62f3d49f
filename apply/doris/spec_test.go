package doris_test

import (
	"strings"
	"testing"

	_ "github.com/sluicedb/sluice/apply/destinations"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/proto"
)

func TestSpec(t *testing.T) {
	spec, err := proto.ParseTaskSpec([]byte(`name: shop-to-dw
source: { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination: { type: doris, url: "http://fe-host:8030", user: admin, password: "pw", database: dw, batch_interval: 3s, replication_num: 1 }
objects:
  - schema: shop
    engine: { events: duplicate }
    bucket_count: { orders: 16 }
    distribution_key: { orders: [id] }
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := spec.Destination.Config.(*doris.Config)
	if cfg.BatchEvery().String() != "3s" || cfg.Database != "dw" || cfg.ReplicationNum != 1 {
		t.Fatalf("config %+v", cfg)
	}
	if o := spec.Objects[0].Options.(*doris.ObjectOptions); o.Engine["events"] != "duplicate" || o.BucketCount["orders"] != 16 {
		t.Fatalf("objects %+v", o)
	}
	if got := doris.Destination.Endpoints(spec); len(got) != 1 || got[0] != "fe-host:8030" {
		t.Fatalf("endpoints %v", got)
	}
	if strings.Contains(spec.Redacted().Destination.Config.(*doris.Config).Password, "pw") {
		t.Fatal("the password shows in a redacted spec")
	}

	_, err = proto.ParseTaskSpec([]byte("name: x\nsource: {dsn: 'postgres://a@b/c'}\n" +
		"destination: {type: doris, url: 'ftp://u:p@h', database: 9db, batch_interval: 30s, replication_num: -1}\n" +
		"objects: [{schema: s, engine: {t: aggregate}, bucket_count: {t: 0}, distribution_key: {t: []}}]\n"))
	if err == nil {
		t.Fatal("a bad block was accepted")
	}
	for _, want := range []string{"destination.url", "destination.user", "destination.database", "destination.batch_interval",
		"destination.replication_num", "objects[0].engine.t", "objects[0].bucket_count.t", "objects[0].distribution_key.t"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error names no %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), ":p@") {
		t.Errorf("the error shows the URL's password: %v", err)
	}
	_, err = proto.ParseTaskSpec([]byte("name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: doris, url: 'http://h:8030', user: u, database: d, dsn: 'x'}\n"))
	if err == nil || !strings.Contains(err.Error(), "dsn") {
		t.Fatalf("a key of another destination type: %v", err)
	}
}
