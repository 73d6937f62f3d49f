package proto_test

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

func TestPerTableMetricsKey(t *testing.T) {
	base := "name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: test, dsn: 'postgres://a@d/e'}\nobjects: [{schema: public}]\n"
	for _, tc := range []struct {
		extra string
		on    bool
	}{{"", true}, {"per_table_metrics: true\n", true}, {"per_table_metrics: false\n", false}} {
		spec, err := proto.ParseTaskSpec([]byte(base + tc.extra))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if spec.PerTableMetricsOn() != tc.on {
			t.Errorf("%q: per-table metrics on = %v, want %v", tc.extra, !tc.on, tc.on)
		}
		if c := spec.Clone(); c.PerTableMetricsOn() != tc.on {
			t.Errorf("%q: the clone lost the key", tc.extra)
		}
	}
	for _, bad := range []string{"per_table_metrics: maybe\n", "per_table_metrics: 1\n", "per_table_metrics: [true]\n", "per_table_metrics: 'true'\n"} {
		_, err := proto.ParseTaskSpec([]byte(base + bad))
		if err == nil || !strings.Contains(err.Error(), "per_table_metrics") {
			t.Errorf("%q: got %v, want an error naming per_table_metrics", bad, err)
		}
	}
}
