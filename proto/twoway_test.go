package proto_test

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

const twoWayBase = "name: ab\nsource: {dsn: 'postgres://a@h1/shop'}\ndestination: {type: test, dsn: 'postgres://b@h2/shop'}\nobjects: [{schema: public}]\n"

func TestTwoWaySpec(t *testing.T) {
	spec, err := proto.ParseTaskSpec([]byte(twoWayBase + "two_way: {conflicts: last_writer_wins}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if spec.TwoWay.Policy() != proto.ConflictLastWriterWins || spec.Direction() != "forward" {
		t.Fatalf("parsed %+v", spec.TwoWay)
	}
	if def, _ := proto.ParseTaskSpec([]byte(twoWayBase + "two_way: {}\n")); def.TwoWay.Policy() != proto.ConflictTaskFailed {
		t.Fatalf("default policy %q", def.TwoWay.Policy())
	}
	rev, err := spec.ReverseSpec()
	if err != nil {
		t.Fatal(err)
	}
	// The reverse direction reads B and writes A, incremental only, no DDL,
	// same tables; each direction drops the other's origin.
	if rev.Name != "ab__r" || rev.Source.DSN != "postgres://b@h2/shop" || prototest.ConfigOf(&rev).DSN != "postgres://a@h1/shop" ||
		rev.Sync.SchemaEnabled() || rev.Sync.FullEnabled() || !rev.Sync.IncrementalEnabled() || rev.Sync.DDLEnabled() ||
		!rev.IsReverse() || rev.ForwardName() != "ab" || rev.Objects[0].Schema != "public" {
		t.Fatalf("reverse spec %+v", rev)
	}
	if spec.ApplyOrigin() != rev.PeerOrigin() || rev.ApplyOrigin() != spec.PeerOrigin() || spec.ApplyOrigin() == rev.ApplyOrigin() {
		t.Fatalf("origins: forward applies %q drops %q; reverse applies %q drops %q", spec.ApplyOrigin(), spec.PeerOrigin(), rev.ApplyOrigin(), rev.PeerOrigin())
	}
	for name, want := range map[string]bool{"sluice:ab:fwd": true, "sluice:ab:fwd:3": true, "sluice:ab:fwdx": false, "sluice:abc:fwd": false, "": false} {
		if proto.OriginOf(name, spec.ApplyOrigin()) != want {
			t.Errorf("OriginOf(%q) = %v", name, !want)
		}
	}
	var one proto.TaskSpec
	if one.ApplyOrigin() != "" || proto.OriginOf("sluice:ab:fwd", one.PeerOrigin()) {
		t.Fatal("a one-way task has origins")
	}
}

func TestTwoWaySpecRefusals(t *testing.T) {
	for extra, want := range map[string]string{
		"two_way: {conflicts: newest}\n":                                        "two_way.conflicts: must be one of task_failed, ignore, overwrite, last_writer_wins",
		"two_way: {}\nsync: {incremental: false}\n":                             "two_way: needs incremental sync",
		"two_way: {}\nname_case: upper\n":                                       "name_case: two-way sync writes back under the same names",
		"two_way: {sequences: interleave}\n":                                    "unknown field two_way.sequences",
		"two_way: {}\nobjects: [{schema: public, rename: {a: b}}]\n":            "objects[0].rename: renames",
		"two_way: {}\nobjects: [{schema: public, filter: {a: 'x = 1'}}]\n":      "objects[0].filter: keeps some rows",
		"two_way: {}\nobjects: [{schema: public, columns: {a: [id]}}]\n":        "objects[0].columns: keeps some columns",
		"two_way: {}\nobjects: [{schema: public, operations: {a: [insert]}}]\n": "objects[0].operations: keeps some changes",
	} {
		y := strings.Replace(twoWayBase, "objects: [{schema: public}]\n", "", 1)
		if !strings.Contains(extra, "objects:") {
			y += "objects: [{schema: public}]\n"
		}
		_, err := proto.ParseTaskSpec([]byte(y + extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", extra, err, want)
		}
	}
	if _, err := proto.ParseTaskSpec([]byte(strings.Replace(twoWayBase, "name: ab", "name: ab__r", 1))); err == nil || !strings.Contains(err.Error(), "reverse direction") {
		t.Errorf("a task name ending in __r: %v", err)
	}
}
