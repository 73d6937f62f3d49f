package kafka

import (
	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
)

// The tests parse task specs of both types (a postgres one to see Kafka's
// object keys refused there).
func init() {
	apply.Register(Destination)
	apply.Register(postgres.Destination)
}
