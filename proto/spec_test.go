package proto_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
	_ "github.com/sluicedb/sluice/proto/prototest" // the test destination type
)

func TestParseTaskSpec(t *testing.T) {
	good := `name: orders-to-warehouse
source:      { dsn: "postgres://repl:secret@10.0.0.5:5432/shop" }
destination: { type: test, dsn: "postgres://app@10.0.0.9:5432/wh" }
sync:        { schema: true, full: true, incremental: true }
objects:
  - schema: public
    tables: [orders, customers]
retry: { connection: 30m, other: 5m }
`
	spec, err := proto.ParseTaskSpec([]byte(good))
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
		if _, err := proto.ParseTaskSpec([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// Every bad value is named at once.
	bad := "name: Bad Name\nsource: {dsn: 'mysql://x'}\ndestination: {type: doris}\nobjects: [{schema: sluice}]\nretry: {connection: forever, other: 10ms}\nconflicting_tables: maybe\n"
	_, err = proto.ParseTaskSpec([]byte(bad))
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
	base := "name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: test, dsn: 'postgres://a@b/d'}\nobjects: [{schema: public}]\n"
	for retry, want := range map[string]string{
		"{connection: 30m, other: 5m}": "",
		"{other: 719m}":                "",
		"{connection: 5m}":             "retry.connection: must be between 10m and 1440m, not 5m0s",
		"{connection: 1441m}":          "retry.connection: must be between 10m and 1440m",
		"{other: 30s}":                 "retry.other: must be between 1m and 1440m",
		"{connection: 10m}":            "retry.other: must be shorter than retry.connection (10m against 10m, defaults included)",
		"{connection: 60m, other: 2h}": "retry.other: must be shorter than retry.connection",
	} {
		_, err := proto.ParseTaskSpec([]byte(base + "retry: " + retry + "\n"))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", retry, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: got %v, want %q", retry, err, want)
		}
	}
}

func TestRenameValidation(t *testing.T) {
	base := "name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: test, dsn: 'postgres://a@b/d'}\n"
	for objects, want := range map[string]string{
		"objects: [{schema: s, rename: {a: b, c: b}}]":              `renames to "b"`,
		"objects: [{schema: s, rename: {'a.': x}}]":                 `keys are "table" or "table.column"`,
		"objects: [{schema: s, tables: [a], rename: {z: y}}]":       `"z" is not among the tables listed`,
		"objects: [{schema: s, rename_schema: sluice}]":             "cannot be a schema name",
		"objects: [{schema: s, rename: {a: b}}]\nname_case: shouty": "name_case",
	} {
		if _, err := proto.ParseTaskSpec([]byte(base + objects + "\n")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", objects, err, want)
		}
	}
}

func TestFilterInSpec(t *testing.T) {
	// The attack, through the spec parser.
	_, err := proto.ParseTaskSpec([]byte(`name: t
source: {dsn: "postgres://u@h/d"}
destination: {type: test, dsn: "postgres://u@h/e"}
objects: [{schema: public, tables: [a], filter: {a: "true); CREATE TABLE public.pwned_raw(x int); --"}}]
`))
	if err == nil {
		t.Fatal("the spec parser took a filter that breaks out")
	}
	if _, err := proto.ParseTaskSpec([]byte(`name: t
source: {dsn: "postgres://u@h/d"}
destination: {type: test, dsn: "postgres://u@h/e"}
objects: [{schema: public, tables: [a], filter: {a: "note <> ';'"}}]
`)); err != nil {
		t.Fatalf("a ';' inside a literal: %v", err)
	}
}

// objects[].sequences: named sequences beside listed tables, checked by
// field; a whole schema brings all its sequences already.
func TestSequencesInSpec(t *testing.T) {
	base := "name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: test, dsn: 'postgres://a@b/d'}\n"
	spec, err := proto.ParseTaskSpec([]byte(base + "objects: [{schema: s, tables: [a], sequences: [order_no, invoice_no]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Objects[0].Sequences; strings.Join(got, ",") != "order_no,invoice_no" {
		t.Fatalf("sequences %v", got)
	}
	if c := spec.Clone(); &c.Objects[0].Sequences[0] == &spec.Objects[0].Sequences[0] {
		t.Fatal("Clone shares the sequences")
	}
	for objects, want := range map[string]string{
		"objects: [{schema: s, sequences: [a]}]":                                            `objects[0].sequences: the entry selects all of schema "s"`,
		"objects: [{schema: s, tables: [t], sequences: [a, a]}]":                            `objects[0].sequences[1]: "a" is listed twice`,
		"objects: [{schema: s, tables: [t], sequences: ['']}]":                              "objects[0].sequences[0]: is empty",
		"objects: [{schema: s, tables: [t], sequence: [a]}]":                                "unknown field",
		"objects: [{schema: s, tables: [t], sequences: [" + strings.Repeat("x", 64) + "]}]": "longer than 63 bytes",
	} {
		if _, err := proto.ParseTaskSpec([]byte(base + objects + "\n")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", objects, err, want)
		}
	}
}

// The verify block: defaults when present, bounds, and each problem
// named by its key.
func TestVerifySpec(t *testing.T) {
	base := "name: x\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: test, dsn: 'postgres://a@b/d'}\nobjects: [{schema: public}]\n"
	spec, err := proto.ParseTaskSpec([]byte(base))
	if err != nil || spec.Verify != nil {
		t.Fatalf("no verify block: %+v %v", spec.Verify, err)
	}
	for block, want := range map[string]struct {
		every   time.Duration
		windows int
	}{
		"{}":                             {time.Hour, 100},
		"{interval: 1m, sample: 100%}":   {time.Minute, 1},
		"{interval: 2h, sample: '0.5%'}": {2 * time.Hour, 200},
		"{sample: 3%}":                   {time.Hour, 34},
		"{sample: ' 25 % '}":             {time.Hour, 4},
		"{sample: 0.01%}":                {time.Hour, 10000},
	} {
		spec, err := proto.ParseTaskSpec([]byte(base + "verify: " + block + "\n"))
		if err != nil {
			t.Errorf("%s: %v", block, err)
			continue
		}
		if spec.Verify == nil || spec.Verify.Every() != want.every || spec.Verify.Windows() != want.windows {
			t.Errorf("%s: every %s, %d windows; want %s, %d", block, spec.Verify.Every(), spec.Verify.Windows(), want.every, want.windows)
		}
		if c := spec.Clone(); c.Verify == spec.Verify {
			t.Errorf("Clone shares the verify block")
		}
	}
	for block, want := range map[string]string{
		"{interval: 30s}":                 "verify.interval: must be at least 1m, not 30s",
		"{interval: soon}":                "verify.interval: must be a duration such as 1h or 30m",
		"{sample: 1}":                     `verify.sample: must be a percentage from 0.01% to 100%, such as 1% or 0.5%; not "1"`,
		"{sample: 0%}":                    "verify.sample: must be a percentage",
		"{sample: 150%}":                  "verify.sample: must be a percentage",
		"{sample: 0.001%}":                "verify.sample: must be a percentage from 0.01%",
		"{sample: x%}":                    "verify.sample: must be a percentage",
		"{every: 1h}":                     "unknown field verify.every (line 5)",
		"{}\nsync: {incremental: false}":  "verify: continuous verification runs during incremental sync",
		"{interval: 10s, sample: 200%}\n": "verify.interval: must be at least 1m, not 10s; verify.sample: must be a percentage",
		"{}\nalerts: {webhook: 'http://h/', on_differences: false, bogus: 1}": "unknown field alerts.bogus",
	} {
		if _, err := proto.ParseTaskSpec([]byte(base + "verify: " + block + "\n")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", block, err, want)
		}
	}
	spec, err = proto.ParseTaskSpec([]byte(base + "alerts: {webhook: 'http://h/', on_differences: false}\n"))
	if err != nil || spec.Alerts.DifferenceAlerts() || !spec.Alerts.FailureAlerts() {
		t.Fatalf("alerts.on_differences: false: %+v %v", spec.Alerts, err)
	}
	spec, err = proto.ParseTaskSpec([]byte(base + "alerts: {webhook: 'http://h/'}\n"))
	if err != nil || !spec.Alerts.DifferenceAlerts() {
		t.Fatalf("alerts.on_differences defaults to true: %+v %v", spec.Alerts, err)
	}
}

// A record's outstanding differences, and the summary task get shows.
func TestVerifySummary(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if proto.SummarizeVerify(nil) != nil {
		t.Fatal("a summary of nothing")
	}
	s := proto.SummarizeVerify([]proto.VerifyRecord{
		{Table: "public.a", At: at, Differences: 3},
		{Table: "public.b", At: at.Add(time.Minute), Differences: 2, Repaired: 2},
		{Table: "public.c", At: at, Differences: 4, Repaired: 4, Remaining: 1},
		{Table: "public.d", At: at, Error: "boom"},
	})
	if s.Tables != 4 || !s.At.Equal(at.Add(time.Minute)) || s.Differences != 4 || strings.Join(s.Differing, ",") != "public.a,public.c" ||
		strings.Join(s.Failed, ",") != "public.d" {
		t.Fatalf("summary %+v", s)
	}
}
