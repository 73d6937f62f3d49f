// Package destinations registers every destination this build writes to.
// Import it (for its side effect) wherever task specs are decoded or
// sinks opened: the sluice binary does, through node and coordinator.
//
// Adding a destination is one package under apply/ implementing
// apply.Destination, and one line here.
package destinations

import (
	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/apply/postgres"
)

func init() {
	apply.Register(postgres.Destination)
	apply.Register(postgres.ADBPG)
	apply.Register(postgres.PolarDBO)
	apply.Register(kafka.Destination)
	apply.Register(doris.Destination)
}
