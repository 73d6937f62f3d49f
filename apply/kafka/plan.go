package kafka

import (
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// Plan names each table's topic and the partitions a topic Sluice
// creates gets, with the partition key the objects entry sets
// (apply.Planner); topics take no statements.
func (destination) Plan(spec *proto.TaskSpec, _ *proto.Schema, plan *proto.TaskPlan) {
	cfg := configOf(spec)
	for i := range plan.Tables {
		pt := &plan.Tables[i]
		pt.Destination = "topic " + topicFor(spec, cfg, pt.Source)
		pt.Storage = fmt.Sprintf("%d partitions (when Sluice creates the topic)", partitionsFor(spec, cfg, pt.Source))
		if key := partitionKeyOf(spec, pt.Source); key != nil {
			pt.Storage += ", partition key (" + strings.Join(key, ", ") + ")"
		}
	}
}
