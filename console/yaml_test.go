package console_test

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/chromedp/chromedp"

	_ "github.com/sluicedb/sluice/apply/destinations" // the destination types the specs name
	"github.com/sluicedb/sluice/console"
	"github.com/sluicedb/sluice/internal/browsertest"
	"github.com/sluicedb/sluice/proto"
)

// The spec the task page shows (and the Update editor starts from) is
// the API's JSON written as YAML by the console's script: parsed back by
// the task spec parser, it is the same spec, for every kind of value
// (durations, percentages, maps, quoted filters, keys with dots).
func TestConsoleSpecYAMLRoundTrip(t *testing.T) {
	browser := browsertest.Browser(t)
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	tab := browsertest.NewTab(t, browser)
	tab.Run(chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#login")))
	for _, src := range []string{
		`name: orders-to-warehouse
source:      { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination: { type: postgres, dsn: "postgres://app@10.0.0.9:5432/wh" }
sync:        { schema: true, full: false, incremental: true }
objects:
  - schema: public
  - schema: sales
    tables: [orders, customers, "2024"]
    sequences: [order_number_seq]
    filter: { orders: "region = 'eu' AND note <> 'a: b # c'" }
    operations: { customers: [insert, update] }
    columns: { customers: [id, name, email] }
    rename_schema: sales_copy
    rename: { orders: sales_orders, "orders.amount": total }
conflicting_tables: ignore
retry: { connection: 720m, other: 10m }
verify: { interval: 1h, sample: 1% }
`,
		`name: t-2
source: { dsn: "host=127.0.0.1 port=5432 dbname=a user=u" }
destination: { type: postgres, dsn: "host=127.0.0.1 dbname=b" }
objects:
  - schema: "true"
    tables: ["null", "yes", "-x", "[y]"]
`,
	} {
		spec, err := proto.ParseTaskSpec([]byte(src))
		if err != nil {
			t.Fatalf("the test's spec: %v", err)
		}
		js, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		yaml := browsertest.Eval[string](tab, "specYAML("+string(js)+")")
		back, err := proto.ParseTaskSpec([]byte(yaml))
		if err != nil {
			t.Fatalf("the YAML shown does not parse: %v\n%s", err, yaml)
		}
		if !reflect.DeepEqual(spec, back) {
			t.Fatalf("the YAML shown is another spec:\n%s\nwas:\n%+v\nreads as:\n%+v", yaml, spec, back)
		}
	}
}
