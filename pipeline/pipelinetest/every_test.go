package pipelinetest_test

import (
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/doris/doristest"
	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/apply/kafka/kafkatest"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/pipeline/pipelinetest"
)

// servers start a server of each destination type for the suite; a
// destination added to the registry adds its own here.
var servers = map[apply.Destination]func(t *testing.T) pipelinetest.Target{
	postgres.Destination: func(t *testing.T) pipelinetest.Target { return postgrestest.NewTarget(t) },
	// Greenplum and PolarDB-O cannot run here: their dialects write to
	// PostgreSQL 15, AnalyticDB's without INSERT ... ON CONFLICT (its
	// Greenplum 6 path).
	postgres.ADBPG: func(t *testing.T) pipelinetest.Target {
		return postgrestest.NewTargetOf(t, "adbpg", "upsert: delete_insert")
	},
	postgres.PolarDBO: func(t *testing.T) pipelinetest.Target { return postgrestest.NewTargetOf(t, "polardb-o", "") },
	kafka.Destination: func(t *testing.T) pipelinetest.Target { return kafkatest.NewTarget(t) },
	doris.Destination: func(t *testing.T) pipelinetest.Target { return doristest.NewTarget(t) },
}

// knownGaps are scenarios a destination fails for a documented reason.
var knownGaps = map[apply.Destination]map[string]string{
	doris.Destination: {
		"TypeFamilies": "the suite's 10 MB value exceeds Doris's STRING limit (BE string_type_length_soft_limit_bytes, 1 MB by default) and Doris keeps a json document's meaning, not its spacing; apply/doris TestTypeFamiliesDoris and node TestDorisCrashConsistencyUnderSIGKILL sync every type family",
	},
}

// acknowledge are the precheck warnings a destination gives by design.
var acknowledge = map[apply.Destination][]string{
	// AnalyticDB creates no foreign keys (the source's shop.orders has one).
	postgres.ADBPG: {"destination.no_foreign_keys"},
}

// The pipeline suite, once per registered destination; a destination
// without a server here fails.
func TestEveryDestination(t *testing.T) {
	for _, d := range apply.Registered() {
		typ := d.Kind().Type
		t.Run(typ, func(t *testing.T) {
			start, ok := servers[d]
			if !ok {
				t.Fatalf("destination %s has no server for the pipeline suite: add one to servers", typ)
			}
			pipelinetest.Run(t, pipelinetest.Destination{Capabilities: d.Capabilities(), New: start, KnownGaps: knownGaps[d], Acknowledge: acknowledge[d]})
		})
	}
}
