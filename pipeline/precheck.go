package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/proto"
)

// Precheck checks a task before anything is created for it: the source's
// checks (capture), then its destination's (the registry's): every check
// with its id, its result (pass, warning, failure), what it found and how
// to fix it. It creates nothing in the source or the destination.
func Precheck(ctx context.Context, spec *proto.TaskSpec) *proto.PrecheckReport {
	report, _ := precheck(ctx, spec)
	return report
}

func precheck(ctx context.Context, spec *proto.TaskSpec) (*proto.PrecheckReport, *proto.SourceFacts) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := &proto.Checks{}
	src := capture.Precheck(ctx, spec, c)
	apply.Precheck(ctx, spec, src, c)
	twoWayPrecheck(ctx, spec, src, c)
	return c.Report(), src
}

// PrecheckFix is Precheck with --fix: when the tables' replica identity
// fails, it runs the fix the check lists (ALTER TABLE ... REPLICA IDENTITY
// FULL, bounded by the fixer's lock timeout: no other DDL) and checks
// again. The replica identity check then says what ran, or what could not
// be fixed, and the report's Fixed lists the statements that ran.
func PrecheckFix(ctx context.Context, spec *proto.TaskSpec, fixer capture.IdentityFixer) *proto.PrecheckReport {
	report, facts := precheck(ctx, spec)
	if facts == nil || len(facts.NoIdentity) == 0 {
		return report
	}
	fixes := fixer.FixSource(ctx, spec, facts.NoIdentity)
	report, _ = precheck(ctx, spec)
	report.Fixed = reportIdentityFixes(report, fixes)
	return report
}

// reportIdentityFixes rewrites the replica identity check of a precheck
// run after the fixes: a pass says what ran; a failure what could not be
// fixed and how to run it by hand. It returns the statements that ran.
func reportIdentityFixes(r *proto.PrecheckReport, fixes []capture.IdentityFix) []string {
	var ran, failed, manual []string
	for _, f := range fixes {
		if f.Err == nil {
			ran = append(ran, f.Statement)
			continue
		}
		failed = append(failed, fmt.Sprintf("%s (%v)", f.Table, f.Err))
		manual = append(manual, f.Statement+";")
	}
	for i := range r.Checks {
		c := &r.Checks[i]
		if c.Check != capture.CheckReplicaIdentity {
			continue
		}
		var said []string
		if len(ran) > 0 {
			said = append(said, "fixed: "+strings.Join(ran, "; "))
		}
		if c.Result != proto.ResultPass {
			if len(failed) > 0 {
				said = append(said, "could not fix: "+strings.Join(failed, ", "))
				c.Fix = "run it yourself when the table is not busy (or add a primary key): " + strings.Join(manual, " ")
			}
			said = append(said, c.Message)
		}
		if len(said) > 0 {
			c.Message = strings.Join(said, "; ")
		}
	}
	return ran
}
