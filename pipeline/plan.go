package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Plan works out what a task would create and where each table goes,
// from the source's catalog, creating nothing (sluice task plan): each
// table's destination name, key, apply group (of groups; tables linked by
// foreign keys share one) and row estimate, and what the destination says
// of it (apply.Planner: storage, schema sync's statements).
func Plan(ctx context.Context, spec *proto.TaskSpec, groups int) (*proto.TaskPlan, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	d, err := apply.Lookup(spec.Destination.Type)
	if err != nil {
		return nil, err
	}
	conn, err := pgconfig.Connect(ctx, spec.Source.ConnDSN(), "sluice plan "+spec.Name)
	if err != nil {
		msg, _ := pgconfig.ConnectProblem("source", err)
		return nil, fmt.Errorf("cannot connect to the source: %s", msg)
	}
	defer conn.Close(context.Background())
	schema, err := capture.ReadTransformedSchema(ctx, conn, spec)
	if err != nil {
		return nil, err
	}
	ids := make([]proto.TableID, len(schema.Tables))
	for i := range schema.Tables {
		ids[i] = schema.Tables[i].ID
	}
	linked, err := capture.LinkedTables(ctx, conn, ids)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	names := spec.Names()
	plan := &proto.TaskPlan{Task: spec.Name, Destination: spec.Destination.Type, Groups: groups}
	for i := range schema.Tables {
		t := &schema.Tables[i]
		pt := proto.PlannedTable{Source: t.ID, Destination: names.Table(t.ID).String(), Key: t.PrimaryKey,
			Group: apply.LinkedGroupOf(t.ID, groups, linked), EstimatedRows: t.EstimatedRows}
		if anchor := linked[t.ID.Key()]; anchor != "" && anchor != t.ID.Key() {
			pt.Linked = proto.TableIDFromKey(anchor).String()
		}
		plan.Tables = append(plan.Tables, pt)
	}
	for i := range schema.Objects {
		if plan.Objects == nil {
			plan.Objects = map[proto.ObjectKind]int{}
		}
		plan.Objects[schema.Objects[i].Kind]++
	}
	if p, ok := d.(apply.Planner); ok {
		p.Plan(spec, schema, plan)
	}
	return plan, nil
}
