package doris

import (
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// Plan says how each table is kept (its data model, key, distribution
// and buckets) and lists the CREATE TABLE statements schema sync runs
// (apply.Planner).
func (destination) Plan(spec *proto.TaskSpec, s *proto.Schema, plan *proto.TaskPlan) {
	names := spec.Names()
	cfg := configOf(spec)
	storage := map[proto.TableID]string{}
	for i := range s.Tables {
		def := &s.Tables[i]
		dest := names.Table(def.ID)
		ts, err := planTable(def, dorisName(dest), func(c string) string { return names.Column(def.ID, c) }, optionsFor(spec, def.ID))
		if err != nil {
			storage[def.ID] = "cannot be created: " + err.Error()
			continue
		}
		buckets := "AUTO"
		if ts.buckets > 0 {
			buckets = fmt.Sprint(ts.buckets)
		}
		storage[def.ID] = fmt.Sprintf("%s model, key (%s), distributed by hash (%s), %s buckets", ts.model, strings.Join(ts.keys, ", "), strings.Join(ts.distKey, ", "), buckets)
		if spec.Sync.SchemaEnabled() {
			plan.Statements = append(plan.Statements, proto.PlannedStatement{Phase: proto.PhaseBeforeLoad, What: "create table " + ts.name, SQL: ts.createSQL(cfg.ReplicationNum)})
		}
	}
	for i := range plan.Tables {
		plan.Tables[i].Storage = storage[plan.Tables[i].Source]
	}
}
