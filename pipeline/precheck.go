package pipeline

import (
	"context"
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
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := &proto.Checks{}
	src := capture.Precheck(ctx, spec, c)
	apply.Precheck(ctx, spec, src, c)
	twoWayPrecheck(ctx, spec, src, c)
	return c.Report()
}
