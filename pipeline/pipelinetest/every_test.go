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
	kafka.Destination:    func(t *testing.T) pipelinetest.Target { return kafkatest.NewTarget(t) },
	doris.Destination:    func(t *testing.T) pipelinetest.Target { return doristest.NewTarget(t) },
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
			pipelinetest.Run(t, pipelinetest.Destination{Capabilities: d.Capabilities(), New: start})
		})
	}
}
