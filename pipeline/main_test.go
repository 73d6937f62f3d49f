package pipeline

import (
	_ "github.com/sluicedb/sluice/apply/destinations" // the destination types the tests' specs name
)
