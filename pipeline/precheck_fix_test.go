package pipeline

import (
	"errors"
	"slices"
	"testing"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/proto"
)

// After --fix the replica identity check says what ran, and, when a
// table could not be fixed, why and the statement to run by hand.
func TestReportIdentityFixes(t *testing.T) {
	fixes := []capture.IdentityFix{
		{Table: "public.a", Statement: "ALTER TABLE public.a REPLICA IDENTITY FULL"},
		{Table: "public.b", Statement: "ALTER TABLE public.b REPLICA IDENTITY FULL", Err: errors.New("lock timeout")},
	}
	r := &proto.PrecheckReport{Checks: []proto.Problem{
		{Check: "source.connect", Result: proto.ResultPass, Message: "connected"},
		{Check: capture.CheckReplicaIdentity, Result: proto.ResultFailure, Message: "without a key: public.b", Fix: "add a primary key"},
	}}
	ran := reportIdentityFixes(r, fixes)
	if !slices.Equal(ran, []string{"ALTER TABLE public.a REPLICA IDENTITY FULL"}) {
		t.Fatalf("ran %v", ran)
	}
	got := r.Checks[1]
	if got.Message != "fixed: ALTER TABLE public.a REPLICA IDENTITY FULL; could not fix: public.b (lock timeout); without a key: public.b" ||
		got.Fix != "run it yourself when the table is not busy (or add a primary key): ALTER TABLE public.b REPLICA IDENTITY FULL;" {
		t.Fatalf("failed check: %+v", got)
	}
	if r.Checks[0].Message != "connected" {
		t.Fatalf("another check changed: %+v", r.Checks[0])
	}

	r = &proto.PrecheckReport{Checks: []proto.Problem{{Check: capture.CheckReplicaIdentity, Result: proto.ResultPass, Message: "every table has one"}}}
	reportIdentityFixes(r, fixes[:1])
	if r.Checks[0].Message != "fixed: ALTER TABLE public.a REPLICA IDENTITY FULL" {
		t.Fatalf("passed check: %+v", r.Checks[0])
	}
}
