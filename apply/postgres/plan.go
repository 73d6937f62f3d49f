package postgres

import (
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// Plan lists the statements schema sync runs, in order, with the
// working-copy objects in their phases (apply.Planner). Statements that
// run only when an object is missing are listed all the same.
func (destination) Plan(spec *proto.TaskSpec, s *proto.Schema, plan *proto.TaskPlan) {
	planSchema(spec, s, plan, schemaOptions(spec))
}

// planSchema plans schema sync of s with the schema options o (a
// dialect's Plan passes its own, and s as it adapts it).
func planSchema(spec *proto.TaskSpec, s *proto.Schema, plan *proto.TaskPlan, o *SchemaOptions) {
	storage := map[proto.TableID]string{}
	for i := range s.Tables {
		t := &s.Tables[i]
		switch {
		case t.PartitionBy != "" && !o.flatten(t.ID):
			storage[t.ID] = fmt.Sprintf("partitioned by %s (%d partitions)", t.PartitionBy, len(t.Partitions))
		case t.Partitioned:
			storage[t.ID] = "table (partitions flattened)"
		default:
			storage[t.ID] = "table"
		}
	}
	for i := range plan.Tables {
		plan.Tables[i].Storage = storage[plan.Tables[i].Source]
	}
	if !spec.Sync.SchemaEnabled() {
		return
	}
	add := func(phase string, steps []ddlStep) {
		for _, st := range steps {
			if !st.objects {
				plan.Statements = append(plan.Statements, proto.PlannedStatement{Phase: phase, What: st.What, SQL: st.SQL})
				continue
			}
			for i := range s.Objects {
				obj := &s.Objects[i]
				if obj.Kind.PreData() != st.preData {
					continue
				}
				plan.Statements = append(plan.Statements, proto.PlannedStatement{Phase: phase, What: "create " + obj.Ident(), SQL: obj.DDL})
				for _, after := range obj.After {
					plan.Statements = append(plan.Statements, proto.PlannedStatement{Phase: phase, What: "complete " + obj.Ident(), SQL: after})
				}
			}
		}
	}
	add(proto.PhaseBeforeLoad, preDataSteps(s, o))
	add(proto.PhaseAfterLoad, postDataSteps(s, o))
}
